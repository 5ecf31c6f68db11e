"""
# Coding team on HumanEval

| Creation           | `make("parallel", "marl/coding-v0")` after `import scenarios`          |
|--------------------|------------------------------------------------------------------------|
| Actions            | Text (the agent's completion)                                          |
| Parallel API       | Yes                                                                    |
| Agents             | split: helper, main; review: writer, reviewers, testers; or 1 alone    |
| Action space       | `Text(0..8000, charset=string.printable)`; longer text is cut          |
| Observation space  | `Text(1..N, charset=string.printable)`, N from graph and options       |
| Rewards            | one team reward for every agent: tests passed (0..1) + structure terms |
| Episode length     | `rounds` steps                                                         |

A team writes one Python program for a HumanEval problem (``scenarios.humaneval``); the
program runs against the problem's tests in a sandbox (``scenarios.sandbox``) at the end of
every round. Two presets, each agent's role set by its position in the team (or `roles`):

* **split** (the MAGRPO paper's coding setup): the helper writes an auxiliary function
  named `helper_name` (default `aux`), the main agent writes the entry point, which should
  call it. The program is the prompt's context (its imports and helper functions), then
  the helper's code, then the main agent's code.
* **review**: the writer writes the entry point; reviewers reply with critique; testers
  reply with assert statements, which the env runs against the writer's code of the same
  round and reports with them. The writer revises over the rounds; its code is the
  program. Everyone acts every step (the parallel API), so a reviewer's critique of the
  code of round t reaches the writer in round t + 2; in round 0 reviewers list pitfalls
  and testers write tests from the docstring, before any code exists.

One agent alone (a graph without edges) is the single-agent baseline: it writes the whole
entry point and, for `rounds` > 1, revises its own code.

### Observations

The problem's prompt (signature and docstring), the agent's role and instruction; from
round 1 on also its own code of the last round, the messages it received (code, critique,
tests with their results) and, with `feedback`, the status and the number of tests the
last round's program passed (never the tests themselves). Everything an agent or a
program wrote (its own and received code, critique, tests, a first failure) is shown on
the lines after a header the env writes, each after `| ` (`scenarios.base.quoted`), so
no reply can write a line that looks like another sender's or a test result. Characters
outside `string.printable` become `?`, so an observation always lies in its space.

### Actions and messages

The first 8000 characters of a completion are read. Code is extracted with
``scenarios.code_extraction.extract_code`` (fenced or not, prose around it); a reply from
the entry point's writer that does not define the entry point is read as its body,
HumanEval completion style. A round's program is built from that round's replies only.
Each agent sends to its out-neighbours its code (helper, main, writer), its critique
(reviewer) or its tests (tester), cut to `message_chars`; `meta` holds the sender's role
and, for tests, their result. Messages never leave the graph's edges.

### Rewards

`tests` = fraction of the problem's tests the round's program passes (0 for a syntax error,
timeout, crash, memory or output limit, or no code). Optional structure terms, each with a
weight in `structure`: `parses` (the program parses), `functions_defined` (the entry point
and, in split, the helper are defined), `main_calls_helper` (split only: the entry point
calls the helper). Round reward = `tests` + the weighted terms; `reward="final"` pays it at
the last step only, `"every_round"` every step. Every agent gets the same reward.

### Infos

Every step, per agent: `role`, `round`, `code_found`, `code_chars`, `truncated`, and the
round's program: `status`, `passed`, `total`, `tests`, `parses`, `functions_defined`,
`main_calls_helper` (None where it does not apply), `reward_terms`; writers also
`completion_style`, testers `tester_passed`/`tester_total`. At the last step each agent's
info also holds `episode`: `score` (the final `tests` fraction) and `score_by_round` (the
marl scenario contract), `status`, `status_by_round`, `passed`, `total`, `detail`,
`parses`, `functions_defined`, `main_calls_helper`, `reward_terms`, `task_id`,
`no_code` (replies without code from agents that write code), `truncated` (replies over
8000 characters), `sandbox_runs`, `timeouts`, `isolation` (which sandbox scored the
programs: `bwrap`, or `rlimits-only` where bubblewrap cannot start), `messages`,
`deliveries`, `message_chars`, `refused`. All values are msgpack-friendly and, for the
same seed and actions, the same (no timings).

### Termination

All agents terminate together after `rounds` steps (never truncated); `agents` is then
empty. `max_rounds` (= `rounds`) is the episode length; `max_cycles` exists for
PettingZoo's tests and does not change it.

### Seeding

`reset(seed=s)` draws the problem from the `split` (see ``scenarios.humaneval``: a fixed
124 train / 40 test split of the 164 problems) with `random.Random(s)`; a later `reset()`
without a seed draws the next problem from the same stream. `reset(options={"task_id":
"HumanEval/0"})` poses that problem; other option keys are ignored. The sandbox runs with a
fixed hash seed, so the same actions give the same results (barring timeouts).

### Version history

* v0: initial release.
* v0, quoted messages: code, critique, tests and first failures are shown with `| ` before
  each of their lines (before, they were pasted as they were, so a reviewer could write a
  line like the tester's `tests, passed 6 of 6`); the observation space grew to fit.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, Self

import gymnasium
import networkx as nx
from pydantic import Field, model_validator

from marl.core.bus import Message
from marl.core.config import StrictModel
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
from scenarios.code_extraction import calls, defined_functions, extract_code, parse
from scenarios.grading import Check, SandboxResult, grade_many, record_suites
from scenarios.humaneval import CodingProblem, Split, load_problems, problem_by_id, sample_problem
from scenarios.parsing import sanitize_text
from scenarios.sandbox import MAX_DETAIL_CHARS, Sandbox, SandboxLimits

MAX_ACTION_CHARS = 8000
MAX_TESTER_TESTS = 20
# Observation budget: instructions and the longest prompt, then the agent's own code and
# each received message with its header, fenced and quoted, and a quoted first failure.
INSTRUCTION_CHARS = 2000
MESSAGE_HEADER_CHARS = 120
FENCE_CHARS = len("```python\n\n```")  # what _fenced adds around code

Preset = Literal["split", "review"]
Role = Literal["helper", "main", "writer", "reviewer", "tester"]
PRESET_ROLES: dict[str, tuple[Role, ...]] = {
    "split": ("helper", "main"),
    "review": ("writer", "reviewer", "tester"),
}
SOLO_ROLE: dict[str, Role] = {"split": "main", "review": "writer"}
WRITERS = frozenset({"main", "writer"})  # the roles that write the entry point
STATUS_NO_CODE = "no_code"


class StructureWeights(StrictModel):
    """Weights of the optional structure terms added to the tests fraction."""

    parses: float = Field(0.0, ge=0.0, le=1.0, description="Paid when the program parses.")
    functions_defined: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Paid when the entry point (and in split the helper) are defined.",
    )
    main_calls_helper: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Paid when the entry point calls the helper function (split only).",
    )


class CodingOptions(ScenarioOptions):
    """The coding scenario's options, as written under `scenario.options` in a config."""

    preset: Preset = Field(
        "split",
        description="'split': a helper writes an auxiliary function, the main agent the "
        "entry point; 'review': a writer codes, reviewers and testers reply, the writer revises.",
    )
    roles: list[Role] | None = Field(
        None,
        description="Role of each agent in team order (default: the preset's, split: helper, "
        "main; review: writer, reviewer, tester). Ignored for a team of one, which plays alone.",
    )
    rounds: int = rounds_option(1, "Rounds of writing (one env step each).")
    split: Split = Field(
        "train", description="HumanEval problems to draw from: train (124), test (40) or all."
    )
    reward: Literal["final", "every_round"] = Field(
        "final",
        description="'final': the last round's reward only; 'every_round': each step pays "
        "its round's reward.",
    )
    structure: StructureWeights = Field(
        default_factory=StructureWeights,
        description="Weights of the structure terms added to the tests fraction (default 0).",
    )
    helper_name: str = Field(
        "aux",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,39}$",
        description="Name of the helper's function in the split preset.",
    )
    feedback: bool = Field(
        False,
        description="From round 1 on, tell agents the status and the number of tests the "
        "last round's program passed (never the tests).",
    )
    message_chars: int = message_chars_option(
        2000,
        "Characters of code, critique or tests an agent sends (and sees of its own).",
        action_chars=MAX_ACTION_CHARS,
        minimum=100,
    )
    sandbox: SandboxLimits = Field(
        default_factory=SandboxLimits,
        description="Limits of each sandboxed run: timeout_s, memory_mb, file_size_mb, "
        "open_files, processes, output_bytes.",
    )

    @model_validator(mode="after")
    def _roles_fit_the_preset(self) -> Self:
        if self.roles is not None:
            roles_for(self.preset, self.roles, len(self.roles))
        return self


