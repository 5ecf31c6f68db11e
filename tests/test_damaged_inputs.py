"""Every damaged input gets one clear line and exit 2, before any model loads; nothing is
lost. Config files and what they point to, run folders read by `marl transcripts` and
`marl report`, and a run folder resumed by `marl train --resume`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import yaml

from agents.team import ScriptedPolicy
from marl.assembly import validate_config
from marl.cli import main
from marl.commands.simulate import simulate
from marl.core.config import ConfigError
from marl.core.files import InputFileError, read_bytes
from marl.rollouts.local import InProcessRollouts
from tests.toy_scenario import toy_config  # registers toy_length_v0 too

ROOT = Path(__file__).resolve().parent.parent
BASE = {
    "name": "t",
    "scenario": {"name": "debate_v0", "options": {"rounds": 1, "task": "easy"}},
    "team": {"agents": [{"id": "a", "model": "tiny-random"}, {"id": "b", "model": "tiny-random"}]},
}


def marl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in its own process: a hang is a failed test, not a stuck suite."""
    code = "import sys, tests.toy_scenario; from marl.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clear_error(result: subprocess.CompletedProcess, says: str, code: int = 2) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert "Traceback" not in out and says in " ".join(out.split()), out


def config_file(tmp_path: Path, **sections: object) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**BASE, **sections, "run": {"output_dir": str(tmp_path)}}))
    return path


# ---------------------------------------------------------------- files a config points to


def test_a_fifo_or_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "graph.edges"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.edges"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "named pipe"), (zero, "a device"), (tmp_path, "a folder")):
        with pytest.raises(InputFileError, match=kind):
            read_bytes(path, 1024)
    result = marl("simulate", str(config_file(tmp_path, graph={"file": str(fifo)})))
    assert_clear_error(result, "graph.file: cannot read graph file")
    assert_clear_error(result, "it is a named pipe (FIFO), not a regular file")
    result = marl("simulate", str(config_file(tmp_path, graph={"file": str(zero)})))
    assert_clear_error(result, "is a device, not a regular file")
    config_fifo = tmp_path / "config.yaml"
    os.mkfifo(config_fifo)
    assert_clear_error(marl("simulate", str(config_fifo)), "named pipe (FIFO)")


@pytest.mark.parametrize(
    ("output_dir", "says"),
    [("README.md", "is a file"), ("README.md/runs", "is a file"), ("/proc/self/runs", "/proc")],
)
def test_an_output_dir_where_no_run_folder_can_go_is_a_config_error(output_dir, says) -> None:
    path = str(ROOT / output_dir) if not output_dir.startswith("/") else output_dir
    with pytest.raises(ConfigError, match=rf"run\.output_dir: .*{says}"):
        validate_config({**BASE, "run": {"output_dir": path}})


LONG_NAME = "x" * 300  # past NAME_MAX (255): the kernel answers ENAMETOOLONG
LONG_PATH = "/".join(["y" * 200] * 30)  # past PATH_MAX (4096)


@pytest.mark.parametrize("value", ["a\x00b", LONG_NAME, LONG_PATH, "~no-such-user-here/x"])
@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("run.output_dir", lambda v: {"run": {"output_dir": v}}),
        ("team.agents[0].model", lambda v: {"team": {"agents": [{"id": "a", "model": v}]}}),
        ("team.agents[0].model", lambda v: {"team": {"agents": [{"id": "a", "model": "./" + v}]}}),
        ("graph.file", lambda v: {"graph": {"file": v}}),
    ],
)
def test_a_path_the_kernel_refuses_is_a_config_error(field: str, where, value: str) -> None:
    """A NUL byte, a name or path too long, an unknown ~user: the field, not a traceback."""
    with pytest.raises(ConfigError, match=rf"{re.escape(field)}: ") as caught:
        validate_config({**BASE, **where(value)})
    assert all(len(line) < 400 for line in str(caught.value).splitlines())


def test_a_missing_model_folder_is_not_taken_for_a_hub_id(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    agents = [{"id": "a", "model": "models/mine"}, {"id": "b", "model": "./other"}]
    with pytest.raises(ConfigError) as caught:
        validate_config({**BASE, "team": {"agents": agents}})
    message = str(caught.value)
    assert "team.agents[0].model: no model folder at 'models/mine'" in message
    assert "team.agents[1].model: no model folder at './other'" in message


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ({"run": {"episodes": True}}, "run.episodes"),
        ({"run": {"seed": False}}, "run.seed"),
        ({"team": {"agents": [{"id": "a", "sampling": {"max_new_tokens": True}}]}}, "max_new"),
        ({"train": {"lora": {"r": True}}}, "train.lora.r"),
        ({"resources": {"cpus_per_worker": True}}, "resources.cpus_per_worker"),
    ],
)
def test_true_or_false_is_not_a_number(where: dict, value: str) -> None:
    data = json.loads(json.dumps(BASE))
    for section, content in where.items():
        data[section] = {**data.get(section, {}), **content}
    if "team" in where:
        data["team"]["agents"][0]["model"] = "tiny-random"
    with pytest.raises(ConfigError, match=rf"{value}.*: expected a number, got true/false"):
        validate_config(data)


