"""Model text under hostile input: the answer parsers, code extraction, text sanitising and
the arithmetic evaluator never raise (beyond their documented ValueError), return the
documented type, and finish on megabyte outputs built from the patterns that make a regex
backtrack. There are no timing assertions; pytest-timeout's per-test limit is the backstop
that turns a catastrophic regex into a failure instead of a hung run.

Per-shape cases live in test_parsing.py, test_coding.py, test_referential.py and
test_arithmetic.py; this file holds the properties and the adversarial inputs.
"""

from __future__ import annotations

import random
import re
import string
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenarios.arithmetic import evaluate
from scenarios.code_extraction import calls, defined_functions, extract_code, parses
from scenarios.parsing import MAX_DIGITS, parse_integer_answer, sanitize_text
from scenarios.referential_v0 import draw_objects, parse_choice

MB = 1024 * 1024
CANDIDATES = ["blue square", "red circle", "green star", "red square"]

# Fragments of the shapes the parsers look for; glued at random they make near-misses.
FRAGMENTS = [
    "\\boxed{", "}", "answer", "Answer:", " is ", "**", "=", "$", " ", "\n", "\t", "1", "12",
    ",", ",123", ".", ".0", "-", "−", "the number", "#", "no.", "red", "circle", "_", "```",
    "```python", "~~~", "def f(", "    return", "x = ", "[", "]", "(", ")", "\x00", "\r",
    "🤖", "١٢", "İ",
]  # fmt: skip
model_text = st.text() | st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)


# --- properties -----------------------------------------------------------------------------


@given(text=model_text)
def test_parse_integer_answer_gives_none_or_an_int64(text):
    answer = parse_integer_answer(text)
    assert answer is None or (type(answer) is int and -(2**63) < answer < 2**63)


@given(junk=model_text, answer=st.integers(-(10**17), 10**17))
def test_a_boxed_answer_at_the_end_is_found_after_any_text(junk, answer):
    assert parse_integer_answer(f"{junk} \\boxed{{{answer}}}") == answer


# Numbers as a model may write them, well formed or not: digit runs joined by ',' or '.'.
written_numbers = st.from_regex(
    r"-?[0-9]{1,25}(?:[.,][0-9]{1,6}){0,3}(?:[eE][-+]?[0-9]{1,3})?", fullmatch=True
)
ONE_NUMBER = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def integer_written(number: str) -> int | None:
    """The integer ``number`` says it is, by exact decimal arithmetic; None when it is not
    one number (``1,2345``), not an integer (``1.5``, ``1e-3``) or over MAX_DIGITS digits."""
    if not ONE_NUMBER.fullmatch(number):
        return None
    value = Decimal(number.replace(",", ""))
    if value != value.to_integral_value() or abs(value) >= 10**MAX_DIGITS:
        return None
    return int(value)


@given(
    number=written_numbers,
    shape=st.sampled_from(["Answer: {}", "\\boxed{{{}}}", "**{}**", "x = {}", "I get {}"]),
    end=st.sampled_from(["", ".", " ", "\n", "!", " apples"]),
)
def test_a_written_number_is_read_whole_never_as_a_part_of_it(number, shape, end):
    assert parse_integer_answer(shape.format(number) + end) == integer_written(number)


@given(
    mantissa=st.integers(-(10**9) + 1, 10**9 - 1),
    power=st.integers(0, 9),
    zeros=st.integers(1, 3),
    form=st.sampled_from(["plain", "grouped", "point", "exponent", "scaled"]),
    junk=model_text,
)
def test_an_integer_in_any_notation_is_its_value(mantissa, power, zeros, form, junk):
    value = mantissa * 10**power  # under 10**18
    number = {
        "plain": f"{value}",
        "grouped": f"{value:,}",
        "point": f"{value}.{'0' * zeros}",
        "exponent": f"{mantissa}e{power}",
        "scaled": f"{value}{'0' * zeros}e-{zeros}",
    }[form]
    assert parse_integer_answer(f"{junk} \\boxed{{{number}}}") == value


@given(text=model_text, seed=st.integers(0, 2**16), count=st.integers(2, 8))
def test_parse_choice_gives_none_or_a_candidate_index(text, seed, count):
    _, candidates = draw_objects(random.Random(seed), count, 2, "random")
    pick = parse_choice(text, candidates)
    assert pick is None or (type(pick) is int and 0 <= pick < count)


