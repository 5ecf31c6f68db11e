"""Shared fixtures: the tiny random model (fast) and config helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

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


# Hypothesis: no per-example deadline (on a shared 2-core machine timings swing 10x; a hang
# is pytest-timeout's to catch), and a reproduction blob in every failure report.
# HYPOTHESIS_PROFILE=thorough runs 20 times the examples, for a longer fuzzing session.
settings.register_profile("marl", deadline=None, print_blob=True)
settings.register_profile("thorough", parent=settings.get_profile("marl"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "marl"))


@pytest.fixture(scope="session")
def ray_instance():
    """One real local Ray instance for the whole test run (2 CPUs, a small object store);
    `RayRollouts` join it instead of starting their own."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 * 1024 * 1024,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
