"""The machinery every marl scenario shares: a team of text agents on an interaction graph.

``TextTeamEnv`` owns what would otherwise be copied into each scenario: the constructor
(its options validated by the scenario's options model, its checks on the team, the graph
and ``render_mode``, the ``MessageBus`` over the graph); the ``Text`` observation and
action spaces, built once; the validation of a step's actions; keeping observations
inside their space; the episode length; the end of every step (rewards, terminations,
truncations, the episode's metrics at its last step); and the bus counts every episode
reports. Each scenario keeps its own options model, prompts, rewards and metrics.

``ScenarioOptions`` is the base of every scenario's options model: an unknown option is an
error that names it. Every scenario has ``rounds`` and ``message_chars``, each with its
own default, lower bound and meaning, so each model declares them by ``rounds_option``
and ``message_chars_option``, which hold their bounds. They are not fields of the base:
those would come first in every model, and the field order is the order users read them
in (the schema, and the allowed keys a config error lists).

The marl scenario contract (what the rollout engine and the trainers rely on):

* agents act with text and observe text: ``Text`` spaces of ``string.printable``, the same
  space objects for the whole life of the env, and every observation inside its space;
* ``self.bus`` carries every message between agents, only along the graph's edges;
* ``max_rounds`` is the number of steps an episode lasts (``max_cycles``, the same number,
  exists for PettingZoo's tests);
* every agent live at a step gets the same team reward: ``team_reward(rewards)`` reads it;
* at an episode's last step every agent's info holds ``episode``, a msgpack-friendly
  mapping with at least ``score`` (the team's final score) and ``score_by_round``:
  ``episode_metrics(infos)`` reads it;
* the env also runs with one agent (a graph without edges): the single-agent baseline;
* ``agent_roles()`` says what part each agent plays (see there).
* text that agents or programs wrote (messages, an agent's own earlier reply, test
  output) appears in an observation only ``quoted``, so it cannot pose as the scenario's
  own lines (see there).

Deliberately left out: ``reset`` and the episode's logic. Scenarios differ in what they
deal, in who acts when (turns, a judge) and in how long a round's text is read, so each
writes its own ``reset`` and ``step``, calls ``_check_actions`` first and ends every step
with ``_end_step``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import networkx as nx
from gymnasium.spaces import Text
from pettingzoo import ParallelEnv
from pydantic import ConfigDict, Field

from marl.core.bus import MessageBus
from marl.core.config import StrictModel
from marl.core.graph import GraphError, build_graph
from scenarios.parsing import sanitize_text

CHARSET = string.printable
MAX_ROUNDS = 10

# How an observation shows text it did not write. Every line break any reader may see:
# the ones string.printable keeps (\n \r \v \f), and the others str.splitlines knows.
QUOTE = "| "
LINE_BREAK = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")

# What ``step`` returns: observations, rewards, terminations, truncations, infos.
StepResult = tuple[
    dict[str, str],
    dict[str, float],
    dict[str, bool],
    dict[str, bool],
    dict[str, dict[str, Any]],
]


class ScenarioOptions(StrictModel):
    """The base of every scenario's options model, as written under `scenario.options`."""

    model_config = ConfigDict(extra="forbid")


def rounds_option(default: int, meaning: str, *, minimum: int = 1) -> Any:
    """A scenario's ``rounds`` field: ``minimum`` to ``MAX_ROUNDS``, described by ``meaning``."""
    return Field(default, ge=minimum, le=MAX_ROUNDS, description=meaning)


def message_chars_option(
    default: int, meaning: str, *, action_chars: int, minimum: int = 20
) -> Any:
    """A scenario's ``message_chars`` field: ``minimum`` to ``action_chars`` characters.

    A message is cut from one completion, so it is never longer than an action.
    """
    return Field(default, ge=minimum, le=action_chars, description=meaning)


