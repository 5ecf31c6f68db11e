"""Choosing the generation backend (`resources.backend`), and the vLLM helpers that need no vLLM.

These run in the main suite, where vLLM is not installed; tests/test_vllm_backend.py runs
the backend itself (`make test-vllm`).
"""

from __future__ import annotations

import sys

import pytest

from agents import vllm_backend
from marl.assembly import validate_config
from marl.core.config import ConfigError

VALID = {
    "name": "t",
    "scenario": {"name": "debate_v0", "options": {"rounds": 2}},
    "team": {"agents": [{"id": "a"}, {"id": "b"}, {"id": "c"}]},
}


def test_backend_defaults_to_transformers() -> None:
    assert validate_config(VALID).resources.backend == "transformers"


def test_vllm_backend_without_vllm_is_a_config_error_naming_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(vllm_backend, "vllm_available", lambda: False)
    monkeypatch.setattr("marl.assembly.vllm_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        validate_config({**VALID, "resources": {"backend": "vllm"}})
    message = str(err.value)
    assert "resources.backend" in message
    assert "vllm-cpu" in message and "transformers" in message


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"resources\.backend"):
        validate_config({**VALID, "resources": {"backend": "llamacpp"}})


def test_building_the_vllm_backend_without_vllm_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(vllm_backend.BackendUnavailable, match="vllm-cpu"):
        vllm_backend.VLLMBackend("tiny-random")


def test_lora_rank_slot_rounds_up_to_what_vllm_accepts() -> None:
    assert [vllm_backend.lora_rank_slot(r) for r in (1, 2, 8, 9, 200)] == [1, 8, 8, 16, 256]
    with pytest.raises(ValueError, match="largest"):
        vllm_backend.lora_rank_slot(1000)