@given(junk=model_text, pick=st.integers(1, 4))
def test_an_answer_marker_at_the_end_is_read_after_any_text(junk, pick):
    assert parse_choice(f"{junk}\nAnswer: {pick}", CANDIDATES) == pick - 1


@given(text=model_text)
def test_extract_code_gives_normalised_code_or_nothing(text):
    code = extract_code(text)
    assert isinstance(code, str)
    assert code == "" or (code.endswith("\n") and code.strip())
    assert "\x00" not in code and "\r" not in code
    assert isinstance(defined_functions(code), list) and isinstance(calls(code, "f", "g"), bool)


prose = st.text(st.characters(blacklist_characters="`~", blacklist_categories=["Cs"]), max_size=500)


@given(before=prose, after=prose, label=st.sampled_from(["python", "py", "", "Python3"]))
def test_a_fenced_function_is_extracted_whatever_prose_surrounds_it(before, after, label):
    code = "def f(x):\n    return x + 1\n"
    assert extract_code(f"{before}\n```{label}\n{code}```\n{after}") == code


@given(text=st.text(), max_chars=st.integers(0, 200))
def test_sanitize_text_keeps_only_the_charset(text, max_chars):
    out = sanitize_text(text, string.printable, max_chars)
    assert len(out) <= max_chars and set(out) <= set(string.printable)


@given(text=st.text(alphabet="0123456789+-*/ ()x", max_size=60) | st.text(max_size=60))
def test_evaluate_gives_an_int_or_a_value_error(text):
    try:
        value = evaluate(text)
    except ValueError:
        assert not re.fullmatch(r"[0-9]+(?:[+*-][0-9]+)*", text)
        return
    assert type(value) is int


@given(
    numbers=st.lists(st.integers(0, 10**6), min_size=1, max_size=8),
    ops=st.lists(st.sampled_from("+-*"), min_size=7, max_size=7),
)
def test_evaluate_agrees_with_python_on_flat_expressions(numbers, ops):
    expression = str(numbers[0]) + "".join(
        f"{op}{n}" for op, n in zip(ops, numbers[1:], strict=False)
    )
    assert evaluate(expression) == eval(expression)  # digits and + - * only


# --- megabyte adversarial outputs -----------------------------------------------------------
# Each repeats a pattern that a backtracking regex would retry from every position: long
# runs the quantifiers can split many ways, openers without closers, markers without values.


def megabyte(pattern: str) -> str:
    return pattern * (MB // len(pattern) + 1)


ADVERSARIAL = {
    "digits": "1",
    "thousands": "1,",
    "thousands_groups": "1,234",
    "fractions": "1.2.",
    "minus": "-",
    "unicode_minus": "−1",
    "boxed_open": "\\boxed{",
    "boxed_spaces": "\\boxed{ $ ",
    "answer_is": "answer is ",
    "answer_run": "answer",
    "answer_marker_noise": "answer is the number # ",
    "answer_no": "answer no. ",
    "stars": "**",
    "stars_number": "**1 ",
    "equals": "= ",
    "separators": " _-",
    "identifier": "a",
    "dotted_identifier": "a.",
    "subscripts": "a[",
    "subscript_body": "a[" + "x" * 199,
    "assignment_like": "a =",
    "call_like": "f(",
    "indent_ws": " \t",
    "fence_backticks": "`",
    "fence_lines": "```\n",
    "fence_labels": "```python\n",
    "nested_fences": "```python\n````\n~~~py\n",
    "unterminated_fence_label": "```" + "a" * 100,
    "defs": "def ",
    "def_lines": "def f():\n",
    "deep_indent": "    " * 50 + "x = 1\n",
    "parentheses": "(",
    "brackets": "[]",
    "blank_lines": "\n",
    "crlf": "\r\n",
    "nul": "\x00",
    "emoji": "🤖",
    "combining": "e\u0301",
    "arabic_digits": "١٢",
}


@pytest.mark.timeout(60)  # the backstop: each input takes well under a second today
@pytest.mark.parametrize("pattern", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_megabyte_adversarial_outputs_complete(pattern):
    text = megabyte(pattern)
    assert len(text) >= MB
    answer = parse_integer_answer(text)
    assert answer is None or -(2**63) < answer < 2**63
    assert parse_choice(text, CANDIDATES) in (None, 0, 1, 2, 3)
    code = extract_code(text)
    assert isinstance(code, str)
    assert isinstance(parses(code), bool)
    assert len(sanitize_text(text, string.printable, 4000)) <= 4000
    with pytest.raises(ValueError):
        evaluate(text + "+")