def quoted(text: str) -> str:
    """``text`` as an observation shows it when an agent or a program wrote it.

    Each line of ``text``, whatever breaks it (``LINE_BREAK``: ``\\r``, ``\\v``, ``\\f``,
    ``\\u2028`` as well as ``\\n``), becomes a line of its own after ``QUOTE``, the lines
    joined by ``\\n``: every line of the result starts with ``QUOTE``. Scenarios never
    write a line that does, so what a message holds cannot add, remove or change a line of
    the frame around it (a header naming its sender, a test result). ``frame_lines`` reads
    the frame back.
    """
    return "\n".join(QUOTE + line for line in LINE_BREAK.split(text))


def quoted_chars(chars: int) -> int:
    """The most characters ``quoted`` makes of ``chars`` characters (each a line break)."""
    return chars * (1 + len(QUOTE)) + len(QUOTE)


def frame_lines(observation: str) -> list[str]:
    """The lines of ``observation`` the scenario wrote: every line not ``quoted``."""
    return [line for line in LINE_BREAK.split(observation) if not line.startswith(QUOTE)]


def team_reward(rewards: dict[str, float]) -> float:
    """The team reward of a step: every agent gets the same; 0.0 when no agent got one."""
    return float(next(iter(rewards.values()))) if rewards else 0.0


