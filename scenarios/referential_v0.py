"""
# Referential game

| Creation           | `make("parallel", "marl/referential-v0")` after `import scenarios` |
|--------------------|--------------------------------------------------------------------|
| Actions            | Text (the agent's completion)                                      |
| Parallel API       | Yes                                                                |
| Agents             | `agents= ['agent_0', 'agent_1']` (any ids, 1 or more)              |
| Action space       | `Text(0..4000, charset=string.printable)`; longer text is cut       |
| Observation space  | `Text(1..N, charset=string.printable)`, N from graph and options   |
| Rewards            | one team reward for every live agent, 0.0 or 1.0, at the last step |
| Episode length     | `rounds` steps                                                     |

A coordination game with private information (Lewis signalling, as in Lazaridou et al.
2017). `candidates` simple objects are drawn ("red circle", or "small red circle" with
three `attributes`); one is the target. The speaker (option `speaker`, default the first
agent) sees them numbered with the target marked and writes one message, which goes to
its out-neighbours on the interaction graph. The listeners (every other agent) see the
same objects in their own shuffled, numbered order without the mark and must pick the
target. The team succeeds when every listener's last pick is the target. Numbers cannot
help: every agent's numbering is shuffled independently, so only a description works.

Agents take turns: the speaker acts in round 1 only and is then done; the listeners join
`agents` after it and act in rounds 2 .. `rounds`. In each listener round every listener
picks; in all but the last, what it writes also goes to its out-neighbours (not back to
the speaker), so on a chain the description can be relayed one hop per round. Only the
last round's picks count.

With one agent, the agent plays both parts, which is the single-agent baseline: in round
1 it sees the target marked and writes a description; from round 2 on it sees the
candidates reshuffled, unmarked, beside its own description, and picks.

### Difficulty and chance level

`candidates` (K) sets the chance level: a listener who hears nothing picks the target with
probability 1/K, and a team of L listeners that never talks succeeds with (1/K)^L (one
listener, or one agent alone with a useless description: 1/K). `distractors: similar`
makes every other object differ from the target in exactly one attribute, so a
description must name all of them; `attributes: 3` adds sizes. Each episode reports the
metric `chance`.

### Observations

Speaker: the round, the team, (with `name_target`, the sentence "The target is the
<name>."), the numbered candidates with the target marked, who reads
its message, and the request to describe the target by name. Listener: the round, the
speaker's id, its own numbered candidates, every message received so far (a line
`[round <r>] <sender>:`, then the message with every line after `| `), and the request to
pick, finishing with `Answer: <number>`; an agent alone sees its own description quoted
the same way. Quoting (`scenarios.base.quoted`) keeps a message from writing a line that
looks like another sender's. Characters outside `string.printable` become `?`, so an
observation always lies in its space.

### Actions and parsing

A message is the first `message_chars` characters of the stripped completion (a blank
one sends nothing). A pick is read from the last 4000 characters by `parse_choice`: the
candidate after the last `Answer:` marker (a number in the listener's list, or a name),
else the candidate named last, else the last number in the list's range. A number outside
the list or no candidate at all is no pick, wrong, and counted in `parse_failures`.

### Rewards

0.0 until the last step; then 1.0 if every listener's pick is the target, else 0.0. Every
agent live at a step gets the same reward.

### Infos

Speaker (round 0): `role`, `round`, `message_chars`, `individual_reward` (0.0: it is done
before any pick). Listener: `role`, `round`, `choice` (candidate name or None),
`correct`, `parsed`, `individual_reward` (1.0 for its own right pick at the last step).
At the last step each agent's info also holds `episode`: `score` (team success, 0.0/1.0),
`score_by_round` (0.0 for round 1, then whether every listener's pick was right that
round), `team_correct`, `listeners_correct` (fraction right at the end), `choices` (by
listener), `target`, `candidates`, `speaker_named_target` (the speaker's message names the
target), `parse_failures`, `solvable` (the speaker reaches every listener within the
rounds), `chance`, and the bus counts `messages`, `deliveries`, `message_chars`, `refused`.

### Termination

The speaker terminates after round 1 and the listeners after `rounds` steps (never
truncated); `agents` is then empty. `max_rounds` (= `rounds`) is the episode length;
`max_cycles` exists for PettingZoo's tests.

### Seeding

`reset(seed=s)` seeds the objects and every agent's order; a later `reset()` without a
seed draws the next game from the same stream. Option keys passed to `reset` are ignored.

### Version history

* v0: initial release. Deliberately left out: speaker turns after round 1 (no
  clarification dialogue) and pictures; text objects keep the game checkable.
* v0, option `name_target` (default off, so every earlier game is unchanged): the
  speaker's prompt also names the target in a sentence.
* v0, quoted messages: a received message (and the lone agent's own description) is shown
  on the lines after its header, each after `| ` (before, it followed `[round r] sender: `
  as it was, so a line in it could pose as a message from another agent); the observation
  space grew to fit.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import gymnasium
import networkx as nx
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
from scenarios.parsing import FALLBACK_WINDOW, MARKER_WINDOW, sanitize_text

MAX_ACTION_CHARS = 4000
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white")
SHAPES = ("circle", "square", "triangle", "star", "heart", "diamond", "cross", "moon")
SIZES = ("small", "medium", "large")
# Observation budget: fixed text, the team's ids, one line per candidate, the lone agent's
# own description and, per received message, a header (round, sender) and its content,
# both quoted.
PROMPT_CHARS = 1200
CANDIDATE_CHARS = 40
MESSAGE_HEADER_CHARS = 20
MARK = "  <-- the target"


class ReferentialOptions(ScenarioOptions):
    """The referential game's options, as written under `scenario.options` in a config."""

    rounds: int = rounds_option(
        2,
        "Steps per episode: the speaker's round, then rounds-1 listener rounds "
        "(listeners relay along the graph; the last round's picks count).",
        minimum=2,
    )
    candidates: int = Field(
        4,
        ge=2,
        le=10,
        description="K, the objects shown; a listener who hears nothing is right with "
        "probability 1/K.",
    )
    attributes: Literal[2, 3] = Field(
        2, description="2: colour and shape ('red circle'); 3: size too ('small red circle')."
    )
    distractors: Literal["random", "similar"] = Field(
        "random",
        description="'random': any other objects; 'similar': each differs from the target "
        "in exactly one attribute, so a description must name every attribute.",
    )
    speaker: str | None = Field(
        None,
        min_length=1,
        description="Id of the speaker (null: the first agent). Ignored when one agent plays "
        "alone: it is then both speaker and listener.",
    )
    message_chars: int = message_chars_option(
        200,
        "Characters of a completion (its beginning) sent as a message.",
        action_chars=MAX_ACTION_CHARS,
    )
    name_target: bool = Field(
        False,
        description="The speaker's prompt also names the target in a sentence above the "
        "list ('The target is the red heart.'), not only by the mark: SmolLM2-135M reads "
        "the mark so rarely that its messages name the target 5 times in 96.",
    )


