"""
# Debate

| Creation           | `make("parallel", "marl/debate-v0")` after `import scenarios`     |
|--------------------|-------------------------------------------------------------------|
| Actions            | Text (the agent's completion)                                     |
| Parallel API       | Yes                                                               |
| Agents             | `agents= ['agent_0', 'agent_1', 'agent_2']` (any ids, 1 or more)  |
| Action space       | `Text(0..4000, charset=string.printable)`; longer text is cut      |
| Observation space  | `Text(1..N, charset=string.printable)`, N from graph and options  |
| Rewards            | one team reward for every agent, 0.0 or 1.0                       |
| Episode length     | `rounds` steps, plus one for the judge when there is one          |

Multi-agent debate on arithmetic (Du et al. 2023): every agent answers the same problem,
reads what its in-neighbours on the interaction graph answered, and answers again, for
`rounds` rounds. With one agent (a graph without edges) it is the single-agent baseline:
the agent only sees its own previous answer. `wordmath_v0` is this protocol on word
problems: subclasses change the task source (`sample_task`) and the options' `task`.

With `judge: <agent id>` that agent does not debate. The others (the debaters) debate for
`rounds` steps; then they are done and the judge joins for one more step: it reads every
debater's final answer and its own answer is the team's, instead of the majority vote.
Every debater needs an edge to the judge (the `star` preset with `hub: <judge>`); edges
between debaters let them debate before the judge decides. With one agent the judge
option is ignored, so a judge config still has its single-agent baseline.

### Observations

Round 0: the question and the instruction to finish with a line `Answer: <integer>`.
Later rounds: the question, the agent's own previous answer, and each message received
this round: a line `[<sender>] answer: <its parsed answer>`, then the end of its completion
with every line after `| ` (`scenarios.base.quoted`: a completion cannot write a line that
looks like another sender's), then the request to reconsider and answer again.
`peer_display="attributed"` names each sender by its id; `"anonymous"` calls them
`Agent 1`, `Agent 2`, ... in a fresh random order in every observation.
`max_neighbours_shown: k` shows a debater at most k of the messages it received (a random
subset, in delivery order unless anonymous). The judge's one observation is the question
and every debater's final answer, shown the same way but never cut to k. Characters
outside `string.printable` become `?`, so an observation always lies in its space.

### Actions and messages

An action is the agent's completion; only its last 4000 characters are read. The parsed
answer (`scenarios.parsing.parse_integer_answer`) plus the last `message_chars` characters
of the completion go on the message bus to the agent's out-neighbours, with
`meta={"answer": parsed}`. Messages never leave the graph's edges. With a judge,
debaters send to it only in the last debate round; the judge sends nothing. A number in an
answer is read whole and is the answer only when it is an exact integer of at most 18
digits: `Answer: 1e3` and `Answer: 1,000` are 1000, `Answer: 2.0` is 2, while `1.5`,
`1e-3`, `1e999` or `1,2345` are no answer (unparsed), never a part of the number.

### Rewards

Team answer = majority vote over the round's parsed answers; unparsed answers do not vote,
a tie goes to the tied answer given first in team order, no parsed answer means no team
answer (wrong). `reward="final"`: 1.0 at the last step if the final team answer is right,
else 0.0 (0.0 on earlier steps). `reward="every_round"`: every step pays that round's
team correctness. Every agent gets the same reward. With a judge, the team answer of a
debate round is still the debaters' majority (paid only by `every_round`) and the judge's
step pays the judge's correctness; that step is the last.

`reward="maporl"` (MAPoRL, Park et al. 2025, arXiv 2502.18439: a verifier scores every
agent's answer every turn, plus incentives for corrective and persuasive discussion): the
team reward is `final`'s, and every round each debater's `individual_reward` is

    r_i,t = c_i,t + influence * (share of the agents that heard i at round t-1 with c_j,t = 1)
                  + corrective  if c_i,t = 1 and the majority of what i heard at t-1 was wrong
                  + agreeing    if c_i,t = 1 and that majority was right
                  - stubborn    if c_i,t = 0 and that majority was right
                  - following   if c_i,t = 0 and that majority was wrong too

with c = 1 for the exact right answer (the verifier is the answer check, which a program
cannot talk into a higher score), the majority taken over the parsed answers i received at
t-1 (none parsed: no majority, which counts as wrong), and no influence or incentive term
in round 0 (nobody has spoken yet). The weights are `maporl: {influence, corrective,
agreeing, stubborn, following}`. A trainer's return R_t = r_t + gamma * R_t+1 then carries
the paper's influence-aware credit: a turn is paid for the later answers it moved.
Algorithm `igrpo` learns from these per-agent rewards; `magrpo` keeps the team reward.

### Infos

Every step, per agent: `answer` (int or None), `correct`, `parsed`, `round` (0-based),
`individual_reward` (its own correctness, paid on the steps the team reward is paid; with
`reward: maporl` its MAPoRL reward, every round).
At the last step each agent's info also holds `episode`: `score` (the final team
correctness as 0.0/1.0) and `score_by_round` (the marl scenario contract), `team_correct_by_round`,
`team_answer`, `team_correct`, `consensus` (fraction of agents giving the final team
answer), `parse_failures` (unparsed answers over the episode), `messages`, `deliveries`,
`message_chars`, `refused` (bus counts) and `target`. With a judge, `score_by_round` has
one entry per step (the debaters' majority, then the judge), `consensus` counts debaters
agreeing with the judge, and `majority_answer` and `majority_correct` tell what the
debaters' final majority vote would have given. All values are msgpack-friendly.

### Termination

All agents terminate together after `rounds` steps (never truncated); `agents` is then
empty. With a judge the debaters terminate after `rounds` steps, when the judge joins
`agents`, and the judge terminates one step later. `max_rounds` (`rounds`, plus one with
a judge) is the episode length the rollout engine plans for; `max_cycles` exists for
PettingZoo's tests and does not change the length.

### Seeding

`reset(seed=s)` seeds the problem generator; a later `reset()` without a seed draws the
next problem from the same stream (the Gymnasium convention). The random order and
subsets of shown peers come from a second stream, also seeded by `reset(seed=s)`, so the
problems do not depend on the display options. `reset(options={"problem": Problem(...)})`
poses a given problem; other option keys are ignored.

### Version history

* v0: initial release; `judge`, `peer_display` and `max_neighbours_shown` added as options
  whose defaults keep the original behaviour.
* v0, quoted messages: a received completion is shown with `| ` before each of its lines
  (before, its text was pasted as it was, so a line in it could pose as another agent's
  answer); the observation space grew to fit.
* v0, whole numbers: `parse_integer_answer` reads a number whole, exponent included
  (before, `Answer: 1e3`, `1e999` and `\\boxed{1e309}` were read as 1, `1,2345` as 1 or
  2345); an answer is an exact integer of at most 18 digits or no answer.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import gymnasium
import networkx as nx
from pydantic import BaseModel, Field, field_validator

from marl.core.bus import Message
from marl.core.config import StrictModel
from marl.core.graph import GraphError
from scenarios.arithmetic import ArithmeticSpec, Problem, sample_problem
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
DEFAULT_TASK = "medium"
# Observation budget: the fixed prompt text plus the question, then per received message
# its header (sender id, answer) and its quoted content.
PROMPT_CHARS = 1000
MESSAGE_HEADER_CHARS = 60

FINISH = "Finish with a line `Answer: <integer>`."
FIRST_ASK = "Think step by step, then finish with a line `Answer: <integer>`."


def _weight(default: float, meaning: str) -> Any:
    """One weight of the MAPoRL reward: 0 to 10, described by ``meaning``."""
    return Field(default, ge=0.0, le=10.0, description=meaning)


class MAPoRLIncentives(StrictModel):
    """The weights of the MAPoRL reward (`reward: maporl`); see the module's Rewards section."""

    influence: float = _weight(
        0.5,
        "Weight of the share of the agents that heard this agent last round and answer "
        "right this round (credit for persuading them).",
    )
    corrective: float = _weight(
        0.5,
        "Bonus for a right answer when the majority of the answers it heard was wrong "
        "(correcting the others).",
    )
    agreeing: float = _weight(0.0, "Bonus for a right answer when the majority it heard was right.")
    stubborn: float = _weight(
        0.5,
        "Penalty for a wrong answer when the majority it heard was right (not persuaded by "
        "right peers).",
    )
    following: float = _weight(
        0.5,
        "Penalty for a wrong answer when the majority it heard was wrong too (following a "
        "wrong majority).",
    )


