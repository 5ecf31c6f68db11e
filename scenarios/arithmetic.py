"""Seeded arithmetic problems with integer answers, from one-digit sums to the Du et al. form.

A problem is a flat expression of non-negative integers joined by ``+``, ``-`` and ``*``
(no parentheses, no division) evaluated with the usual precedence. Every answer is an
integer that fits in a signed 64-bit int, so it survives msgpack and the answer parser.

| preset   | form                          | example              |
| -------- | ----------------------------- | -------------------- |
| `easy`   | two one-digit numbers, `+`    | `3+5`                |
| `sums`   | three one-digit numbers, `+`  | `3+5+9`              |
| `medium` | two two-digit numbers, `+`    | `34+58`              |
| `du`     | `a+b*c+d-e*f`, two-digit      | `12+34*56+78-90*11`  |

`du` (Du et al. 2023, *Improving Factuality and Reasoning in Language Models through
Multiagent Debate*) is the hardest preset. Deliberately left out: parentheses, division
and word problems; a flat expression keeps the evaluator a few lines long.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import ConfigDict, Field, model_validator

from marl.core.config import StrictModel

Operator = Literal["+", "-", "*"]

# |answer| < 10**17 * operands keeps every answer inside int64 and 18 digits.
MAX_PRODUCT_DIGITS = 17

PRESETS: dict[str, dict[str, object]] = {  # easiest first
    "easy": {"operands": 2, "digits": 1, "operators": ["+"]},
    "sums": {"operands": 3, "digits": 1, "operators": ["+"]},
    "medium": {"operands": 2, "digits": 2, "operators": ["+"]},
    "du": {"operands": 6, "digits": 2, "operators": ["+", "-", "*"], "pattern": "+*+-*"},
}


class ArithmeticSpec(StrictModel):
    """How to draw an arithmetic problem; ``ArithmeticSpec.preset(name)`` gives a named level."""

    model_config = ConfigDict(extra="forbid")

    operands: int = Field(2, ge=2, le=8, description="How many numbers in the expression.")
    digits: int = Field(
        1, ge=1, le=4, description="Digits per number (1 means 0-9, 2 means 10-99, ...)."
    )
    operators: list[Operator] = Field(
        default_factory=lambda: ["+"],
        min_length=1,
        description="Operators drawn uniformly between numbers: any of '+', '-', '*'.",
    )
    pattern: str | None = Field(
        None,
        pattern=r"^[+*-]+$",
        description="Fixed operator sequence, one per gap (e.g. '+*+-*' for 6 operands); "
        "when set it replaces the random draw from `operators`.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.pattern is not None and len(self.pattern) != self.operands - 1:
            raise ValueError(
                f"pattern '{self.pattern}' has {len(self.pattern)} operators but "
                f"{self.operands} operands need {self.operands - 1}"
            )
        used = set(self.pattern) if self.pattern is not None else set(self.operators)
        if "*" in used and self.digits * self.operands > MAX_PRODUCT_DIGITS:
            raise ValueError(
                f"with '*', digits * operands must be at most {MAX_PRODUCT_DIGITS} so answers "
                f"fit in 64 bits; got {self.digits} * {self.operands}: lower digits or operands"
            )
        return self

    @classmethod
    def preset(cls, name: str) -> ArithmeticSpec:
        """The named level: one of ``PRESETS`` (easy, sums, medium, du)."""
        if name not in PRESETS:
            raise ValueError(f"unknown arithmetic preset '{name}'; known: {', '.join(PRESETS)}")
        return cls.model_validate(PRESETS[name])


@dataclass(frozen=True, slots=True)
class Problem:
    """One task: the question shown to agents, its expression and the right answer."""

    question: str
    expression: str
    answer: int


_EXPRESSION = re.compile(r"[0-9]+(?:[+*-][0-9]+)*")
_TOKEN = re.compile(r"[0-9]+|[+*-]")


def evaluate(expression: str) -> int:
    """Value of a flat ``+ - *`` expression of non-negative integers, ``*`` binding tighter."""
    if not _EXPRESSION.fullmatch(expression):
        raise ValueError(f"not a flat +-* expression of integers: {expression!r}")
    tokens = _TOKEN.findall(expression)
    total, sign, term = 0, 1, int(tokens[0])
    for op, number in zip(tokens[1::2], tokens[2::2], strict=True):
        if op == "*":
            term *= int(number)
        else:  # a + or - closes the running product
            total += sign * term
            sign, term = (1 if op == "+" else -1), int(number)
    return total + sign * term


def sample_problem(spec: ArithmeticSpec, rng: random.Random) -> Problem:
    """Draw one problem; the same ``rng`` state always gives the same problem."""
    low = 0 if spec.digits == 1 else 10 ** (spec.digits - 1)
    high = 10**spec.digits - 1
    numbers = [rng.randint(low, high) for _ in range(spec.operands)]
    if spec.pattern is not None:
        ops = list(spec.pattern)
    else:
        ops = [rng.choice(spec.operators) for _ in range(spec.operands - 1)]
    tail = "".join(f"{op}{n}" for op, n in zip(ops, numbers[1:], strict=True))
    expression = f"{numbers[0]}{tail}"
    return Problem(f"What is the result of {expression}?", expression, evaluate(expression))
