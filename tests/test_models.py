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


def test_known_names_and_passthrough(tmp_path: Path) -> None:
    assert Path(models.resolve_model("tiny-random"), "config.json").is_file()
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)
    assert models.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").startswith("HuggingFaceTB/")
    with pytest.raises(models.ModelNotFound, match="unknown model 'smolm2'; known: smollm2"):
        models.resolve_model("smolm2")
    assert not models.is_known_model("smolm2")


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
