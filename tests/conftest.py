"""Shared fixtures: the tiny random model (fast) and config helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture(scope="session")
def tiny_backend():
    """One transformers backend on the tiny random model, shared by the whole run."""
    from agents.transformers_backend import TransformersBackend

    return TransformersBackend.load("tiny-random", max_batch_size=64)


def config_on_tiny_model(path: Path, **run: object) -> dict:
    """A config file's mapping with every agent on the tiny model and ``run`` overrides."""
    data = yaml.safe_load(path.read_text())
    for agent in data["team"]["agents"]:
        agent["model"] = "tiny-random"
        agent.setdefault("sampling", {})["max_new_tokens"] = 8
    data.setdefault("run", {}).update(run)
    return data
