"""Scenarios: PettingZoo ``ParallelEnv``s the team plays, by name.

``SCENARIOS`` maps a versioned name to its env class and options model; ``make_env``
builds the env, which validates a config's options against that model. Importing this
package also registers every scenario with PettingZoo as ``marl/<name>-vN``, so
``pettingzoo.make("parallel", "marl/debate-v0")`` works after ``import scenarios``.

Your own scenario registers itself with ``register_scenario`` (a function or a class
decorator), which checks the part of the contract of ``scenarios.base`` that can be
checked on the class; ``make_env`` checks the rest on every env it builds
(``possible_agents``, ``max_rounds``, the bus), so a broken scenario is one
``ScenarioContractError`` naming what is missing, at config validation, not an
``AttributeError`` half way into a run. A config lists the module under
``resources.imports``; ``scenarios.testing.check_scenario`` runs on it the checks every
built-in scenario passes.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import networkx as nx
import pettingzoo
from pettingzoo import ParallelEnv

from scenarios.base import ScenarioOptions
from scenarios.coding_v0 import CodingEnv, CodingOptions
from scenarios.debate_v0 import DebateEnv, DebateOptions
from scenarios.referential_v0 import ReferentialEnv, ReferentialOptions
from scenarios.relay_v0 import RelayEnv, RelayOptions
from scenarios.wordmath_v0 import WordMathEnv, WordMathOptions

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}_v[0-9]{1,4}")
CONTRACT = "the contract: scenarios/base.py, and the README's 'Your own scenario'"
Env = TypeVar("Env", bound=type)


class ScenarioContractError(ValueError):
    """A scenario class, or an env it built, that breaks the marl scenario contract."""


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

def pettingzoo_id(name: str) -> str:
    """PettingZoo's id of scenario ``name``, which spells the version "-vN": marl/debate-v0."""
    stem, _, version = name.rpartition("_v")
    return f"marl/{stem}-v{version}"


for _scenario in SCENARIOS.values():
    pettingzoo.register(
        "parallel",
        pettingzoo_id(_scenario.name),
        entry_point=f"scenarios.{_scenario.name}:parallel_env",
    )


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
    env = SCENARIOS[name].env.from_options(agent_ids, graph, options)
    if problems := env_problems(env, agent_ids):
        raise ScenarioContractError(
            f"scenario '{name}' built an env that breaks the contract: {'; '.join(problems)} "
            f"({CONTRACT})"
        )
    return env


# ---------------------------------------------------------------- your own scenarios


def class_problems(env: Any, options: Any) -> list[str]:
    """What a scenario class and its options model miss of the contract, one phrase each."""
    if not (isinstance(env, type) and issubclass(env, ParallelEnv)):
        return [f"the env must be a pettingzoo.ParallelEnv subclass, got {env!r}"]
    problems = []
    metadata = getattr(env, "metadata", None)
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.append(f"metadata['name'] must be a versioned name like my_game_v0, got {name!r}")
    if not isinstance(inspect.getattr_static(env, "from_options", None), classmethod):
        problems.append(
            "it needs a classmethod from_options(agent_ids, graph, options) (TextTeamEnv has one)"
        )
    for method in ("reset", "step", "observation_space", "action_space"):
        if getattr(env, method, None) is getattr(ParallelEnv, method):
            problems.append(f"it does not define {method}()")
    if not (isinstance(options, type) and issubclass(options, ScenarioOptions)):
        problems.append(
            "its options model (options=, or the class's options_model) must subclass "
            f"scenarios.base.ScenarioOptions, got {options!r}"
        )
    return problems


def register_scenario(
    env: Env | None = None,
    *,
    options: type[ScenarioOptions] | None = None,
    summary: str | None = None,
    replace: bool = False,
) -> Any:
    """Register a scenario class under its ``metadata["name"]``, for configs
    (``scenario.name``) and for ``pettingzoo.make("parallel", "marl/<name>-vN")``.

    ``register_scenario(MyEnv)``, or the decorator ``@register_scenario`` (also with
    arguments: ``@register_scenario(summary=...)``). ``options`` defaults to the class's
    ``options_model`` (every ``TextTeamEnv`` declares one), ``summary`` to the first line
    of its docstring. Registering the same class again (its module imported a second time)
    changes nothing; another class under a taken name is an error unless ``replace``.
    Raises ``ScenarioContractError`` listing every problem ``class_problems`` finds.
    Returns the class.
    """
    if env is None:
        return lambda cls: register_scenario(cls, options=options, summary=summary, replace=replace)
    model = options if options is not None else getattr(env, "options_model", None)
    if problems := class_problems(env, model):
        raise ScenarioContractError(
            f"cannot register {getattr(env, '__qualname__', env)!r}: {'; '.join(problems)} "
            f"({CONTRACT})"
        )
    name = env.metadata["name"]
    known = SCENARIOS.get(name)
    if known is not None and not replace and not _same_class(known.env, env):
        raise ScenarioContractError(
            f"scenario name '{name}' is taken by {known.env.__module__}."
            f"{known.env.__qualname__}; give yours another metadata['name'] (or "
            "replace=True to override it)"
        )
    doc = (inspect.getdoc(env) or "").strip().splitlines()
    text = summary if summary is not None else (doc[0] if doc else name)
    SCENARIOS[name] = Scenario(name=name, env=env, options=model, summary=text)
    with warnings.catch_warnings():  # PettingZoo warns on a second registration of an id
        warnings.simplefilter("ignore")
        pettingzoo.register("parallel", pettingzoo_id(name), entry_point=env)
    return env


def _same_class(a: type, b: type) -> bool:
    """The same class, or the same one from its module imported again."""
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def env_problems(env: Any, agent_ids: Sequence[str]) -> list[str]:
    """What a built env misses of the contract the rollout engine reads, one phrase each."""
    problems = []
    agents = getattr(env, "possible_agents", None)
    if not isinstance(agents, list) or agents != list(agent_ids):
        problems.append(f"possible_agents must be the team {list(agent_ids)}, got {agents!r}")
    rounds = getattr(env, "max_rounds", None)
    if not (isinstance(rounds, int) and not isinstance(rounds, bool) and rounds >= 1):
        problems.append(
            f"max_rounds (the steps an episode lasts, an int >= 1) is {rounds!r}: set it in "
            "__init__ (a TextTeamEnv calls self._init_length(rounds))"
        )
    if not hasattr(getattr(env, "bus", None), "log"):
        problems.append(
            "bus must be a marl.core.bus.MessageBus over the graph carrying every message "
            "(transcripts read env.bus.log; a TextTeamEnv makes one)"
        )
    metadata = getattr(env, "metadata", None)
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        problems.append("metadata['name'] must name the scenario")
    return problems
