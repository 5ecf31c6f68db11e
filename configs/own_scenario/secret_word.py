"""A worked example of a scenario of your own: `secret_word_v0`, the README's walk-through.

One agent, the keeper, is shown a secret word; in round 1 everyone may message the agents
who hear them (the interaction graph), in round 2 everyone must say the word. The team
reward is the share of agents who said it. With one agent alone it is the keeper, who
only has to repeat what it saw: the single-agent version every scenario has.

| spec            | value                                                             |
| --------------- | ----------------------------------------------------------------- |
| agents          | 1 or more; the first is the keeper (`keeper` option to change)    |
| rounds          | `rounds` (default 2): messages, then the answer in the last one   |
| observation     | the round, the word (keeper only), messages received, quoted      |
| action          | free text; the last line `Answer: <word>` is the answer           |
| team reward     | at the last step: share of agents whose answer is the word         |
| episode metrics | score, score_by_round, said_it, parse_failures, bus counts         |

Written from the contract in scenarios/base.py: subclass ``TextTeamEnv``, declare an
options model, build spaces and the episode length in ``__init__``, write ``reset`` and
``step`` (``_check_actions`` first, ``_end_step`` last), report ``_episode_metrics``, and
register the class. A config names the module in ``resources.imports``; the config's own
folder is searched, so `marl simulate configs/own_scenario/secret_word.yaml` works as is.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import networkx as nx
from pydantic import Field

from scenarios import register_scenario
from scenarios.base import (
    CHARSET,
    ScenarioOptions,
    StepResult,
    TextTeamEnv,
    message_chars_option,
    quoted,
    quoted_chars,
    rounds_option,
)
from scenarios.parsing import sanitize_text

WORDS = ("apple", "river", "candle", "tiger", "violin", "pepper", "rocket", "meadow")
MAX_ACTION_CHARS = 2000
ANSWER = re.compile(r"answer\s*:\s*([a-z]+)", re.IGNORECASE)


class SecretWordOptions(ScenarioOptions):
    """`scenario.options` of secret_word_v0 (each field's description is its reference)."""

    rounds: int = rounds_option(2, "steps an episode lasts: messages, then the answer", minimum=1)
    message_chars: int = message_chars_option(
        80, "characters of a message that reach its readers", action_chars=MAX_ACTION_CHARS
    )
    keeper: str | None = Field(None, description="the agent shown the word (default: the first)")


@register_scenario
class SecretWordEnv(TextTeamEnv):
    """The keeper sees a secret word; after messages along the graph everyone must say it."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "secret_word_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }
    options_model: ClassVar[type[SecretWordOptions]] = SecretWordOptions

    def __init__(
        self,
        agent_ids: Sequence[str] = ("agent_0", "agent_1"),
        graph: nx.DiGraph | None = None,
        options: SecretWordOptions | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **option_values: Any,
    ) -> None:
        super().__init__(agent_ids, graph, options, render_mode, **option_values)
        self.keeper = self.options.keeper or self.possible_agents[0]
        if self.keeper not in self.possible_agents:
            raise ValueError(f"keeper '{self.keeper}' is not on the team {self.possible_agents}")
        self._init_length(self.options.rounds)
        heard = max(degree for _, degree in self.graph.in_degree)
        per_message = 40 + max(map(len, self.possible_agents))
        per_message += quoted_chars(self.options.message_chars)
        self._init_spaces(400 + self.options.rounds * heard * per_message, MAX_ACTION_CHARS)
        self._rng = random.Random()
        self.round, self.word = 0, ""
        self._answers: dict[str, str | None] = {}
        self._heard: dict[str, list[Any]] = {}

    def agent_roles(self) -> dict[str, str]:
        return {a: "keeper" if a == self.keeper else "guesser" for a in self.possible_agents}

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = random.Random(seed)
        self.word = self._rng.choice(WORDS)
        self.agents = list(self.possible_agents)
        self.round, self._answers = 0, {}
        self.bus.reset()
        self._heard = {a: [] for a in self.agents}
        return {a: self._prompt(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, str]) -> StepResult:
        self._check_actions(actions)
        if self.round < self.options.rounds - 1:  # a message round
            infos = {}
            for agent in self.agents:
                text = sanitize_text(actions[agent].strip(), CHARSET, self.options.message_chars)
                if text:
                    self.bus.send(agent, text, round=self.round)
                infos[agent] = {"round": self.round, "individual_reward": 0.0}
            for agent in self.agents:
                self._heard[agent] += self.bus.drain(agent)
            self.round += 1
            observations = {a: self._prompt(a) for a in self.agents}
            return self._end_step(observations, infos, 0.0, self.agents)
        for agent in self.agents:  # the answer round
            found = ANSWER.findall(actions[agent][-MAX_ACTION_CHARS:])
            self._answers[agent] = found[-1].lower() if found else None
        said = {a: self._answers[a] == self.word for a in self.agents}
        infos = {
            a: {
                "round": self.round,
                "answer": self._answers[a],
                "parsed": self._answers[a] is not None,
                "individual_reward": float(said[a]),
            }
            for a in self.agents
        }
        observations = {a: self._observe(f"Game over. The word was {self.word}.") for a in said}
        return self._end_step(observations, infos, self._score(), [])

    def _prompt(self, agent: str) -> str:
        last = self.round == self.options.rounds - 1
        lines = [f"Secret word game, round {self.round + 1} of {self.options.rounds}."]
        if agent == self.keeper:
            lines.append(f"The secret word is: {self.word}")
        else:
            lines.append(f"{self.keeper} knows a secret word; you do not.")
        for message in self._heard[agent]:  # other agents' text, always quoted
            lines.append(f"[round {message.round + 1}] {message.sender} wrote:")
            lines.append(quoted(message.content))
        if last:
            lines.append("What is the secret word? Finish with a line `Answer: <word>`.")
        elif self.bus.neighbours(agent):
            lines.append(f"Write one short message to {', '.join(self.bus.neighbours(agent))}.")
        else:
            lines.append("Nobody reads what you write this round; write a short note.")
        return self._observe("\n".join(lines))

    def _score(self) -> float:
        return sum(answer == self.word for answer in self._answers.values()) / len(self._answers)

    def _episode_metrics(self) -> dict[str, Any]:
        score = self._score()
        return {
            "score": score,
            "score_by_round": [0.0] * (self.options.rounds - 1) + [score],
            "said_it": score,
            "target": self.word,
            "parse_failures": sum(answer is None for answer in self._answers.values()),
            **self._bus_counts(),
        }

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        return f"round {self.round}, word {self.word!r}, answers {self._answers}"