@pytest.mark.parametrize(
    ("scenario", "options", "field"),
    [
        ("debate_v0", {"rounds": True}, "rounds"),
        ("coding_v0", {"sandbox": {"timeout_s": True}}, "sandbox.timeout_s"),
        ("coding_v0", {"structure": {"parses": False}}, "structure.parses"),
    ],
)
def test_scenario_options_take_no_true_for_a_number(scenario, options, field) -> None:
    data = {**BASE, "scenario": {"name": scenario, "options": options}}
    with pytest.raises(ConfigError, match=rf"scenario\.options\.{re.escape(field)}: expected a"):
        validate_config(data)


# ---------------------------------------------------------------- damaged run folders


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("good")
    config = validate_config({**BASE, "run": {"episodes": 3, "output_dir": str(tmp)}})
    scripted = ScriptedPolicy(lambda agent, obs: "Answer: 7")
    folder, _ = simulate(config, InProcessRollouts(scripted, 8))
    return folder.path


def damaged(good_run: Path, tmp_path: Path, damage) -> Path:
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    damage(run)
    return run


def into_folder(name: str):
    def damage(run: Path) -> None:
        (run / name).unlink()
        (run / name).mkdir()

    return damage


def written(name: str, data: bytes):
    return lambda run: (run / name).write_bytes(data)


def frames(*records: object) -> bytes:
    return b"".join(msgpack.packb(r) for r in records)


GOOD_TURN = {"round": 0, "agent": "a", "text": "x", "token_ids": []}
DAMAGE = {
    "metrics.jsonl is a folder": into_folder("metrics.jsonl"),
    "summary.json is a folder": into_folder("summary.json"),
    "transcripts.msgpack is a folder": into_folder("transcripts.msgpack"),
    "summary of the wrong types": written("summary.json", b'{"phases": {"team": {"score": "x"}}}'),
    "summary, phases a number": written("summary.json", b'{"phases": 5, "team_gain": 1}'),
    "frames with the right keys and wrong types": written(
        "transcripts.msgpack",
        frames(
            {"phase": 1, "turns": "x", "agents": 3, "metrics": [], "messages": 5},
            {
                "phase": "team",
                "seed": 0,
                "agents": ["a"],
                "turns": [{**GOOD_TURN, "round": "zero"}],
                "metrics": {"score": "high", "score_by_round": []},
                "messages": [{"sender": 1}],
            },
        ),
    ),
    "metrics lines of the wrong types": written(
        "metrics.jsonl", b'{"phase": "team", "score": "x"}\n{"step": "s"}\n\xff\xfe\n'
    ),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_transcripts_and_report_say_what_is_damaged_and_go_on(good_run, tmp_path, kind) -> None:
    run = damaged(good_run, tmp_path, DAMAGE[kind])
    for args in (("transcripts", str(run), "--episode", "0"), ("report", str(run))):
        result = marl(*args)
        out = result.stdout + result.stderr
        assert "Traceback" not in out, out
        assert result.returncode in (0, 2), out
        if result.returncode == 2:
            assert "error:" in out


def test_a_million_bad_frames_are_one_line(good_run: Path, tmp_path: Path) -> None:
    run = damaged(good_run, tmp_path, written("transcripts.msgpack", frames(*[{}] * 300_000)))
    result = marl("report", str(run), timeout=600)
    assert result.returncode == 0
    out = result.stdout + result.stderr
    assert len(out.splitlines()) < 60, out[:2000]
    assert "300,000 frames of the wrong shape skipped" in out


@pytest.mark.parametrize(
    "config_text",
    [
        "scenario: {name: 5}\nteam: {agents: x}\n",
        "scenario: {name: debate_v0}\nteam: {agents: [5]}\n",
    ],
)
def test_a_run_config_of_the_wrong_types_is_one_error(good_run, tmp_path, config_text) -> None:
    run = damaged(good_run, tmp_path, written("config.yaml", config_text.encode()))
    for args in (("transcripts", str(run), "--episode", "0"), ("report", str(run))):
        assert_clear_error(marl(*args), "is not a valid run config")


def test_a_report_that_cannot_be_written_is_one_error(good_run: Path, tmp_path: Path) -> None:
    assert_clear_error(marl("report", str(good_run), "--out", "/proc/nope/r.html"), "/proc")
    target = str(ROOT / "README.md" / "r.html")
    assert_clear_error(marl("report", str(good_run), "--out", target), "is a file")
    assert_clear_error(marl("report", str(good_run), "--out", LONG_NAME + "/r.html"), "too long")


# ---------------------------------------------------------------- resuming a damaged run


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A toy training run whose last two steps did not happen (2 of 4, checkpoint at 2)."""
    parent = tmp_path_factory.mktemp("stopped")
    assert main(["train", str(toy_config(parent, "t", steps=2)), "--no-progress"]) == 0
    (run,) = (parent / "t").iterdir()
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["train"]["steps"] = 4
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def test_resume_with_a_damaged_config_is_one_error(stopped_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    (run / "config.yaml").write_text("scenario: {name: 7}\nteam: []\n")
    assert_clear_error(marl("train", "--resume", str(run)), "cannot resume")


def test_resume_drops_a_damaged_metrics_line_and_keeps_the_rest(stopped_run, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    lines = (run / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    before = [json.loads(line) for line in lines]
    # a torn, non-UTF-8 line between step 1 and step 2: both good lines must survive
    (run / "metrics.jsonl").write_bytes(b"".join([*lines[:-1], b'{"st\xff\xfe\n', lines[-1]]))
    result = marl("train", "--resume", str(run), "--no-progress", timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "dropped 1 damaged line of metrics.jsonl" in out
    after = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in after] == [0, 1, 2, 3, 4]
    assert after[: len(before)] == before
