"""Every way a model fails to load is one `error:` line from the CLI and exit 2, never a
transformers traceback: a hub id missing from (or broken in) the local Hugging Face cache,
a folder that is missing or holds no model, damaged weights, a tokenizer that does not
load, and a checkpoint that does not fit the run it resumes.

What a cheap look at the files can tell is a config error naming the field
(``team.agents[0].model``), before anything loads; the rest is said when the model loads,
naming the folder. The bad folders are built from a copy of the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agents.models import TINY_MODEL, resolve_model
from marl.cli import main
from tests.conftest import config_on_tiny_model
from tests.toy_scenario import toy_config  # registers toy_length_v0 too

ROOT = Path(__file__).resolve().parent.parent
FIELD = "team.agents[0].model"
REPO = "org/tiny-chat"  # the hub id of the fake cache entries
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_copy(tmp_path: Path, name: str = "model") -> Path:
    """A folder holding a copy of the tiny model: config, weights and tokenizer."""
    folder = tmp_path / name
    shutil.copytree(resolve_model(TINY_MODEL), folder)
    return folder


def config_with_model(tmp_path: Path, model: str) -> Path:
    """A one-episode relay config whose first agent runs ``model`` (the other the tiny one)."""
    data = config_on_tiny_model(
        ROOT / "configs/relay.yaml", output_dir=str(tmp_path / "runs"), episodes=1
    )
    data["team"]["agents"][0]["model"] = model
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def error_line(code: int, err: str) -> str:
    """The problem the CLI reported: exit 2, no traceback, and one `error:` line, which is
    either the whole message or (a config error) the header of one indented field line."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("error: "), err
    assert sum(line.startswith("error:") for line in lines) == 1, err
    if lines[0].endswith(" is not valid:"):
        assert len(lines) == 2 and lines[1].startswith("  "), err
        return lines[1].strip()
    assert len(lines) == 1, err
    return lines[0]


def simulate(tmp_path: Path, model: str, capsys) -> str:
    """The problem `marl simulate` reports when the first agent runs ``model``."""
    config = config_with_model(tmp_path, model)
    capsys.readouterr()  # what the test printed making its folders is not the CLI's
    code = main(["simulate", str(config), "--no-progress"])
    return error_line(code, capsys.readouterr().err)


def simulate_in_own_process(
    tmp_path: Path, model: str, offline: bool = False
) -> subprocess.CompletedProcess:
    """`marl simulate` as a user runs it, all its stderr seen (a library's log lines too);
    ``offline``: with HF_HUB_OFFLINE set and the hub cache in tmp_path/hub."""
    env = dict(os.environ)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
        env["HF_HOME"] = str(tmp_path / "hf-home")
        env["HF_HUB_CACHE"] = str(tmp_path / "hub")
    config = config_with_model(tmp_path, model)
    return subprocess.run(
        [sys.executable, "-m", "marl.cli", "simulate", str(config), "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def cache_entry(tmp_path: Path, files: list[str]) -> Path:
    """A hub cache entry for ``REPO`` as a download leaves it: the blobs, and a snapshot of
    the main revision linking ``files`` (of the tiny model) to them."""
    entry = tmp_path / "hub" / f"models--{REPO.replace('/', '--')}"
    snapshot = entry / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (entry / "blobs").mkdir()
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(COMMIT)
    source = Path(resolve_model(TINY_MODEL))
    for name in files:
        blob = entry / "blobs" / f"blob-{name}"
        shutil.copyfile(source / name, blob)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


# ---------------------------------------------------------------- hub ids


def test_a_hub_id_not_in_the_cache_while_offline(tmp_path: Path) -> None:
    result = simulate_in_own_process(tmp_path, "Qwen/Qwen2.5-0.5B-Instruct", offline=True)
    line = error_line(result.returncode, result.stderr)
    assert line.startswith(f"{FIELD}: 'Qwen/Qwen2.5-0.5B-Instruct' is not in the local Hugging")
    assert str(tmp_path / "hub") in line  # where it was looked for
    assert "offline" in line and "hf download Qwen/Qwen2.5-0.5B-Instruct" in line


@pytest.mark.parametrize(
    ("files", "says"),
    [
        (["config.json", "tokenizer.json", "tokenizer_config.json"], "holds no weights"),
        (["config.json", "model.safetensors"], "has no tokenizer"),
        (["model.safetensors", "tokenizer.json", "tokenizer_config.json"], "has no config.json"),
    ],
    ids=["no-weights", "no-tokenizer", "no-config"],
)
def test_a_cached_hub_id_cut_off_mid_download(tmp_path: Path, files: list[str], says: str):
    """Some files of the revision arrived, not all: transformers would go to the network
    for the rest (and, offline, fail in a traceback)."""
    cache_entry(tmp_path, files)
    result = simulate_in_own_process(tmp_path, REPO, offline=True)
    line = error_line(result.returncode, result.stderr)
    assert line.startswith(f"{FIELD}: the copy of '{REPO}' in the local Hugging Face cache {says}")
    assert f"hf download {REPO}" in line


def test_a_complete_cached_hub_id_runs_offline(tmp_path: Path) -> None:
    """The cache entry the broken ones are cut from loads and plays, with no network."""
    cache_entry(tmp_path, [p.name for p in Path(resolve_model(TINY_MODEL)).iterdir()])
    result = simulate_in_own_process(tmp_path, REPO, offline=True)
    assert result.returncode == 0, result.stderr
    assert "run folder: " in result.stdout


# ---------------------------------------------------------------- local folders


def test_a_missing_folder(tmp_path: Path, capsys) -> None:
    line = simulate(tmp_path, str(tmp_path / "nowhere"), capsys)
    assert line.startswith(f"{FIELD}: no model folder at '{tmp_path / 'nowhere'}'")


def test_an_empty_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    line = simulate(tmp_path, str(tmp_path / "empty"), capsys)
    assert line.startswith(f"{FIELD}: '{tmp_path / 'empty'}' is a folder without config.json")


def test_a_garbage_config_json(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    (folder / "config.json").write_text('{"model_type": "llama", ')  # cut off mid-copy
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"{FIELD}: '{folder}' has a config.json that is not JSON")


def test_a_model_type_transformers_does_not_know(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "llama9"}))
    line = simulate(tmp_path, str(folder), capsys)
    assert "model_type 'llama9'" in line and "upgrade transformers" in line
    assert line.startswith(f"{FIELD}: ")


