"""Seeded word problems with integer answers, at graded difficulty (1, 2 or 3 steps).

A template is a small function ``(rng, steps) -> Problem``: it draws names and numbers, then
writes the story and the question. ``steps`` is the number of arithmetic operations the
answer takes, and the problem's ``expression`` is exactly that computation (for example
``50-4*6`` or ``(29-5)/4``), so every answer is checkable by evaluating it. Numbers are
drawn so that every division is exact and every answer is a positive integer.

| template   | 1 step            | 2 steps                  | 3 steps                          |
| ---------- | ----------------- | ------------------------ | -------------------------------- |
| `shopping` | items x price     | paid - items x price     | paid - items x price - extra     |
| `sharing`  | total / friends   | (total - kept) / friends | (total - kept) / friends - given |
| `travel`   | speed x hours     | speed x hours + more     | (speed x hours + more) x 2       |
| `ages`     | age + gap         | age + gap + years        | (age + gap) x 2 + years          |
| `savings`  | weekly x weeks    | start + weekly x weeks   | start + weekly x weeks - spent   |
| `garden`   | rows x per row    | rows x per row - died    | rows x per row - died + planted  |
| `baking`   | batches x cookies | batches x cookies / box  | batches x cookies / box x price  |
| `reading`  | pages x days      | book - pages x days      | (book - pages x days) / pages    |
| `bus`      | riders + on       | riders + on - off        | riders + on - off + on           |
| `fruit`    | boxes x apples    | boxes x apples - given   | (boxes x apples - given) / kids  |
| `tickets`  | tickets x price   | tickets x price + extra  | adults x price + kids x price    |
| `wages`    | hours x rate      | hours x rate x days      | hours x rate x days - spent      |

`WordProblemSpec.preset(name)` gives the named levels: `one_step`, `two_step`,
`three_step` and `mixed` (all three). Deliberately left out: fractions, units conversion
and distractor facts; each would need its own verifier, and the steps already grade the
difficulty for small models.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from marl.core.config import StrictModel
from scenarios.arithmetic import Problem

Steps = Literal[1, 2, 3]

NAMES = (
    "Maria", "Tom", "Aisha", "Lukas", "Mei", "Omar", "Sofia", "Ravi",
    "Elena", "Kofi", "Hana", "Diego", "Nora", "Sam", "Yuki", "Ines",
)  # fmt: skip
ITEMS = (  # (singular, plural) of things bought at a shop
    ("notebook", "notebooks"), ("pen", "pens"), ("apple", "apples"), ("ball", "balls"),
    ("cup", "cups"), ("book", "books"), ("toy car", "toy cars"), ("plant", "plants"),
)  # fmt: skip
SWEETS = ("candies", "cookies", "marbles", "stickers", "cards", "grapes")
PLANTS = ("tomato plants", "sunflowers", "rose bushes", "lettuces", "bean plants")
GIFTS = ("book", "game", "jacket", "pair of shoes", "bike helmet")


def _name(rng: random.Random, *taken: str) -> str:
    return rng.choice([n for n in NAMES if n not in taken])


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _shopping(rng: random.Random, steps: int) -> Problem:
    name = _name(rng)
    (_, many), (extra, _) = rng.sample(ITEMS, 2)
    n, price = rng.randint(2, 9), rng.randint(2, 12)
    if steps == 1:
        question = f"{name} buys {n} {many} at {price} dollars each. How many dollars does "
        return Problem(question + f"{name} spend?", f"{n}*{price}", n * price)
    extra_price = rng.randint(1, 15) if steps == 3 else 0
    bill = (n * price + extra_price) // 10 * 10 + rng.choice((10, 20, 50))
    story = f"{name} buys {n} {many} at {price} dollars each"
    if steps == 2:
        question = f"{story} and pays with {bill} dollars. How much change, in dollars, "
        return Problem(question + f"does {name} get?", f"{bill}-{n}*{price}", bill - n * price)
    question = (
        f"{story} and {_a(extra)} for {extra_price} dollars, and pays with {bill} dollars. "
        f"How much change, in dollars, does {name} get?"
    )
    answer = bill - n * price - extra_price
    return Problem(question, f"{bill}-{n}*{price}-{extra_price}", answer)


def _sharing(rng: random.Random, steps: int) -> Problem:
    name, things = _name(rng), rng.choice(SWEETS)
    friends, each = rng.randint(2, 8), rng.randint(3, 12)
    eaten = rng.randint(1, 9)
    if steps == 1:
        total = friends * each
        question = (
            f"{name} shares {total} {things} equally among {friends} friends. "
            f"How many {things} does each friend get?"
        )
        return Problem(question, f"{total}/{friends}", each)
    total = friends * each + eaten
    story = (
        f"{name} has {total} {things}, keeps {eaten} of them, and shares the rest equally "
        f"among {friends} friends."
    )
    if steps == 2:
        question = f"{story} How many {things} does each friend get?"
        return Problem(question, f"({total}-{eaten})/{friends}", each)
    given = rng.randint(1, each - 1)
    question = (
        f"{story} Each friend then gives {given} of their {things} to a sibling. "
        f"How many {things} does each friend have left?"
    )
    return Problem(question, f"({total}-{eaten})/{friends}-{given}", each - given)


def _travel(rng: random.Random, steps: int) -> Problem:
    vehicle = rng.choice(("A train", "A bus", "A truck", "A boat"))
    speed, hours = rng.randint(3, 12) * 10, rng.randint(2, 6)
    if steps == 1:
        question = f"{vehicle} travels at {speed} km per hour for {hours} hours. How many km "
        return Problem(question + "does it travel?", f"{speed}*{hours}", speed * hours)
    more = rng.randint(5, 60)
    story = (
        f"{vehicle} travels at {speed} km per hour for {hours} hours, then {more} km more "
        "to reach a town."
    )
    if steps == 2:
        question = f"{story} How many km does it travel to reach the town?"
        return Problem(question, f"{speed}*{hours}+{more}", speed * hours + more)
    question = f"{story} Then it goes back the same way. How many km does it travel in all?"
    return Problem(question, f"({speed}*{hours}+{more})*2", (speed * hours + more) * 2)


def _ages(rng: random.Random, steps: int) -> Problem:
    first = _name(rng)
    second = _name(rng, first)
    third = _name(rng, first, second)
    age, older = rng.randint(5, 40), rng.randint(2, 25)
    story = f"{first} is {age} years old. {second} is {older} years older than {first}."
    if steps == 1:
        return Problem(f"{story} How old is {second}?", f"{age}+{older}", age + older)
    years = rng.randint(2, 20)
    if steps == 2:
        question = f"{story} How old will {second} be in {years} years?"
        return Problem(question, f"{age}+{older}+{years}", age + older + years)
    question = (
        f"{story} {third} is twice as old as {second}. How old will {third} be in {years} years?"
    )
    return Problem(question, f"({age}+{older})*2+{years}", (age + older) * 2 + years)


def _savings(rng: random.Random, steps: int) -> Problem:
    name = _name(rng)
    weekly, weeks = rng.randint(2, 20), rng.randint(2, 12)
    if steps == 1:
        question = f"{name} saves {weekly} dollars every week for {weeks} weeks. How many "
        return Problem(question + f"dollars does {name} save?", f"{weekly}*{weeks}", weekly * weeks)
    start = rng.randint(5, 60)
    story = f"{name} has {start} dollars and saves {weekly} dollars every week for {weeks} weeks."
    saved = start + weekly * weeks
    if steps == 2:
        question = f"{story} How many dollars does {name} have then?"
        return Problem(question, f"{start}+{weekly}*{weeks}", saved)
    spent = rng.randint(1, saved - 1)
    question = (
        f"{story} Then {name} spends {spent} dollars on {_a(rng.choice(GIFTS))}. "
        f"How many dollars does {name} have left?"
    )
    return Problem(question, f"{start}+{weekly}*{weeks}-{spent}", saved - spent)


def _garden(rng: random.Random, steps: int) -> Problem:
    name, plants = _name(rng), rng.choice(PLANTS)
    rows, per_row = rng.randint(2, 9), rng.randint(3, 12)
    story = f"{name} plants {rows} rows of {plants} with {per_row} in each row."
    if steps == 1:
        question = f"{story} How many {plants} does {name} plant?"
        return Problem(question, f"{rows}*{per_row}", rows * per_row)
    died = rng.randint(1, rows * per_row - 1)
    story += f" Then {died} of them die."
    if steps == 2:
        question = f"{story} How many {plants} are left?"
        return Problem(question, f"{rows}*{per_row}-{died}", rows * per_row - died)
    planted = rng.randint(2, 30)
    question = f"{story} Then {name} plants {planted} more. How many {plants} are there now?"
    answer = rows * per_row - died + planted
    return Problem(question, f"{rows}*{per_row}-{died}+{planted}", answer)


def _baking(rng: random.Random, steps: int) -> Problem:
    name = _name(rng)
    box, per_batch_boxes, batches = rng.randint(2, 6), rng.randint(1, 4), rng.randint(2, 6)
    per_batch = box * per_batch_boxes  # every division below is exact
    story = f"{name} bakes {batches} batches of cookies with {per_batch} cookies in each batch."
    if steps == 1:
        question = f"{story} How many cookies does {name} bake?"
        return Problem(question, f"{batches}*{per_batch}", batches * per_batch)
    boxes = batches * per_batch // box
    story += f" {name} packs all of them into boxes of {box}."
    if steps == 2:
        question = f"{story} How many boxes does {name} fill?"
        return Problem(question, f"{batches}*{per_batch}/{box}", boxes)
    price = rng.randint(2, 9)
    question = f"{story} Each box sells for {price} dollars. How many dollars does {name} earn?"
    return Problem(question, f"{batches}*{per_batch}/{box}*{price}", boxes * price)


def _reading(rng: random.Random, steps: int) -> Problem:
    name = _name(rng)
    per_day, days = rng.randint(5, 30), rng.randint(2, 9)
    story = f"{name} reads {per_day} pages every day for {days} days."
    if steps == 1:
        question = f"{story} How many pages does {name} read?"
        return Problem(question, f"{per_day}*{days}", per_day * days)
    more_days = rng.randint(1, 8)
    book = per_day * (days + more_days)  # the rest takes a whole number of days
    story = (
        f"{name} has a book of {book} pages and reads {per_day} pages every day for {days} days."
    )
    if steps == 2:
        question = f"{story} How many pages are left to read?"
        return Problem(question, f"{book}-{per_day}*{days}", book - per_day * days)
    question = (
        f"{story} Reading {per_day} pages a day, how many more days does {name} need to "
        "finish the book?"
    )
    return Problem(question, f"({book}-{per_day}*{days})/{per_day}", more_days)


def _bus(rng: random.Random, steps: int) -> Problem:
    riders, got_on = rng.randint(5, 40), rng.randint(2, 20)
    story = f"A bus has {riders} passengers. At the first stop {got_on} people get on."
    if steps == 1:
        question = f"{story} How many passengers are on the bus now?"
        return Problem(question, f"{riders}+{got_on}", riders + got_on)
    got_off = rng.randint(1, riders + got_on - 1)
    story += f" At the second stop {got_off} people get off."
    if steps == 2:
        question = f"{story} How many passengers are on the bus now?"
        return Problem(question, f"{riders}+{got_on}-{got_off}", riders + got_on - got_off)
    more = rng.randint(1, 20)
    question = f"{story} At the third stop {more} people get on. How many passengers are on it now?"
    answer = riders + got_on - got_off + more
    return Problem(question, f"{riders}+{got_on}-{got_off}+{more}", answer)


def _fruit(rng: random.Random, steps: int) -> Problem:
    name = _name(rng)
    boxes, per_box = rng.randint(2, 9), rng.randint(4, 12)
    total = boxes * per_box
    story = f"{name} has {boxes} boxes with {per_box} apples in each box."
    if steps == 1:
        question = f"{story} How many apples does {name} have?"
        return Problem(question, f"{boxes}*{per_box}", total)
    friends = rng.randint(2, 5)
    each = rng.randint(1, (total - 1) // friends)
    given = total - friends * each  # what is left shares out exactly
    story += f" {name} gives {given} apples to a neighbour."
    if steps == 2:
        question = f"{story} How many apples does {name} have left?"
        return Problem(question, f"{boxes}*{per_box}-{given}", total - given)
    question = (
        f"{story} Then {name} shares the rest equally among {friends} friends. "
        "How many apples does each friend get?"
    )
    return Problem(question, f"({boxes}*{per_box}-{given})/{friends}", each)


def _tickets(rng: random.Random, steps: int) -> Problem:
    name = _name(rng)
    adults, price = rng.randint(2, 8), rng.randint(5, 25)
    if steps == 1:
        question = (
            f"{name} buys {adults} concert tickets at {price} dollars each. "
            "How many dollars do the tickets cost?"
        )
        return Problem(question, f"{adults}*{price}", adults * price)
    if steps == 2:
        program = rng.randint(2, 10)
        question = (
            f"{name} buys {adults} concert tickets at {price} dollars each and a program for "
            f"{program} dollars. How many dollars does {name} spend?"
        )
        return Problem(question, f"{adults}*{price}+{program}", adults * price + program)
    children, child_price = rng.randint(1, 6), rng.randint(2, price - 1)
    question = (
        f"{name} buys {adults} adult tickets at {price} dollars each and {children} child "
        f"tickets at {child_price} dollars each. How many dollars does {name} spend?"
    )
    answer = adults * price + children * child_price
    return Problem(question, f"{adults}*{price}+{children}*{child_price}", answer)


def _wages(rng: random.Random, steps: int) -> Problem:
    name = _name(rng)
    hours, rate = rng.randint(2, 8), rng.randint(8, 20)
    if steps == 1:
        question = f"{name} works {hours} hours at {rate} dollars an hour. How many dollars "
        return Problem(question + f"does {name} earn?", f"{hours}*{rate}", hours * rate)
    days = rng.randint(2, 6)
    story = f"{name} works {hours} hours a day for {days} days at {rate} dollars an hour."
    earned = hours * rate * days
    if steps == 2:
        question = f"{story} How many dollars does {name} earn?"
        return Problem(question, f"{hours}*{rate}*{days}", earned)
    spent = rng.randint(10, earned - 1)
    question = (
        f"{story} Then {name} spends {spent} dollars. How many dollars does {name} have left "
        "of the pay?"
    )
    return Problem(question, f"{hours}*{rate}*{days}-{spent}", earned - spent)


TEMPLATES: dict[str, Callable[[random.Random, int], Problem]] = {
    "shopping": _shopping,
    "sharing": _sharing,
    "travel": _travel,
    "ages": _ages,
    "savings": _savings,
    "garden": _garden,
    "baking": _baking,
    "reading": _reading,
    "bus": _bus,
    "fruit": _fruit,
    "tickets": _tickets,
    "wages": _wages,
}

PRESETS: dict[str, dict[str, object]] = {  # easiest first
    "one_step": {"steps": [1]},
    "two_step": {"steps": [2]},
    "three_step": {"steps": [3]},
    "mixed": {"steps": [1, 2, 3]},
}


class WordProblemSpec(StrictModel):
    """How to draw a word problem; ``WordProblemSpec.preset(name)`` gives a named level."""

    model_config = ConfigDict(extra="forbid")

    steps: list[Steps] = Field(
        default_factory=lambda: [2],
        min_length=1,
        description="Difficulty: arithmetic operations per problem (1, 2 or 3), drawn "
        "uniformly from this list.",
    )
    templates: list[str] | None = Field(
        None,
        min_length=1,
        description=f"Story templates drawn uniformly; null means all: {', '.join(TEMPLATES)}.",
    )

    @field_validator("templates")
    @classmethod
    def _known_templates(cls, value: list[str] | None) -> list[str] | None:
        unknown = [t for t in value or [] if t not in TEMPLATES]
        if unknown:
            raise ValueError(f"unknown templates {unknown}; known: {', '.join(TEMPLATES)}")
        return value

    @classmethod
    def preset(cls, name: str) -> WordProblemSpec:
        """The named level: one of ``PRESETS`` (one_step, two_step, three_step, mixed)."""
        if name not in PRESETS:
            raise ValueError(f"unknown word problem preset '{name}'; known: {', '.join(PRESETS)}")
        return cls.model_validate(PRESETS[name])


def sample_word_problem(spec: WordProblemSpec, rng: random.Random) -> Problem:
    """Draw one word problem; the same ``rng`` state always gives the same problem."""
    steps = rng.choice(spec.steps)
    template = TEMPLATES[rng.choice(spec.templates or list(TEMPLATES))]
    return template(rng, steps)