def roles_for(preset: Preset, roles: Sequence[Role] | None, team_size: int) -> list[Role]:
    """Each agent's role in team order; raises ``ValueError`` saying what to change."""
    if team_size == 1:
        return [SOLO_ROLE[preset]]
    if roles is None:
        defaults = PRESET_ROLES[preset]
        if (preset == "split" and team_size != 2) or team_size > len(defaults):
            raise ValueError(
                f"the {preset} preset's default roles fit at most {len(defaults)} agents, "
                f"the team has {team_size}: give scenario.options.roles"
            )
        roles = defaults[:team_size]
    roles = list(roles)
    if len(roles) != team_size:
        raise ValueError(f"roles {roles} must give one role per agent; the team has {team_size}")
    if preset == "split" and sorted(roles) != ["helper", "main"]:
        raise ValueError(f"the split preset needs exactly the roles helper and main, got {roles}")
    if preset == "review" and (
        roles.count("writer") != 1 or not set(roles) - {"writer"} <= {"reviewer", "tester"}
    ):
        raise ValueError(
            f"the review preset needs one writer and reviewers or testers, got {roles}"
        )
    return roles


def entry_definition(problem: CodingProblem, code: str) -> tuple[str, bool]:
    """``code`` as a definition of the entry point, and whether it was read as a bare body."""
    if not code or problem.entry_point in defined_functions(code):
        return code, False
    return problem.signature + textwrap.indent(code, "    "), True