_SEPARATORS = re.compile(r"[\s_-]+")
_MARKER = re.compile(  # what follows the marker is read by lookahead: markers may be close
    r"answer(?: is)?[ :=*#.(\"'`]{0,8}(?:the )?(?:(?:number|candidate|option|object|no\.?) ?#? ?)?"
    r"(?=(?P<rest>[a-z0-9 ]{1,60}))"
)
_NUMBER = re.compile(r"(?<![\w.])(?P<num>[0-9]{1,3})(?![0-9])")


def _flat(text: str) -> str:
    """Lower case, every run of spaces, '_' or '-' one space: how names are compared."""
    return _SEPARATORS.sub(" ", text.lower())


def _last_mention(flat: str, name: str) -> int:
    """Where ``name`` last occurs in ``flat`` as whole words, or -1."""
    end = len(flat)
    while (at := flat.rfind(name, 0, end)) >= 0:
        after = at + len(name)
        if (at == 0 or not flat[at - 1].isalpha()) and (
            after == len(flat) or not flat[after].isalpha()
        ):
            return at
        end = at + len(name) - 1
    return -1


def _read_pick(rest: str, names: list[str], count: int) -> int | None:
    """The pick written right after an answer marker: a number, or a name; None if neither."""
    digits = re.match(r"[0-9]{1,3}(?![0-9])", rest)
    if digits:
        number = int(digits.group())
        return number - 1 if 1 <= number <= count else -1
    for k, name in enumerate(names):
        if rest.startswith(name) and not rest[len(name) : len(name) + 1].isalpha():
            return k
    return None