class DebateProtocol(ScenarioOptions):
    """How the debate runs, whatever the task: the options every debate scenario shares."""

    rounds: int = rounds_option(
        2, "How many times each debater answers (one env step each; a judge adds one)."
    )
    task: BaseModel = Field(
        description="What is debated: each debate scenario narrows this to its task spec."
    )
    reward: Literal["final", "every_round", "maporl"] = Field(
        "final",
        description="'final': team correctness paid at the last step only; "
        "'every_round': each step pays that round's team correctness; 'maporl': the team "
        "reward of 'final', and every round each agent's individual_reward is the MAPoRL "
        "verifier reward with its incentives (train it with algorithm igrpo).",
    )
    maporl: MAPoRLIncentives = Field(
        default_factory=MAPoRLIncentives,
        description="Weights of the 'maporl' reward's incentive terms (read only with it).",
    )
    message_chars: int = message_chars_option(
        300,
        "Characters of an agent's completion (its end) sent to its neighbours.",
        action_chars=MAX_ACTION_CHARS,
    )
    judge: str | None = Field(
        None,
        min_length=1,
        description="Id of a judge agent that does not debate: after the last round it reads "
        "every debater's final answer and its answer is the team's (instead of the majority "
        "vote). Every debater needs an edge to it, e.g. graph {preset: star, hub: <judge>}. "
        "Ignored when one agent plays alone. null: no judge.",
    )
    peer_display: Literal["attributed", "anonymous"] = Field(
        "attributed",
        description="'attributed': received answers are shown under their senders' ids; "
        "'anonymous': as 'Agent 1', 'Agent 2', ... in a fresh random order each observation.",
    )
    max_neighbours_shown: int | None = Field(
        None,
        ge=1,
        le=64,  # a team has at most 64 agents
        description="Show a debater at most this many of the answers it received each round "
        "(a random subset); null shows all. The judge always sees every debater.",
    )


