"""Model provisioning: names resolve, unknown names say what is known, conversion is atomic."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents import models


def test_cache_dir_follows_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MARL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.cache_dir() == tmp_path / "marl"
    monkeypatch.setenv("MARL_CACHE", str(tmp_path / "own"))
    assert models.cache_dir() == tmp_path / "own"


def test_known_names_and_passthrough(tmp_path: Path, monkeypatch) -> None:
    assert Path(models.resolve_model("tiny-random"), "config.json").is_file()
    (tmp_path / "config.json").write_text("{}")
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)
    monkeypatch.setattr(models, "_in_hub_cache", lambda repo: repo == "HuggingFaceTB/SmolLM2")
    assert models.resolve_model("HuggingFaceTB/SmolLM2") == "HuggingFaceTB/SmolLM2"
    with pytest.raises(models.ModelNotFound, match="unknown model 'smolm2'; known: smollm2"):
        models.resolve_model("smolm2")
    assert not models.is_known_model("smolm2")


def test_a_model_name_that_cannot_load_is_refused_before_loading(tmp_path: Path, monkeypatch):
    """A missing folder is not taken for a hub id, a folder must hold a model, and a hub id
    must be in the local cache (runs never download): each is one sentence, not a traceback
    from transformers later."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    monkeypatch.setattr(models, "_in_hub_cache", lambda repo: False)
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