def parse_choice(text: str, candidates: Sequence[str]) -> int | None:
    """Index into ``candidates`` (as the agent saw them, numbered from 1) of its pick.

    Tries, in order of trust: the last ``Answer:`` marker followed by a number or a name;
    the candidate named last; the last number in the text. A number outside 1..K gives
    ``None``, as does text naming no candidate. Names match in any case and spacing.
    Never raises; linear in the text's length (markers searched in the last
    ``MARKER_WINDOW`` characters, bare numbers in the last ``FALLBACK_WINDOW``).
    """
    names = [_flat(c) for c in candidates]
    flat = _flat(text[-MARKER_WINDOW:])
    for marker in reversed(list(_MARKER.finditer(flat))):
        pick = _read_pick(marker.group("rest"), names, len(names))
        if pick is not None:
            return None if pick < 0 else pick
    mentions = [_last_mention(flat, name) for name in names]
    if max(mentions) >= 0:
        return mentions.index(max(mentions))
    numbers = list(_NUMBER.finditer(text[-FALLBACK_WINDOW:]))
    if not numbers:
        return None
    number = int(numbers[-1].group("num"))
    return number - 1 if 1 <= number <= len(candidates) else None


def draw_objects(
    rng: random.Random, count: int, attributes: int, distractors: str
) -> tuple[str, list[str]]:
    """A target and ``count`` distinct candidates (target included, in drawing order)."""
    axes = (COLOURS, SHAPES) if attributes == 2 else (SIZES, COLOURS, SHAPES)
    target = tuple(rng.choice(axis) for axis in axes)
    if distractors == "similar":  # every object one attribute away from the target
        pool = [
            (*target[:i], value, *target[i + 1 :])
            for i, axis in enumerate(axes)
            for value in axis
            if value != target[i]
        ]
    else:
        pool = [obj for obj in itertools.product(*axes) if obj != target]
    others = rng.sample(pool, count - 1)
    objects = [target, *others]
    rng.shuffle(objects)
    return " ".join(target), [" ".join(obj) for obj in objects]