class DebateOptions(DebateProtocol):
    """The debate scenario's options, as written under `scenario.options` in a config."""

    task: ArithmeticSpec = Field(
        DEFAULT_TASK,
        validate_default=True,
        description="The arithmetic problems: a preset name (easy, sums, medium, du) "
        "or an ArithmeticSpec mapping.",
    )

    @field_validator("task", mode="before")
    @classmethod
    def _task_preset(cls, value: Any) -> Any:
        return ArithmeticSpec.preset(value) if isinstance(value, str) else value


def majority_answer(answers: Sequence[int | None]) -> int | None:
    """Most common parsed answer; a tie goes to the one given first, ``None`` if none parsed."""
    votes = [a for a in answers if a is not None]
    if not votes:
        return None
    counts = Counter(votes)
    top = max(counts.values())
    return next(a for a in votes if counts[a] == top)


def _tail(text: str, max_chars: int) -> str:
    """The end of ``text`` in at most ``max_chars`` characters, marked with '...' when cut."""
    text = text.strip()
    if len(text) > max_chars:
        text = "..." + text[-(max_chars - 3) :]
    return sanitize_text(text, CHARSET, max_chars)


def _shown(answer: int | None) -> str:
    return "none found" if answer is None else str(answer)


class DebateEnv(TextTeamEnv):
    """Agents answer a question, hear their in-neighbours' answers, answer again."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "debate_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }
    options_model: ClassVar[type[DebateProtocol]] = DebateOptions
    baselines_not_applicable: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def vote_score(cls, answers: Sequence[Any], metrics: Mapping[str, Any]) -> float:
        """1.0 when the majority of the parsed answers (``majority_answer``) is the target."""
        return float(majority_answer(list(answers)) == metrics["target"])

    def __init__(
        self,
        agent_ids: Sequence[str] = ("agent_0", "agent_1", "agent_2"),
        graph: nx.DiGraph | None = None,
        options: DebateProtocol | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **option_values: Any,
    ) -> None:
        super().__init__(agent_ids, graph, options, render_mode, **option_values)
        # One agent alone plays the single-agent baseline: no judge then.
        self.judge = self.options.judge if len(self.possible_agents) > 1 else None
        self.debaters = [a for a in self.possible_agents if a != self.judge]
        if self.judge is not None:
            self._check_judge(self.judge)
        self._init_length(self.options.rounds + (self.judge is not None))

        longest_id = max(map(len, self.possible_agents))
        most_heard = max(degree for _, degree in self.graph.in_degree)
        per_message = MESSAGE_HEADER_CHARS + longest_id + quoted_chars(self.options.message_chars)
        self._init_spaces(PROMPT_CHARS + most_heard * per_message, MAX_ACTION_CHARS)

        self._rng = random.Random()
        self._display_rng = random.Random()  # peer order and subsets, apart from the tasks
        self.problem: Problem | None = None
        self.round = 0
        self._answers: dict[str, int | None] = {}  # the debaters' last parsed answers
        self._judge_answer: int | None = None
        self._team_answers: list[int | None] = []
        self._parse_failures = 0

    def _check_judge(self, judge: str) -> None:
        if judge not in self.possible_agents:
            raise ValueError(f"judge '{judge}' is not a team agent; agents: {self.possible_agents}")
        deaf = [a for a in self.debaters if not self.graph.has_edge(a, judge)]
        if deaf:
            missing = ", ".join(f"{a}->{judge}" for a in deaf)
            raise GraphError(
                f"the judge '{judge}' must hear every debater; missing edges: {missing} "
                f"(use graph {{preset: star, hub: {judge}}} or add those edges)"
            )

    def agent_roles(self) -> dict[str, str]:
        return {a: "judge" if a == self.judge else "debater" for a in self.possible_agents}

    def sample_task(self, rng: random.Random) -> Problem:
        """The task source: one problem drawn from ``rng`` (word problems in wordmath_v0)."""
        return sample_problem(self.options.task, rng)

    # ---------------------------------------------------------------- episode

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = random.Random(seed)
            self._display_rng = random.Random(f"peer-display-{seed}")
        problem = (options or {}).get("problem")
        if problem is None:
            problem = self.sample_task(self._rng)
        elif not isinstance(problem, Problem):
            raise TypeError(f"options['problem'] must be a Problem, got {type(problem).__name__}")
        self.problem = problem
        self.agents = list(self.debaters)
        self.round = 0
        self.bus.reset()
        self._answers = {}
        self._heard = {}
        self._judge_answer = None
        self._team_answers = []
        self._parse_failures = 0
        prompt = self._observe(f"{problem.question}\n{FIRST_ASK}")
        return dict.fromkeys(self.agents, prompt), {a: {} for a in self.agents}

    def step(self, actions: dict[str, str]) -> StepResult:
        self._check_actions(actions)
        completions = {a: actions[a][-MAX_ACTION_CHARS:] for a in self.agents}
        if self.round == self.options.rounds:
            return self._judge_step(completions[self.judge])
        return self._debate_step(completions)

    def _debate_step(self, completions: dict[str, str]) -> StepResult:
        target = self.problem.answer
        self._answers = {a: parse_integer_answer(completions[a]) for a in self.agents}
        self._parse_failures += sum(ans is None for ans in self._answers.values())
        team_answer = majority_answer([self._answers[a] for a in self.agents])
        self._team_answers.append(team_answer)
        team_correct = team_answer == target
        debate_over = self.round == self.options.rounds - 1
        judged = self.judge is not None
        paid = (debate_over and not judged) or self.options.reward == "every_round"
        if self.options.reward == "maporl":
            individual = self._maporl_rewards()
        else:  # its own correctness, paid when the team is
            individual = {
                a: float(self._answers[a] == target) if paid else 0.0 for a in self.agents
            }

        for agent in self.agents:
            recipients = None  # every out-neighbour
            if judged and not debate_over:  # the judge reads final answers only
                recipients = [n for n in self.bus.neighbours(agent) if n != self.judge]
            self.bus.send(
                agent,
                _tail(completions[agent], self.options.message_chars),
                round=self.round,
                recipients=recipients,
                meta={"answer": self._answers[agent]},
            )
        observations = {a: self._reconsider(a) for a in self.agents}

        reward = float(team_correct) if paid else 0.0
        infos = {
            a: {
                "answer": self._answers[a],
                "correct": self._answers[a] == target,
                "parsed": self._answers[a] is not None,
                "round": self.round,
                "individual_reward": individual[a],  # what igrpo learns from
            }
            for a in self.agents
        }
        next_agents = [] if debate_over else self.agents
        if debate_over and judged:  # the debaters are done; the judge joins
            observations[self.judge] = self._judge_prompt()
            infos[self.judge] = {}
            next_agents = [self.judge]
        self.round += 1
        return self._end_step(observations, infos, reward, next_agents)

    def _maporl_rewards(self) -> dict[str, float]:
        """This round's MAPoRL reward of every debater (the Rewards section's formula)."""
        target, weights = self.problem.answer, self.options.maporl
        right = {a: self._answers[a] == target for a in self.agents}
        rewards = {}
        for agent in self.agents:
            reward = float(right[agent])
            listeners = [b for b in self.agents if agent in self._heard.get(b, {})]
            if listeners:  # it spoke to them last round: credit for their answers now
                reward += weights.influence * sum(right[b] for b in listeners) / len(listeners)
            heard = self._heard.get(agent, {})
            if heard:
                majority_right = majority_answer(list(heard.values())) == target
                if right[agent]:
                    reward += weights.agreeing if majority_right else weights.corrective
                else:
                    reward -= weights.stubborn if majority_right else weights.following
            rewards[agent] = reward
        return rewards

    def _judge_step(self, completion: str) -> StepResult:
        target = self.problem.answer
        self._judge_answer = parse_integer_answer(completion)
        self._parse_failures += self._judge_answer is None
        self._team_answers.append(self._judge_answer)
        correct = self._judge_answer == target
        info = {
            "answer": self._judge_answer,
            "correct": correct,
            "parsed": self._judge_answer is not None,
            "round": self.round,
            "individual_reward": float(correct),
        }
        observation = self._observe(
            f"Question: {self.problem.question}\n"
            f"Your decision, the team's answer: {_shown(self._judge_answer)}"
        )
        self.round += 1
        return self._end_step({self.judge: observation}, {self.judge: info}, float(correct), [])

    # ------------------------------------------------------------ observations

    def _peer_answers(self, received: list[Message], limit: int | None) -> list[str]:
        """Lines showing received answers: at most ``limit``, attributed or anonymous."""
        if limit is not None and len(received) > limit:
            kept = sorted(self._display_rng.sample(range(len(received)), limit))
            received = [received[i] for i in kept]
        if self.options.peer_display == "anonymous":
            received = self._display_rng.sample(received, len(received))
            labels = [f"Agent {k}" for k in range(1, len(received) + 1)]
        else:
            labels = [message.sender for message in received]
        lines = []
        for label, message in zip(labels, received, strict=True):
            answer = _shown(message.meta["answer"])
            lines += [f"[{label}] answer: {answer}", quoted(message.content), ""]
        return lines

    def _reconsider(self, agent: str) -> str:
        received: list[Message] = self.bus.drain(agent)
        self._heard[agent] = {m.sender: m.meta["answer"] for m in received}  # one each a round
        lines = [
            f"Question: {self.problem.question}",
            f"Your previous answer: {_shown(self._answers[agent])}",
            "",
        ]
        if received:
            lines.append("Answers from other agents:")
            lines += self._peer_answers(received, self.options.max_neighbours_shown)
            lines.append(
                "Using their reasoning as additional advice, check your answer step by step "
                f"and give an updated answer. {FINISH}"
            )
        else:
            lines.append(f"Check your answer step by step and give an updated answer. {FINISH}")
        return self._observe("\n".join(lines))

    def _judge_prompt(self) -> str:
        lines = [
            f"Question: {self.problem.question}",
            "",
            "You are the judge. The debaters' final answers:",
            *self._peer_answers(self.bus.drain(self.judge), None),
            "Weigh their reasoning, check it step by step, and decide the team's answer. " + FINISH,
        ]
        return self._observe("\n".join(lines))

    def _episode_metrics(self) -> dict[str, Any]:
        target = self.problem.answer
        final = self._team_answers[-1]
        agreeing = sum(self._answers[a] == final for a in self.debaters) if final is not None else 0
        by_round = [ans == target for ans in self._team_answers]
        metrics = {
            "score": float(by_round[-1]),
            "score_by_round": [float(c) for c in by_round],
            "team_correct_by_round": by_round,
            "team_answer": final,
            "team_correct": final == target,
            "consensus": agreeing / len(self.debaters),
            "parse_failures": self._parse_failures,
            **self._bus_counts(),
            "target": target,
        }
        if self.judge is not None:
            majority = self._team_answers[-2]  # the debaters' final vote
            metrics["majority_answer"] = majority
            metrics["majority_correct"] = majority == target
        return metrics

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        name = self.metadata["name"]
        if self.problem is None:
            return f"{name}: not started (call reset())"
        problem = self.problem
        lines = [
            f"{name} round {self.round}/{self.max_rounds}: {problem.expression} = {problem.answer}"
        ]
        lines += [f"  {a}: {_shown(self._answers.get(a))}" for a in self.debaters]
        if self.judge is not None and self.round > self.options.rounds:
            lines.append(f"  {self.judge} (judge): {_shown(self._judge_answer)}")
        if self._team_answers:
            lines.append(f"  team: {_shown(self._team_answers[-1])}")
        return "\n".join(lines)


def parallel_env(**kwargs: Any) -> DebateEnv:
    """Build a ``DebateEnv``, the PettingZoo factory convention."""
    return DebateEnv(**kwargs)