def assert_suite(code: str, entry_point: str) -> Check | None:
    """A tester's asserts calling the entry point (and the setup around them), each a test;
    None without one. Its cases are recorded in the sandbox (``grading.record_suites``)."""
    module = parse(code)
    if module is None:
        return None
    return Check.from_asserts(module.body, entry_point, MAX_TESTER_TESTS)


def _fenced(code: str) -> str:
    return f"```python\n{code.strip()}\n```" if code.strip() else "(no code)"


class CodingEnv(TextTeamEnv):
    """A team writes a program for a HumanEval problem; the sandbox runs its tests each round."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "coding_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
    }
    options_model: ClassVar[type[CodingOptions]] = CodingOptions
    baselines_not_applicable: ClassVar[Mapping[str, str]] = {
        "vote": "programs are not voted: two programs that pass the same tests differ as text",
        "self_consistency": "programs are not voted: two programs that pass the same tests "
        "differ as text",
    }

    def __init__(
        self,
        agent_ids: Sequence[str] = ("helper", "main"),
        graph: nx.DiGraph | None = None,
        options: CodingOptions | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        **option_values: Any,
    ) -> None:
        super().__init__(agent_ids, graph, options, render_mode, **option_values)
        roles_list = roles_for(self.options.preset, self.options.roles, len(self.possible_agents))
        self.roles: dict[str, Role] = dict(zip(self.possible_agents, roles_list, strict=True))
        self.writer = next(a for a, r in self.roles.items() if r in WRITERS)
        self.helper = next((a for a, r in self.roles.items() if r == "helper"), None)
        self._init_length(self.options.rounds)

        longest_prompt = max(len(p.prompt) for p in load_problems())
        longest_id = max(map(len, self.possible_agents))
        most_heard = max(degree for _, degree in self.graph.in_degree)
        per_message = (
            MESSAGE_HEADER_CHARS
            + longest_id
            + quoted_chars(self.options.message_chars + FENCE_CHARS)
            + quoted_chars(MAX_DETAIL_CHARS)
        )
        obs_chars = INSTRUCTION_CHARS + longest_prompt + (1 + most_heard) * per_message
        self._init_spaces(obs_chars, MAX_ACTION_CHARS)

        self.sandbox = Sandbox(self.options.sandbox)
        self._rng = random.Random()
        self.problem: CodingProblem | None = None
        self.round = 0
        self._last_output: dict[str, str] = {}  # each agent's code, critique or tests
        self._last_tester: dict[str, SandboxResult | None] = {}
        self._results: list[SandboxResult | None] = []  # None: not run (no code, no parse)
        self._statuses: list[str] = []
        self._terms: list[dict[str, Any]] = []
        self._no_code = 0
        self._truncated = 0
        self._sandbox_runs: list[SandboxResult] = []

    def agent_roles(self) -> dict[str, str]:
        return dict(self.roles)

    # ---------------------------------------------------------------- episode

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = random.Random(seed)
        task_id = (options or {}).get("task_id")
        if task_id is None:
            self.problem = sample_problem(self.options.split, self._rng)
        elif isinstance(task_id, str):
            self.problem = problem_by_id(task_id)
        else:
            raise TypeError(f"options['task_id'] must be a str, got {type(task_id).__name__}")
        self.agents = list(self.possible_agents)
        self.round = 0
        self.bus.reset()
        self._last_output = {}
        self._last_tester = {}
        self._results = []
        self._statuses = []
        self._terms = []
        self._no_code = 0
        self._truncated = 0
        self._sandbox_runs = []
        observations = {a: self._observe(self._first_round(a)) for a in self.agents}
        return observations, {a: {} for a in self.agents}

    def step(self, actions: dict[str, str]) -> StepResult:
        self._check_actions(actions)
        problem = self.problem
        texts = {a: actions[a][:MAX_ACTION_CHARS] for a in self.agents}
        truncated = {a: len(actions[a]) > MAX_ACTION_CHARS for a in self.agents}
        self._truncated += sum(truncated.values())
        outputs = {
            a: (
                texts[a].strip()
                if self.roles[a] == "reviewer"
                else extract_code(texts[a], MAX_ACTION_CHARS)
            )
            for a in self.agents
        }
        entry_code, completion_style = entry_definition(problem, outputs[self.writer])
        helper_code = outputs[self.helper] if self.helper else ""
        program = "\n\n".join(
            part.strip("\n") for part in (problem.context, helper_code, entry_code) if part.strip()
        )
        program += "\n"
        parsed = bool(entry_code) and parse(program) is not None
        testers = [a for a in self.agents if self.roles[a] == "tester"]
        checks = {a: assert_suite(outputs[a], problem.entry_point) for a in testers}

        # the testers' asserts become cases in a sandbox of their own (a tester's code never
        # runs beside the program), then one batch grades the program against the
        # problem's tests and every tester's cases; the verdicts are decided here
        tested = [a for a in testers if checks[a] is not None] if parsed else []
        recorded = [(checks[a], problem.context, None) for a in tested]
        suites = dict(zip(tested, record_suites(self.sandbox, recorded, len(tested)), strict=True))
        tested = [a for a in tested if suites[a] is not None]
        jobs = [(program, problem.tests)] if parsed else []
        jobs += [(program, suites[a]) for a in tested]
        ran = grade_many(self.sandbox, jobs, workers=len(jobs)) if jobs else []
        self._sandbox_runs += ran
        result = ran[0] if ran else None
        tester_results: dict[str, SandboxResult | None] = dict.fromkeys(testers)
        tester_results.update(zip(tested, ran[1:], strict=True))
        if not entry_code:
            status = STATUS_NO_CODE
        elif not parsed:
            status = "syntax_error"
        else:
            status = result.status
        no_code = [a for a in self.agents if self.roles[a] != "reviewer" and not outputs[a]]
        self._no_code += len(no_code)
        self._results.append(result)
        self._statuses.append(status)
        terms = self._structure_terms(program, parsed, result)
        self._terms.append(terms)

        for agent in self.agents:
            self._send(agent, outputs[agent], tester_results.get(agent))
        self._last_output = outputs
        self._last_tester = tester_results
        observations = {a: self._observe(self._next_round(a)) for a in self.agents}

        last = self.round == self.options.rounds - 1
        paid = last or self.options.reward == "every_round"
        reward = terms["reward"] if paid else 0.0
        passed, total = (result.passed, result.total) if result else (0, problem.tests.total)
        shared = {
            "status": status,
            "passed": passed,
            "total": total,
            "tests": terms["tests"],
            "parses": terms["parses"],
            "functions_defined": terms["functions_defined"],
            "main_calls_helper": terms["main_calls_helper"],
            "reward_terms": terms["weighted"],
        }
        infos: dict[str, dict[str, Any]] = {}
        for agent in self.agents:
            role = self.roles[agent]
            info = {
                "role": role,
                "round": self.round,
                "code_found": bool(outputs[agent]) if role != "reviewer" else None,
                "code_chars": len(outputs[agent]) if role != "reviewer" else 0,
                "truncated": truncated[agent],
                **shared,
            }
            if role in WRITERS:
                info["completion_style"] = completion_style
            if role == "tester":
                found = tester_results[agent]
                info["tester_passed"] = found.passed if found else 0
                info["tester_total"] = found.total if found else 0
            infos[agent] = info
        self.round += 1
        return self._end_step(observations, infos, reward, [] if last else self.agents)

    # ---------------------------------------------------------------- rewards

    def _structure_terms(
        self, program: str, parsed: bool, result: SandboxResult | None
    ) -> dict[str, Any]:
        """The round's reward terms: tests fraction, structure facts, weighted sum."""
        entry = self.problem.entry_point
        functions = set(defined_functions(program)) if parsed else set()
        needed = {entry} | ({self.options.helper_name} if self.helper else set())
        calls_helper = calls(program, entry, self.options.helper_name) if self.helper else None
        tests = result.fraction if result is not None else 0.0
        weights = self.options.structure
        weighted = {
            "tests": tests,
            "parses": weights.parses * parsed,
            "functions_defined": weights.functions_defined * (needed <= functions),
            "main_calls_helper": weights.main_calls_helper * bool(calls_helper),
        }
        return {
            "tests": tests,
            "parses": parsed,
            "functions_defined": needed <= functions,
            "main_calls_helper": calls_helper,
            "weighted": weighted,
            "reward": float(sum(weighted.values())),
        }

    def _episode_metrics(self) -> dict[str, Any]:
        final = self._results[-1]
        terms = self._terms[-1]
        return {
            "score": terms["tests"],
            "score_by_round": [t["tests"] for t in self._terms],
            "status": self._statuses[-1],
            "status_by_round": list(self._statuses),
            "passed": final.passed if final else 0,
            "total": self.problem.tests.total,
            "detail": final.detail if final else "",
            "parses": terms["parses"],
            "functions_defined": terms["functions_defined"],
            "main_calls_helper": terms["main_calls_helper"],
            "reward_terms": terms["weighted"],
            "task_id": self.problem.task_id,
            "no_code": self._no_code,
            "truncated": self._truncated,
            "sandbox_runs": len(self._sandbox_runs),
            "timeouts": sum(r.status == "timeout" for r in self._sandbox_runs),
            "isolation": self.sandbox.isolation,
            **self._bus_counts(),
        }

    # ---------------------------------------------------------------- messages

    def _send(self, agent: str, output: str, tester_result: SandboxResult | None) -> None:
        role = self.roles[agent]
        meta: dict[str, Any] = {"role": role}
        if role == "reviewer":
            channel, content = "review", output or "(no review)"
        elif role == "tester":
            channel, content = "tests", output or "(no tests)"
            meta["passed"] = tester_result.passed if tester_result else None
            meta["total"] = tester_result.total if tester_result else None
            meta["detail"] = tester_result.detail if tester_result else ""
        else:
            channel, content = "code", output
        content = sanitize_text(content, CHARSET, self.options.message_chars)
        self.bus.send(agent, content, round=self.round, channel=channel, meta=meta)

    # ---------------------------------------------------------------- observations

    def _names(self) -> dict[str, str]:
        return {"entry": self.problem.entry_point, "aux": self.options.helper_name}

    def _first_round(self, agent: str) -> str:
        role = self.roles[agent]
        header = self._header(agent)
        return f"{header}\n\n{FIRST_ASK[self._role_key(role)].format(**self._names())}"

    def _next_round(self, agent: str) -> str:
        role = self.roles[agent]
        lines = [self._header(agent), ""]
        own = self._last_output.get(agent, "")
        shown = sanitize_text(own, CHARSET, self.options.message_chars)
        if role == "reviewer":
            lines.append(f"Your last review:\n{quoted(shown) if shown else '(none)'}")
        elif role == "tester":
            lines.append(f"Your tests from the last round:\n{quoted(_fenced(shown))}")
            lines.append(_tester_outcome(self._last_tester.get(agent)))
        else:
            lines.append(f"Your code from the last round:\n{quoted(_fenced(shown))}")
        if self.options.feedback:
            lines.append(self._feedback_line())
        received: list[Message] = self.bus.drain(agent)
        if received:
            lines += ["", "Messages from your team:"]
            for message in received:
                lines.append(_render_message(message))
        lines += ["", NEXT_ASK[self._role_key(role)].format(**self._names())]
        return "\n".join(lines)

    def _role_key(self, role: Role) -> str:
        if role in WRITERS and len(self.possible_agents) == 1:
            return "solo"
        if role == "main" and self.helper is None:
            return "solo"
        return role

    def _header(self, agent: str) -> str:
        team = len(self.possible_agents)
        title = ROLE_TITLES[self.roles[agent]]
        who = f"You are {agent}, the {title} on a team of {team}."
        if team == 1:
            who = "You work alone."
        return f"{who} Problem:\n\n{self.problem.prompt.strip(chr(10))}"

    def _feedback_line(self) -> str:
        result = self._results[-1]
        status = self._statuses[-1]
        if result is None:
            return f"Last round's program was not run: {status.replace('_', ' ')}."
        return (
            f"Last round's program: {status.replace('_', ' ')}, "
            f"passed {result.passed} of {result.total} hidden tests."
        )

    def render(self) -> str | None:
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        if self.problem is None:
            return "coding_v0: not started (call reset())"
        lines = [f"coding_v0 round {self.round}/{self.options.rounds}: {self.problem.task_id}"]
        lines += [f"  {a}: {self.roles[a]}" for a in self.possible_agents]
        if self._statuses:
            result = self._results[-1]
            passed = f"{result.passed}/{result.total}" if result else "-"
            lines.append(f"  program: {self._statuses[-1]} {passed}")
        return "\n".join(lines)


