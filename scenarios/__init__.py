"""Scenarios: PettingZoo ``ParallelEnv``s the team plays, by name.

``SCENARIOS`` maps a versioned name to its env class and options model; ``make_env``
builds the env, which validates a config's options against that model. Importing this
package also registers every scenario with PettingZoo as ``marl/<name>-vN``, so
``pettingzoo.make("parallel", "marl/debate-v0")`` works after ``import scenarios``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import pettingzoo
from pettingzoo import ParallelEnv

from scenarios.base import ScenarioOptions
from scenarios.coding_v0 import CodingEnv, CodingOptions
from scenarios.debate_v0 import DebateEnv, DebateOptions
from scenarios.referential_v0 import ReferentialEnv, ReferentialOptions
from scenarios.relay_v0 import RelayEnv, RelayOptions
from scenarios.wordmath_v0 import WordMathEnv, WordMathOptions


@dataclass(frozen=True, slots=True)
class Scenario:
    """A registered scenario: ``env.from_options(agent_ids, graph, options)`` builds it."""

    name: str  # versioned, PettingZoo style: <scenario>_v<N>
    env: type[ParallelEnv]  # must provide the classmethod from_options
    options: type[ScenarioOptions]
    summary: str


SCENARIOS: dict[str, Scenario] = {
    "coding_v0": Scenario(
        name="coding_v0",
        env=CodingEnv,
        options=CodingOptions,
        summary="A team writes Python for a HumanEval problem (helper + main, or writer with "
        "reviewers and testers); the sandboxed tests passed are the team reward.",
    ),
    "debate_v0": Scenario(
        name="debate_v0",
        env=DebateEnv,
        options=DebateOptions,
        summary="Agents answer an arithmetic problem, read their neighbours' answers, "
        "and answer again; team reward for a correct majority.",
    ),
    "wordmath_v0": Scenario(
        name="wordmath_v0",
        env=WordMathEnv,
        options=WordMathOptions,
        summary="The debate protocol on seeded word problems of 1 to 3 steps, with integer "
        "answers; team reward for a correct majority or judge.",
    ),
    "relay_v0": Scenario(
        name="relay_v0",
        env=RelayEnv,
        options=RelayOptions,
        summary="Each agent sees only its own private numbers; after message rounds along "
        "the graph the team must report their sum.",
    ),
    "referential_v0": Scenario(
        name="referential_v0",
        env=ReferentialEnv,
        options=ReferentialOptions,
        summary="A speaker sees the target among K objects; listeners, who see them "
        "shuffled and unmarked, must pick it from the speaker's message.",
    ),
}

for _scenario in SCENARIOS.values():
    # PettingZoo spells the version "-vN" in ids: debate_v0 -> marl/debate-v0
    _id = "marl/" + _scenario.name.replace("_v", "-v")
    pettingzoo.register("parallel", _id, entry_point=f"scenarios.{_scenario.name}:parallel_env")


def make_env(
    name: str,
    agent_ids: Sequence[str],
    graph: nx.DiGraph | None = None,
    options: ScenarioOptions | Mapping[str, Any] | None = None,
) -> ParallelEnv:
    """Build scenario ``name`` for ``agent_ids`` on ``graph`` (default: complete graph).

    ``options`` is validated against the scenario's options model; a bad field raises a
    ``pydantic.ValidationError`` that names it.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario '{name}'; known: {', '.join(SCENARIOS)}")
    return SCENARIOS[name].env.from_options(agent_ids, graph, options)
