"""
# Relay

| Creation           | `make("parallel", "marl/relay-v0")` after `import scenarios`      |
|--------------------|-------------------------------------------------------------------|
| Actions            | Text (the agent's completion)                                     |
| Parallel API       | Yes                                                               |
| Agents             | `agents= ['agent_0', 'agent_1']` (any ids, 1 or more)             |
| Action space       | `Text(0..4000, charset=string.printable)`; longer text is cut      |
| Observation space  | `Text(1..N, charset=string.printable)`, N from graph and options  |
| Rewards            | one team reward for every agent, 0.0 or 1.0, at the last step     |
| Episode length     | `rounds` steps                                                    |

A coordination game with private information. The team holds `numbers` private integers
of `digits` digits, dealt round-robin in team order (by default one per agent); each agent
sees only its own. The team must report their sum. Rounds `1 .. rounds-1` are message
rounds: what an agent writes goes to its out-neighbours on the interaction graph. In the
last round every agent answers. The team succeeds when every agent (or the `reporter`
alone) states the right sum. Numbers travel only along graph edges, one hop per message
round: on a chain of n agents the first agent's number needs n-1 message rounds (and
agents that pass on what they heard) to reach the last.

With one agent (no edges) the lone agent holds every number and only has to add them: the
single-agent baseline of the same task with full information. Set `numbers` to the team's
size in a config so that this baseline adds as many numbers as the team does (with the
default, one agent alone holds one number and the task is to repeat it).

### Chance level

An agent that hears nothing knows only its own numbers; its best guess of the others' sum
is their most likely total, right with probability `guess_chance(hidden, digits)` =
max_s P(X_1 + ... + X_hidden = s) for X uniform on the `9 * 10**(digits-1)` numbers of
`digits` digits. That is at most 1/9 for one hidden one-digit number, 1/90 (1.1%) for two
digits, 1/900 for three, and smaller with more hidden numbers. With a `reporter` a
silent team succeeds with that probability; when every agent must be right it does worse
still. Each episode reports it as the metric `chance` (exact with a reporter, an upper
bound otherwise).

### Observations

Every round, in a few short lines (small models lose the thread in long prompts): the
round, the teammates, how many secret numbers the team has and who must give their sum,
the agent's own numbers, and every message received so far: a line `[round <r>] <sender>:`,
then the message with every line after `| ` (`scenarios.base.quoted`: a message cannot
write a line that looks like another sender's). Message rounds end with the request to
write one short message with every number the agent knows and whose it is, with its own
number as the example (`alice: 42`); the last round asks for the sum as a question,
finishing with `Answer: <integer>`. Characters outside `string.printable` become `?`, so
an observation always lies in its space.

### Actions and messages

In a message round the first `message_chars` characters of the stripped completion go on
the bus to every out-neighbour (a blank completion sends nothing). In the last round only
the final 4000 characters are read and the answer is parsed with
`scenarios.parsing.parse_integer_answer`; an unparsed answer is wrong and counted. A
number is read whole and is the answer only when it is an exact integer of at most 18
digits: `Answer: 1e3` and `Answer: 1,000` are 1000, while `1.5`, `1e-3`, `1e999` or
`1,2345` are unparsed, never read as a part of the number.

### Rewards

0.0 on message rounds. At the last step 1.0 if every counted agent's answer equals the
sum, else 0.0; every agent gets the same reward.

### Infos

Message rounds, per agent: `round`, `message_chars` (characters it sent, 0 if none) and
`individual_reward` (0.0). Last round, per agent: `round`, `answer` (int or None),
`correct`, `parsed`, `individual_reward` (1.0 if its own answer is right). At the last step
each agent's info also holds `episode`: `score` (team success, 0.0/1.0), `score_by_round`
(0.0 for message rounds, then the score), `team_correct`, `agents_correct` (fraction of
counted agents right), `answers` and `numbers` (by agent), `target`, `parse_failures`,
`solvable` (whether the graph and the message rounds let every number reach every counted
agent), `chance`, and the bus counts `messages`, `deliveries`, `message_chars`, `refused`.

### Termination

All agents terminate together after `rounds` steps (never truncated). `max_rounds` (=
`rounds`) is the episode length; `max_cycles` exists for PettingZoo's tests.

### Seeding

`reset(seed=s)` seeds the numbers; a later `reset()` without a seed draws the next ones
from the same stream. `reset(options={"numbers": [...]})` deals the given numbers (as many
as the team holds); other option keys are ignored.

### Version history

* v0: initial release. Deliberately left out: other target quantities (max, product) and
  per-round answers; a sum with numbers drawn wide makes guessing hopeless, which is
  what a communication game needs.
* v0, quoted messages: a received message is shown on the lines after its header, each
  after `| ` (before, it followed `[round r] sender: ` as it was, so a line in it could pose
  as a message from another agent); the observation space grew to fit.
* v0, whole numbers: the answer's number is read whole, exponent included (before,
  `Answer: 1e3` and `1e999` were read as 1, `1,2345` as 1 or 2345).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium
import networkx as nx
import numpy as np
from pydantic import Field

from marl.core.bus import Message
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
from scenarios.parsing import parse_integer_answer, sanitize_text

MAX_ACTION_CHARS = 4000
# Observation budget: fixed text, then the team's ids (listed up to three times), the
# agent's numbers and, per received message, a header (round, sender) and its quoted content.
PROMPT_CHARS = 1200
MESSAGE_HEADER_CHARS = 20


class RelayOptions(ScenarioOptions):
    """The relay game's options, as written under `scenario.options` in a config."""

    rounds: int = rounds_option(
        2,
        "Steps per episode: rounds-1 message rounds, then the answer round. A "
        "number crosses one graph edge per message round (a chain of n needs n-1).",
        minimum=2,
    )
    digits: int = Field(
        2,
        ge=1,
        le=4,
        description="Digits per private number (2: 10-99). More digits make a guess "
        "hopeless and the sum harder.",
    )
    numbers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Private numbers in all, dealt round-robin in team order; null: one per "
        "agent. Set it to the team size so that one agent alone (the single-agent "
        "baseline) adds as many numbers as the team.",
    )
    reporter: str | None = Field(
        None,
        min_length=1,
        description="Id of the agent whose answer is the team's; null: every agent must "
        "report the right sum. Ignored when one agent plays alone.",
    )
    message_chars: int = message_chars_option(
        200,
        "Characters of a message-round completion (its beginning) sent to "
        "the agent's out-neighbours.",
        action_chars=MAX_ACTION_CHARS,
    )