def test_a_model_that_is_not_a_causal_lm(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    (folder / "config.json").write_text(json.dumps({"model_type": "vit"}))
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"{FIELD}: '{folder}' is a 'vit' model, not a causal")


def test_a_folder_without_weights(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    (folder / "model.safetensors").unlink()
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"{FIELD}: '{folder}' holds no weights")


def test_truncated_weights(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"{FIELD}: '{folder}' has a model.safetensors that is cut short")
    assert f"{size // 2:,} of {size:,} bytes" in line


def test_weights_that_are_not_safetensors(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    (folder / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n")
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"{FIELD}: '{folder}' has a model.safetensors that is not")


def test_a_shard_missing_from_a_sharded_checkpoint(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    shards = {"a.weight": "model-00001-of-00002.safetensors"}
    shards["b.weight"] = "model-00002-of-00002.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"{FIELD}: '{folder}' lacks model-00002-of-00002.safetensors")


def test_a_folder_without_a_tokenizer(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (folder / name).unlink()
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"{FIELD}: '{folder}' has no tokenizer")


def test_a_lora_adapter_folder_given_as_a_model(tmp_path: Path, capsys) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model(TINY_MODEL))
    adapter = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj"]))
    adapter.save_pretrained(tmp_path / "adapter")
    line = simulate(tmp_path, str(tmp_path / "adapter"), capsys)
    assert line.startswith(f"{FIELD}: '{tmp_path / 'adapter'}' is a LoRA adapter")
    assert "merge" in line and resolve_model(TINY_MODEL) in line  # its base, from its config


# ---------------------------------------------------------------- found when loading


def test_a_tokenizer_that_does_not_load(tmp_path: Path, capsys) -> None:
    folder = tiny_copy(tmp_path)
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"error: cannot load the tokenizer of '{folder}'")


@pytest.mark.parametrize("command", ["eval", "train"])
def test_eval_and_train_say_a_load_error_the_same_way(tmp_path: Path, capsys, command) -> None:
    folder = tiny_copy(tmp_path)
    (folder / "tokenizer.json").write_text("{}")
    config = toy_config(tmp_path, "broken")
    data = yaml.safe_load(config.read_text())
    for agent in data["team"]["agents"]:
        agent["model"] = str(folder)
    config.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    code = main([command, str(config), "--no-progress"])
    line = error_line(code, capsys.readouterr().err)
    assert line.startswith(f"error: cannot load the tokenizer of '{folder}'")


def test_weights_that_do_not_fit_their_config(tmp_path: Path) -> None:
    """Another model's config.json beside these weights: only loading can tell."""
    folder = tiny_copy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 96}))
    result = simulate_in_own_process(tmp_path, str(folder))  # no table logged before the line
    line = error_line(result.returncode, result.stderr)
    assert line.startswith(f"error: cannot load the weights of '{folder}'")
    assert "size mismatch" in line


# ---------------------------------------------------------------- checkpoints


def test_resume_from_a_checkpoint_that_does_not_fit_the_config(tmp_path: Path, capsys) -> None:
    """config.yaml edited after the run began (another LoRA rank): the checkpoint's tensors
    do not fit the policies it now builds. Said once, and the checkpoint is left as it was."""
    config = toy_config(tmp_path, "edited", steps=1, eval_every=0)
    assert main(["train", str(config), "--no-progress"]) == 0
    (run,) = (tmp_path / "edited").iterdir()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    resolved["train"]["lora"]["r"] = 2 * resolved["train"]["lora"]["r"]
    (run / "config.yaml").write_text(yaml.safe_dump(resolved))
    capsys.readouterr()
    line = error_line(
        main(["train", "--resume", str(run), "--no-progress"]), capsys.readouterr().err
    )
    assert line.startswith(f"error: cannot resume {run}: the checkpoint does not fit")
    assert "train.lora" in line
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000001"]


def test_weights_that_lack_a_tensor(tmp_path: Path, capsys) -> None:
    """A whole safetensors file without one of the model's tensors: transformers would
    start it random with a warning; a run must not play or train on that."""
    from safetensors.torch import load_file, save_file

    folder = tiny_copy(tmp_path)
    tensors = load_file(folder / "model.safetensors")
    del tensors["model.norm.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    line = simulate(tmp_path, str(folder), capsys)
    assert line.startswith(f"error: cannot load the weights of '{folder}': they lack model.norm")
