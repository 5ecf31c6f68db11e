"""A toy scenario for trainer tests, registered on import as `toy_length_v0`.

The tiny random model never solves a real task, so every reward would be 0 and no update
would happen. Here the team reward is the mean completion length in characters / 40
(capped at 1): it differs between samples of the tiny model, so groups are never flat and
an update really moves the weights. One round; agents hear nobody.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import ClassVar

import yaml
from gymnasium.spaces import Text
from pettingzoo import ParallelEnv

from marl.core.bus import MessageBus
from marl.core.graph import build_graph
from scenarios import SCENARIOS, Scenario
from scenarios.base import ScenarioOptions


class ToyOptions(ScenarioOptions):
    """One option, for tests of a run that fails half way."""

    fail_in_training: bool = False  # reset raises on a training task (seed < 1,000,000)


class ToyLengthEnv(ParallelEnv):
    metadata: ClassVar[dict] = {
        "name": "toy_length_v0",
        "render_modes": [],
        "is_parallelizable": True,
    }

    def __init__(self, agent_ids=("a",), graph=None, fail_in_training=False):
        self.fail_in_training = fail_in_training
        self.possible_agents = list(agent_ids)
        self.graph = graph if graph is not None else build_graph(self.possible_agents, "none")
        self.bus = MessageBus(self.graph)
        self.max_rounds = self.max_cycles = 1
        self._obs = {a: Text(200, charset=string.printable) for a in self.possible_agents}
        self._act = {
            a: Text(4000, min_length=0, charset=string.printable) for a in self.possible_agents
        }
        self.agents: list[str] = []

    @classmethod
    def from_options(cls, agent_ids, graph, options: ToyOptions | dict | None) -> ToyLengthEnv:
        checked = ToyOptions.model_validate(options or {})
        return cls(agent_ids, graph, checked.fail_in_training)

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def reset(self, seed=None, options=None):
        if self.fail_in_training and seed is not None and seed < 1_000_000:
            raise RuntimeError(f"toy failure on training task {seed}")
        self.agents = list(self.possible_agents)
        self.bus.reset()
        return {a: f"Task {seed}: write something long." for a in self.agents}, {
            a: {} for a in self.agents
        }

    def step(self, actions):
        lengths = {a: min(1.0, len(actions[a]) / 200) for a in self.agents}
        team = sum(lengths.values()) / len(lengths)
        episode = {"score": team, "score_by_round": [team]}
        infos = {a: {"individual_reward": lengths[a], "episode": episode} for a in self.agents}
        rewards = dict.fromkeys(self.agents, team)
        done = dict.fromkeys(self.agents, True)
        self.agents = []
        return {a: "" for a in actions}, rewards, done, dict.fromkeys(done, False), infos


SCENARIOS["toy_length_v0"] = Scenario("toy_length_v0", ToyLengthEnv, ToyOptions, "test toy")


def toy_config(
    tmp_path: Path,
    name: str,
    *,
    temperature: float = 1.0,
    resources: dict | None = None,
    **train: object,
) -> Path:
    """A training config file on this scenario: agents a and b on the tiny model, 6 new
    tokens, 4 steps of 1 task x G=3 (``train`` overrides), run folders under tmp_path/name."""
    config = {
        "name": name,
        "scenario": {"name": "toy_length_v0"},
        "team": {
            "agents": [
                {
                    "id": a,
                    "model": "tiny-random",
                    "sampling": {"temperature": temperature, "max_new_tokens": 6},
                }
                for a in ("a", "b")
            ]
        },
        "run": {"seed": 0, "output_dir": str(tmp_path / name)},
        "train": {
            "steps": 4,
            "tasks_per_step": 1,
            "group_size": 3,
            "lr": 0.01,
            "save_every": 1,
            "eval_every": 2,
            "eval_episodes": 2,
            **train,
        },
    }
    if resources is not None:
        config["resources"] = resources
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