class ReferentialEnv(TextTeamEnv):
    """A speaker sees the target among K objects; listeners must pick it from its message."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "referential_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }
    options_model: ClassVar[type[ReferentialOptions]] = ReferentialOptions
    baselines_not_applicable: ClassVar[Mapping[str, str]] = {
        reason_key: "the speaker alone sees the target and the listeners alone choose: "
        "there is no answer one member gives in round 1, and the single-agent version "
        "already plays both parts"
        for reason_key in ("vote", "self_consistency", "solo_rounds")
    }

    def __init__(
        self,
        agent_ids: Sequence[str] = ("agent_0", "agent_1"),
        graph: nx.DiGraph | None = None,
        options: ReferentialOptions | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **option_values: Any,
    ) -> None:
        super().__init__(agent_ids, graph, options, render_mode, **option_values)
        self.alone = len(self.possible_agents) == 1
        speaker = self.options.speaker
        if self.alone or speaker is None:
            speaker = self.possible_agents[0]
        elif speaker not in self.possible_agents:
            raise ValueError(
                f"speaker '{speaker}' is not a team agent; agents: {self.possible_agents}"
            )
        self.speaker = speaker
        # Whose picks count: the listeners, or the lone agent in its listener rounds.
        self.listeners = [a for a in self.possible_agents if a != speaker] or [speaker]
        self._init_length(self.options.rounds)
        reach = nx.single_source_shortest_path_length(
            self.graph, speaker, cutoff=self.options.rounds - 1
        )
        self.solvable = self.alone or all(a in reach for a in self.listeners)
        self.chance = (1 / self.options.candidates) ** len(self.listeners)

        ids_chars = sum(len(a) + 2 for a in self.possible_agents)
        longest_id = max(map(len, self.possible_agents))
        most_heard = max(degree for _, degree in self.graph.in_degree)
        per_message = MESSAGE_HEADER_CHARS + longest_id + quoted_chars(self.options.message_chars)
        obs_chars = (
            PROMPT_CHARS
            + 2 * ids_chars
            + self.options.candidates * CANDIDATE_CHARS
            + quoted_chars(self.options.message_chars)
            + (self.options.rounds - 1) * most_heard * per_message
        )
        self._init_spaces(obs_chars, MAX_ACTION_CHARS)

        self._rng = random.Random()
        self.round = 0
        self.target = ""
        self.candidates: list[str] = []
        self._orders: dict[str, list[str]] = {}  # speaker's view, then each listener's
        self._speaker_order: list[str] = []
        self._description = ""  # the speaker's message
        self._received: dict[str, list[Message]] = {}
        self._choices: dict[str, str | None] = {}
        self._team_by_round: list[bool] = []
        self._parse_failures = 0

    def agent_roles(self) -> dict[str, str]:
        if self.alone:
            return {self.speaker: "speaker and listener"}
        return {a: "speaker" if a == self.speaker else "listener" for a in self.possible_agents}

    def order(self, agent: str) -> list[str]:
        """The candidates as listener ``agent`` sees them, numbered from 1."""
        return self._orders[agent]

    # ---------------------------------------------------------------- episode

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = random.Random(seed)
        o = self.options
        self.target, self.candidates = draw_objects(
            self._rng, o.candidates, o.attributes, o.distractors
        )
        self._speaker_order = self._rng.sample(self.candidates, len(self.candidates))
        self._orders = {
            a: self._rng.sample(self.candidates, len(self.candidates)) for a in self.listeners
        }
        self.agents = [self.speaker]
        self.round = 0
        self.bus.reset()
        self._description = ""
        self._received = {a: [] for a in self.possible_agents}
        self._choices = {}
        self._team_by_round = []
        self._parse_failures = 0
        return {self.speaker: self._speaker_prompt()}, {self.speaker: {}}

    def step(self, actions: dict[str, str]) -> StepResult:
        self._check_actions(actions)
        if self.round == 0:
            return self._speaker_round(actions[self.speaker])
        return self._listener_round(actions)

    def _message(self, completion: str) -> str:
        return sanitize_text(completion.strip(), CHARSET, self.options.message_chars)

    def _speaker_round(self, completion: str) -> StepResult:
        self._description = self._message(completion)
        if self._description and not self.alone:
            self.bus.send(self.speaker, self._description, round=0)
        infos = {
            self.speaker: {
                "role": "speaker",
                "round": 0,
                "message_chars": len(self._description),
                "individual_reward": 0.0,
            }
        }
        self._team_by_round.append(False)  # nobody has picked yet
        self.round = 1
        for agent in self.listeners:
            self._received[agent] += self.bus.drain(agent)
        observations = {a: self._listener_prompt(a) for a in self.listeners}
        if not self.alone:  # the speaker is done; the listeners join
            observations[self.speaker] = self._observe("Reference game: your part is over.")
            infos.update({a: {} for a in self.listeners})
        return self._end_step(observations, infos, 0.0, self.listeners)

    def _listener_round(self, actions: dict[str, str]) -> StepResult:
        last = self.round == self.options.rounds - 1
        for agent in self.agents:
            completion = actions[agent][-MAX_ACTION_CHARS:]
            k = parse_choice(completion, self._orders[agent])
            self._choices[agent] = None if k is None else self._orders[agent][k]
            self._parse_failures += k is None
        correct = {a: self._choices[a] == self.target for a in self.agents}
        team_correct = all(correct.values())
        self._team_by_round.append(team_correct)
        if not last:  # picks so far travel on, never back to the departed speaker
            for agent in self.agents:
                content = self._message(actions[agent])
                readers = [n for n in self.bus.neighbours(agent) if n != self.speaker]
                if content and readers:
                    self.bus.send(agent, content, round=self.round, recipients=readers)
            for agent in self.agents:
                self._received[agent] += self.bus.drain(agent)
        infos = {
            a: {
                "role": "listener",
                "round": self.round,
                "choice": self._choices[a],
                "correct": correct[a],
                "parsed": self._choices[a] is not None,
                "individual_reward": float(correct[a] and last),
            }
            for a in self.agents
        }
        self.round += 1
        if last:
            observations = {
                a: self._observe(f"Reference game over. Your pick: {self._choices[a] or 'none'}.")
                for a in self.agents
            }
            return self._end_step(observations, infos, float(team_correct), [])
        observations = {a: self._listener_prompt(a) for a in self.agents}
        return self._end_step(observations, infos, 0.0, self.agents)

    # ------------------------------------------------------------ observations

    def _header(self) -> str:
        last = " (the last)" if self.round == self.options.rounds - 1 else ""
        return f"Reference game, round {self.round + 1} of {self.options.rounds}{last}."

    def _speaker_prompt(self) -> str:
        listed = [
            f"{k}. {name}{MARK if name == self.target else ''}"
            for k, name in enumerate(self._speaker_order, 1)
        ]
        named = [f"The target is the {self.target}."] if self.options.name_target else []
        if self.alone:
            return self._observe(
                "\n".join(
                    [
                        self._header(),
                        f"You are {self.speaker}, playing alone.",
                        *named,
                        "Candidates:",
                        *listed,
                        "Write a description of the target. Next round you will see these "
                        "candidates again in another order, without the mark, beside your "
                        "description, and must pick the target: name it, its number will "
                        "change.",
                    ]
                )
            )
        readers = self.bus.neighbours(self.speaker)
        lines = [
            self._header(),
            f"You are {self.speaker}, the speaker; the listeners are {', '.join(self.listeners)}.",
            *named,
            "Candidates (only you know which one is the target):",
            *listed,
            "The listeners see the same candidates in another order, without the mark, and "
            "know only what they are told.",
        ]
        if readers:
            lines.append(
                f"Your message goes to: {', '.join(readers)}. Describe the target so that "
                "they can pick it out: name it, not its number (their numbers differ)."
            )
        else:
            lines.append("Nobody hears you (you have no out-edges); describe the target anyway.")
        return self._observe("\n".join(lines))

    def _listener_prompt(self, agent: str) -> str:
        listed = [f"{k}. {name}" for k, name in enumerate(self._orders[agent], 1)]
        ask = (
            "Which candidate is the target? Finish with a line `Answer: <number>` "
            "(its number in your list above)."
        )
        if self.alone:
            lines = [
                self._header(),
                f"You are {agent}, playing alone.",
                "Candidates:",
                *listed,
                "Your description of the target, written when you could see it:",
                quoted(self._description) if self._description else "(empty)",
                ask,
            ]
            return self._observe("\n".join(lines))
        lines = [
            self._header(),
            f"You are {agent}, a listener. The speaker, {self.speaker}, saw which of these "
            "objects is the target; you did not.",
            "Candidates:",
            *listed,
        ]
        received = self._received[agent]
        if received:
            lines.append("Messages you received so far:")
            for m in received:
                lines += [f"[round {m.round + 1}] {m.sender}:", quoted(m.content)]
        else:
            lines.append("Messages you received so far: none.")
        readers = [n for n in self.bus.neighbours(agent) if n != self.speaker]
        if self.round < self.options.rounds - 1 and readers:
            ask += (
                f" What you write also goes to: {', '.join(readers)}; name the target, not "
                "just its number (their numbers differ)."
            )
        lines.append(ask)
        return self._observe("\n".join(lines))

    def _episode_metrics(self) -> dict[str, Any]:
        named = _last_mention(_flat(self._description), _flat(self.target)) >= 0
        team_correct = self._team_by_round[-1]
        return {
            "score": float(team_correct),
            "score_by_round": [float(c) for c in self._team_by_round],
            "team_correct": team_correct,
            "listeners_correct": sum(self._choices[a] == self.target for a in self.listeners)
            / len(self.listeners),
            "choices": dict(self._choices),
            "target": self.target,
            "candidates": list(self.candidates),
            "speaker_named_target": named,
            "parse_failures": self._parse_failures,
            "solvable": self.solvable,
            "chance": self.chance,
            **self._bus_counts(),
        }

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        if not self.target:
            return "referential_v0: not started (call reset())"
        lines = [
            f"referential_v0 round {self.round}/{self.options.rounds}: target {self.target} "
            f"among {', '.join(self.candidates)}",
            f"  {self.speaker} (speaker): {self._description or '-'}",
        ]
        if not self.alone:
            lines += [f"  {a}: {self._choices.get(a) or '-'}" for a in self.listeners]
        return "\n".join(lines)


def parallel_env(**kwargs: Any) -> ReferentialEnv:
    """Build a ``ReferentialEnv``, the PettingZoo factory convention."""
    return ReferentialEnv(**kwargs)
