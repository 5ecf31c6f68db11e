"""Every training recipe in configs/ runs on the tiny model.

Two checks per recipe. With its own scenario (one step): the step runs end to end (rollouts,
update, held-out evaluation), the loss is finite and the frozen base does not move. With
the toy length task swapped in (two steps, same algorithm, policy and hyperparameters):
the policy weights really change. The swap is needed because a random tiny model never
earns a real scenario's reward, so every group there is flat and no update can happen.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import tests.toy_scenario  # noqa: F401  registers toy_length_v0
from marl.assembly import validate_config
from marl.commands.train import Training
from marl.core.runs import RunFolder
from tests.conftest import CONFIGS, config_on_tiny_model

RECIPES = [p for p in CONFIGS if "train:" in p.read_text()]


def tiny_training(path: Path, tmp_path: Path, steps: int, toy: bool = False) -> Training:
    data = config_on_tiny_model(path, output_dir=str(tmp_path))
    data["train"].update(
        steps=steps, tasks_per_step=1, group_size=2, eval_every=1, eval_episodes=1, save_every=1
    )
    if toy:
        data["scenario"] = {"name": "toy_length_v0"}
        data.pop("graph", None)
    config = validate_config(data)
    return Training(config, RunFolder.create(tmp_path, config.name))


def frozen_weights(training: Training) -> dict[str, torch.Tensor]:
    model = next(iter(training.policies.models.values()))
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}


def test_there_are_recipes() -> None:
    names = {p.name for p in RECIPES}
    assert {"magrpo_debate.yaml", "magrpo_relay.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_runs_a_step_on_its_own_scenario(path: Path, tmp_path: Path) -> None:
    training = tiny_training(path, tmp_path, steps=1)
    frozen = frozen_weights(training) if training.tc.policy != "separate_full" else {}
    record = training.run()
    for policy in training.policies.policies:
        assert math.isfinite(record[f"{policy}/loss"])
    assert "eval/team" in record
    model = next(iter(training.policies.models.values()))
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), f"frozen base weight {name} moved"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_moves_its_policy_weights(path: Path, tmp_path: Path) -> None:
    training = tiny_training(path, tmp_path, steps=2, toy=True)
    before = training.policies.state_dict()
    training.run()
    after = training.policies.state_dict()
    for policy in training.policies.policies:
        keys = [k for k in after if k.startswith(policy + "/")]
        assert any(not torch.equal(after[k], before[k]) for k in keys), f"{policy} did not move"