@functools.cache
def guess_chance(hidden: int, digits: int) -> float:
    """Probability that the best blind guess names the sum of ``hidden`` unseen numbers.

    The numbers are uniform on the ``digits``-digit integers; the best guess is the mode of
    their sum, so this is max_s P(X_1 + ... + X_hidden = s) (1.0 when nothing is hidden).
    """
    values = 9 * 10 ** (digits - 1)
    pmf = np.ones(1)  # pmf[s]: probability that the sum so far is its minimum plus s
    for _ in range(hidden):  # add one uniform term: pmf'[s] = mean of pmf[s-values+1 .. s]
        cumulative = np.concatenate(([0.0], np.cumsum(pmf)))
        s = np.arange(len(pmf) + values - 1)
        upper = cumulative[np.minimum(s, len(pmf) - 1) + 1]
        lower = cumulative[np.maximum(s - values + 1, 0)]
        pmf = (upper - lower) / values
    return float(pmf.max())


def _shown(answer: int | None) -> str:
    return "none found" if answer is None else str(answer)


def _listed(ids: Sequence[str]) -> str:
    return ", ".join(ids) if ids else "nobody"


class RelayEnv(TextTeamEnv):
    """Each agent sees its own numbers; the team must report their sum after talking."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "relay_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }
    options_model: ClassVar[type[RelayOptions]] = RelayOptions
    baselines_not_applicable: ClassVar[Mapping[str, str]] = {
        reason_key: "only the team holds all the secret numbers: one agent, or a vote of "
        "agents who each hold a part, cannot know the sum"
        for reason_key in ("vote", "self_consistency", "solo_rounds")
    }

    def __init__(
        self,
        agent_ids: Sequence[str] = ("agent_0", "agent_1"),
        graph: nx.DiGraph | None = None,
        options: RelayOptions | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **option_values: Any,
    ) -> None:
        super().__init__(agent_ids, graph, options, render_mode, **option_values)
        alone = len(self.possible_agents) == 1
        reporter = None if alone else self.options.reporter
        if reporter is not None and reporter not in self.possible_agents:
            raise ValueError(
                f"reporter '{reporter}' is not a team agent; agents: {self.possible_agents}"
            )
        self.reporter = reporter
        self.counted = [reporter] if reporter is not None else list(self.possible_agents)
        self._init_length(self.options.rounds)

        # Who holds which of the numbers (dealt round-robin): fixed by the team and options.
        count = self.options.numbers or len(self.possible_agents)
        self._slots = {
            a: list(range(i, count, len(self.possible_agents)))
            for i, a in enumerate(self.possible_agents)
        }
        self.solvable = self._solvable()
        self.chance = min(
            guess_chance(count - len(self._slots[a]), self.options.digits) for a in self.counted
        )

        ids_chars = sum(len(a) + 2 for a in self.possible_agents)
        longest_id = max(map(len, self.possible_agents))
        most_heard = max(degree for _, degree in self.graph.in_degree)
        per_message = MESSAGE_HEADER_CHARS + longest_id + quoted_chars(self.options.message_chars)
        obs_chars = (
            PROMPT_CHARS
            + 3 * ids_chars
            + count * (self.options.digits + 2)
            + (self.options.rounds - 1) * most_heard * per_message
        )
        self._init_spaces(obs_chars, MAX_ACTION_CHARS)

        self._rng = random.Random()
        self.round = 0
        self.numbers: list[int] = []
        self.target = 0
        self._received: dict[str, list[Message]] = {}
        self._answers: dict[str, int | None] = {}

    def agent_roles(self) -> dict[str, str]:
        """Which of the numbers each agent holds, and whether its answer counts."""
        count = sum(map(len, self._slots.values()))
        return {
            a: f"{'reporter' if a == self.reporter else 'member'} holding numbers "
            f"{self._slots[a]} of {count}" + ("" if a in self.counted else ", not counted")
            for a in self.possible_agents
        }

    def holdings(self, agent: str) -> list[int]:
        """The private numbers ``agent`` sees this episode."""
        return [self.numbers[k] for k in self._slots[agent]]

    def _solvable(self) -> bool:
        """Can every number reach every counted agent within the message rounds?"""
        hops = self.options.rounds - 1
        for holder, slots in self._slots.items():
            if slots:
                reach = nx.single_source_shortest_path_length(self.graph, holder, cutoff=hops)
                if any(a not in reach for a in self.counted):
                    return False
        return True

    # ---------------------------------------------------------------- episode

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = random.Random(seed)
        count = sum(map(len, self._slots.values()))
        given = (options or {}).get("numbers")
        if given is None:
            low, high = 10 ** (self.options.digits - 1), 10**self.options.digits - 1
            given = [self._rng.randint(low, high) for _ in range(count)]
        elif len(given) != count or not all(type(n) is int for n in given):
            raise ValueError(f"options['numbers'] must be a list of {count} ints, got {given!r}")
        self.numbers = list(given)
        self.target = sum(self.numbers)
        self.agents = list(self.possible_agents)
        self.round = 0
        self.bus.reset()
        self._received = {a: [] for a in self.agents}
        self._answers = {}
        return {a: self._prompt(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, str]) -> StepResult:
        self._check_actions(actions)
        if self.round == self.options.rounds - 1:
            return self._answer_round(actions)
        return self._message_round(actions)

    def _message_round(self, actions: dict[str, str]) -> StepResult:
        infos = {}
        for agent in self.agents:
            content = sanitize_text(actions[agent].strip(), CHARSET, self.options.message_chars)
            if content:
                self.bus.send(agent, content, round=self.round)
            infos[agent] = {
                "round": self.round,
                "message_chars": len(content),
                "individual_reward": 0.0,
            }
        for agent in self.agents:
            self._received[agent] += self.bus.drain(agent)
        self.round += 1
        observations = {a: self._prompt(a) for a in self.agents}
        return self._end_step(observations, infos, 0.0, self.agents)

    def _answer_round(self, actions: dict[str, str]) -> StepResult:
        self._answers = {
            a: parse_integer_answer(actions[a][-MAX_ACTION_CHARS:]) for a in self.agents
        }
        correct = {a: self._answers[a] == self.target for a in self.agents}
        infos = {
            a: {
                "round": self.round,
                "answer": self._answers[a],
                "correct": correct[a],
                "parsed": self._answers[a] is not None,
                "individual_reward": float(correct[a]),
            }
            for a in self.agents
        }
        observations = {
            a: self._observe(f"Relay game over. Your answer: {_shown(self._answers[a])}.")
            for a in self.agents
        }
        self.round += 1
        return self._end_step(observations, infos, float(self._team_correct()), [])

    # ------------------------------------------------------------ observations

    def _prompt(self, agent: str) -> str:
        # Short and plain on purpose: small models lose the thread in long instructions.
        rounds, last = self.options.rounds, self.round == self.options.rounds - 1
        count, alone = len(self.numbers), len(self.possible_agents) == 1
        lines = [f"Relay game, round {self.round + 1} of {rounds}{' (the last)' if last else ''}."]
        if alone:
            lines.append(f"You are {agent}, playing alone; you see all {count} secret numbers.")
        else:
            team = _listed([a for a in self.possible_agents if a != agent])
            lines.append(f"You are {agent}, on a team with {team}.")
            lines.append(f"The team has {count} secret numbers; each agent sees only its own.")
        who = "you" if alone or self.reporter == agent else self.reporter or "every agent"
        lines.append(f"In the last round, {who} must give the sum of all {count}.")
        mine = self.holdings(agent)
        if mine:
            plural = "s" if len(mine) > 1 else ""
            lines.append(f"Your secret number{plural}: {', '.join(map(str, mine))}")
        else:
            lines.append("You have no secret number.")
        received = self._received[agent]
        if received:
            lines.append("Messages you received:")
            for m in received:
                lines += [f"[round {m.round + 1}] {m.sender}:", quoted(m.content)]
        elif self.graph.in_degree(agent):
            lines.append("Messages you received: none.")
        readers = self.bus.neighbours(agent)
        if last:
            counts = "" if agent in self.counted else f" (only {self.reporter}'s answer counts)"
            where = "" if alone else " (yours and those in the messages)"
            lines.append(
                f"Question: what is the sum of all {count} secret numbers{where}?{counts} "
                "Think step by step, then finish with a line `Answer: <integer>`."
            )
        elif readers:
            example = f"{agent}: {mine[0]}" if mine else "<agent>: <number>"
            lines.append(
                f"Write one short message to {_listed(readers)} with every secret number you "
                f'know and whose it is, like "{example}".'
            )
        else:
            lines.append("Nobody reads what you write this round; write a short note.")
        return self._observe("\n".join(lines))

    def _team_correct(self) -> bool:
        """Did every counted agent answer the sum?"""
        return all(self._answers[a] == self.target for a in self.counted)

    def _episode_metrics(self) -> dict[str, Any]:
        team_correct = self._team_correct()
        score = float(team_correct)
        return {
            "score": score,
            "score_by_round": [0.0] * (self.options.rounds - 1) + [score],
            "team_correct": team_correct,
            "agents_correct": sum(self._answers[a] == self.target for a in self.counted)
            / len(self.counted),
            "answers": dict(self._answers),
            "numbers": {a: self.holdings(a) for a in self.possible_agents},
            "target": self.target,
            "parse_failures": sum(ans is None for ans in self._answers.values()),
            "solvable": self.solvable,
            "chance": self.chance,
            **self._bus_counts(),
        }

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        if not self.numbers:
            return "relay_v0: not started (call reset())"
        lines = [f"relay_v0 round {self.round}/{self.options.rounds}: target {self.target}"]
        for a in self.possible_agents:
            held = ", ".join(map(str, self.holdings(a))) or "-"
            answer = f"  answer {_shown(self._answers[a])}" if a in self._answers else ""
            lines.append(f"  {a}: holds {held}{answer}")
        return "\n".join(lines)


def parallel_env(**kwargs: Any) -> RelayEnv:
    """Build a ``RelayEnv``, the PettingZoo factory convention."""
    return RelayEnv(**kwargs)