def episode_metrics(infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A copy of the ``episode`` mapping in the last step's infos; ``{}`` when it has none."""
    return dict(next(iter(infos.values()), {}).get("episode", {}))


class TextTeamEnv(ParallelEnv[str, str, str]):
    """A PettingZoo ``ParallelEnv`` whose agents talk in text along an interaction graph."""

    metadata: ClassVar[dict[str, Any]]
    options_model: ClassVar[type[ScenarioOptions]]
    # Episode metrics that name the task or an answer to it (a target, the team's answer):
    # a mean of them means nothing, so run summaries leave them out.
    per_task_metrics: ClassVar[frozenset[str]] = frozenset(
        {"target", "team_answer", "majority_answer", "answer", "task_id"}
    )
    # The baselines of ``marl eval`` (``marl.commands.baselines``) this scenario does not
    # support, each with the reason a user reads. A scenario that supports ``vote`` or
    # ``self_consistency`` says how answers are voted in ``vote_score``.
    baselines_not_applicable: ClassVar[Mapping[str, str]] = {
        "vote": "the scenario does not say how its agents' answers are voted",
        "self_consistency": "the scenario does not say how its agents' answers are voted",
        "solo_rounds": "the scenario does not declare a self-refinement baseline",
    }

    @classmethod
    def vote_score(cls, answers: Sequence[Any], metrics: Mapping[str, Any]) -> float:
        """The score of the majority of ``answers`` (each an ``info["answer"]`` of a turn,
        in turn order; ties go to the earliest) on the task ``metrics`` describe."""
        raise NotImplementedError(f"{cls.metadata['name']} declares no vote")

    def __init__(
        self,
        agent_ids: Sequence[str],
        graph: nx.DiGraph | None = None,
        options: ScenarioOptions | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **option_values: Any,
    ) -> None:
        """Set the options, the team, its graph (default: complete) and its message bus.

        ``options`` (an ``options_model`` or a mapping) and the keyword ``option_values``,
        which win over it, are validated by ``options_model``: a bad or unknown field
        raises a ``pydantic.ValidationError`` that names it.
        """
        # dict() of an options model is its fields (nested models kept), ready to override
        given = {**dict(options or {}), **option_values}
        self.options = self.options_model.model_validate(given)
        if not agent_ids:
            raise ValueError(f"{self.metadata['name']} needs at least one agent")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.possible_agents = list(agent_ids)
        self.graph = build_graph(self.possible_agents) if graph is None else graph
        if set(self.graph.nodes) != set(self.possible_agents):
            raise GraphError(
                f"graph nodes {sorted(self.graph.nodes)} must be the team's agents "
                f"{self.possible_agents}"
            )
        self.bus = MessageBus(self.graph, max_content_chars=self.options.message_chars)
        self.agents: list[str] = []

    @classmethod
    def from_options(
        cls,
        agent_ids: Sequence[str],
        graph: nx.DiGraph | None,
        options: ScenarioOptions | Mapping[str, Any] | None,
    ) -> Self:
        """The scenario for ``agent_ids`` on ``graph`` with ``options`` (see ``__init__``)."""
        return cls(agent_ids, graph, options)

    def _init_spaces(self, obs_chars: int, action_chars: int) -> None:
        """Build every agent's ``Text`` spaces once: observations up to ``obs_chars``."""
        self._obs_chars = obs_chars
        self.observation_spaces = {
            a: Text(max_length=obs_chars, charset=CHARSET) for a in self.possible_agents
        }
        self.action_spaces = {
            a: Text(max_length=action_chars, min_length=0, charset=CHARSET)
            for a in self.possible_agents
        }

    def _init_length(self, max_rounds: int) -> None:
        """Set the episode length: ``max_rounds`` steps (``max_cycles`` for PettingZoo).

        ``max_cycles`` is a plain copy: PettingZoo's API test overwrites it, which must
        not change the episode.
        """
        self.max_rounds = max_rounds
        self.max_cycles = max_rounds

    def agent_roles(self) -> dict[str, str]:
        """What the scenario makes of each agent, from the team, graph and options alone.

        Two teams whose shared agents have equal roles give those agents the same part to
        play: `marl eval --ablate` removes an agent only when the others keep their roles.
        Scenarios with roles (a judge, a speaker, held numbers) override this.
        """
        return dict.fromkeys(self.possible_agents, "member")

    def observation_space(self, agent: str) -> Text:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Text:
        return self.action_spaces[agent]

    def _check_actions(self, actions: dict[str, str]) -> None:
        """Reject a step without live agents, or without one ``str`` action per live agent."""
        if not self.agents:
            raise RuntimeError("no live agents: call reset() to start an episode")
        if set(actions) != set(self.agents):
            raise ValueError(
                f"expected one action per live agent {self.agents}, got {sorted(actions)}"
            )
        for agent, action in actions.items():
            if not isinstance(action, str):
                raise TypeError(f"action of '{agent}' must be str, got {type(action).__name__}")

    def _end_step(
        self,
        observations: dict[str, str],
        infos: dict[str, dict[str, Any]],
        reward: float,
        next_agents: Sequence[str],
    ) -> StepResult:
        """The step's result, with ``next_agents`` live from now on.

        Every agent observed this step gets the team ``reward``; those not in
        ``next_agents`` terminate, none is truncated. When nobody is left the episode is
        over and every info gets ``episode``, the scenario's ``_episode_metrics()``.
        """
        if not next_agents:
            for info in infos.values():
                info["episode"] = self._episode_metrics()
        terminations = {a: a not in next_agents for a in observations}
        self.agents = list(next_agents)
        return (
            observations,
            dict.fromkeys(observations, reward),
            terminations,
            dict.fromkeys(observations, False),
            infos,
        )

    def _episode_metrics(self) -> dict[str, Any]:
        """The episode's ``episode`` info, at least ``score`` and ``score_by_round``."""
        raise NotImplementedError(f"{type(self).__name__} must report its episode's metrics")

    def _observe(self, text: str) -> str:
        """``text`` made to lie in the observation space: cut, odd characters as '?'."""
        return sanitize_text(text, CHARSET, self._obs_chars)

    def _bus_counts(self) -> dict[str, int]:
        """What the team's talking cost this episode, as every episode's metrics report it."""
        stats = self.bus.stats
        return {
            "messages": stats.sent,
            "deliveries": stats.deliveries,
            "message_chars": stats.chars,
            "refused": stats.refused,
        }