def _tester_outcome(result: SandboxResult | None) -> str:
    if result is None:
        return "They were not run (no assert statements found, or no code to test)."
    text = f"Against the writer's code they passed {result.passed} of {result.total}"
    if not result.detail:
        return text + "."
    return f"{text}; the first failure:\n{quoted(result.detail)}"


def _render_message(message: Message) -> str:
    """A received message: a header the env writes (sender, role, test result), then what
    the sender or its tests' run wrote, ``quoted``."""
    role = ROLE_TITLES[message.meta["role"]]
    if message.channel == "code":
        return f"[{message.sender}] ({role}) code:\n{quoted(_fenced(message.content))}"
    if message.channel == "tests":
        header = f"[{message.sender}] ({role}) tests"
        failure = ""
        if message.meta.get("total"):
            header += (
                f", passed {message.meta['passed']} of {message.meta['total']} "
                "against the writer's code"
            )
            if message.meta.get("detail"):
                failure = f"\nTheir first failure:\n{quoted(message.meta['detail'])}"
        return f"{header}:\n{quoted(_fenced(message.content))}{failure}"
    return f"[{message.sender}] ({role}) review:\n{quoted(message.content)}"


ROLE_TITLES = {
    "helper": "helper",
    "main": "main agent",
    "writer": "writer",
    "reviewer": "reviewer",
    "tester": "tester",
}
FENCE_ASK = "Reply with the code in one ```python block."
FIRST_ASK = {
    "solo": "Write the complete function `{entry}` with exactly this signature. " + FENCE_ASK,
    "main": "Write the function `{entry}` with exactly this signature. A helper agent writes "
    "a function `{aux}` for you: call `{aux}` inside `{entry}` where it helps, and do not "
    "define `{aux}` yourself. " + FENCE_ASK,
    "helper": "The main agent writes `{entry}` and calls your function `{aux}`. Write only "
    "`{aux}`: one self-contained function that does a useful part of the work (choose its "
    "arguments). Do not write `{entry}`. " + FENCE_ASK,
    "writer": "Write the complete function `{entry}` with exactly this signature. Your team "
    "will review and test it. " + FENCE_ASK,
    "reviewer": "A writer on your team is writing `{entry}`. Before seeing any code, list "
    "briefly the edge cases and pitfalls a correct solution must handle. Do not write the "
    "solution.",
    "tester": "Write 3 to 6 test cases for `{entry}` as Python assert statements that call "
    "`{entry}` directly, derived from the docstring, in one ```python block. Do not write "
    "the solution.",
}
NEXT_ASK = {
    "solo": "Check your code against the docstring and its examples, fix any bug, and reply "
    "with the complete function `{entry}`. " + FENCE_ASK,
    "main": "Revise `{entry}` to work with the helper's `{aux}` (call it where it helps; do "
    "not define it) and reply with the complete function `{entry}`. " + FENCE_ASK,
    "helper": "Revise `{aux}` so that it fits how the main agent's `{entry}` calls it, and "
    "reply with the complete function `{aux}` only. " + FENCE_ASK,
    "writer": "Revise `{entry}` using your team's critique and test results (a test can be "
    "wrong: trust the docstring), and reply with the complete function `{entry}`. " + FENCE_ASK,
    "reviewer": "Review the writer's latest code: name concrete bugs and inputs where it "
    "fails, briefly. Do not rewrite the whole function.",
    "tester": "Fix tests that contradict the docstring, add missing edge cases, and reply "
    "with all your assert statements calling `{entry}` in one ```python block.",
}


def parallel_env(**kwargs: Any) -> CodingEnv:
    """Build a ``CodingEnv``, the PettingZoo factory convention."""
    return CodingEnv(**kwargs)
