"""The machinery every marl scenario shares: a team of text agents on an interaction graph.

``TextTeamEnv`` owns what would otherwise be copied into each scenario: the constructor's
checks on the team, the graph and ``render_mode``; the ``Text`` observation and action
spaces, built once; the ``MessageBus`` over the graph; the validation of a step's actions;
keeping observations inside their space; the episode length; and the bus counts every
episode reports. Each scenario keeps its own options, prompts, rewards and metrics.

The marl scenario contract (what ``marl.rollout`` and the trainers rely on):

* agents act with text and observe text: ``Text`` spaces of ``string.printable``, the same
  space objects for the whole life of the env, and every observation inside its space;
* ``self.bus`` carries every message between agents, only along the graph's edges;
* ``max_rounds`` is the number of steps an episode lasts (``max_cycles``, the same number,
  exists for PettingZoo's tests);
* every agent live at a step gets the same team reward;
* at an episode's last step every agent's info holds ``episode``, a msgpack-friendly
  mapping with at least ``score`` (the team's final score) and ``score_by_round``;
* the env also runs with one agent (a graph without edges): the single-agent baseline;
* ``agent_roles()`` says what part each agent plays (see there).

Deliberately left out: ``reset`` and the episode's logic. Scenarios differ in what they
deal, in who acts when (turns, a judge) and in how long a round's text is read, so each
writes its own ``reset`` and ``step`` and calls ``_check_actions`` first.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any, ClassVar

import networkx as nx
from gymnasium.spaces import Text
from pettingzoo import ParallelEnv

from marl.core.bus import MessageBus
from marl.core.graph import GraphError, build_graph
from scenarios.parsing import sanitize_text

CHARSET = string.printable

# What ``step`` returns: observations, rewards, terminations, truncations, infos.
StepResult = tuple[
    dict[str, str],
    dict[str, float],
    dict[str, bool],
    dict[str, bool],
    dict[str, dict[str, Any]],
]


class TextTeamEnv(ParallelEnv[str, str, str]):
    """A PettingZoo ``ParallelEnv`` whose agents talk in text along an interaction graph."""

    metadata: ClassVar[dict[str, Any]]

    def _init_team(
        self,
        agent_ids: Sequence[str],
        graph: nx.DiGraph | None,
        render_mode: str | None,
        message_chars: int,
        team_name: str,
    ) -> None:
        """Check and set the team, its graph (default: complete) and its message bus.

        ``team_name`` names the scenario in the error for an empty team.
        """
        if not agent_ids:
            raise ValueError(f"{team_name} needs at least one agent")
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
        self.bus = MessageBus(self.graph, max_content_chars=message_chars)
        self.agents: list[str] = []

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
