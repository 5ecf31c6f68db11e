import string
import time

import pytest
from gymnasium.spaces import Text
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.parsing import parse_integer_answer, sanitize_text


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (r"so the result is \boxed{12}.", 12),
        (r"\boxed{ -7 }", -7),
        ("Answer: 12", 12),
        ("answer:12", 12),
        ("Final answer: -5", -5),
        ("So the answer is 12.", 12),
        ("The answer is: $42$", 42),
        ("**Answer:** 42", 42),
        ("Answer: **42**", 42),
        ("3 * 4 = 12", 12),
        ("The result is **12**.", 12),
        ("Answer: 1,234", 1234),
        ("Answer: -1,234", -1234),
        ("Answer: 12.0", 12),
        ("It is 57", 57),
        ("I get 3 then 8", 8),
        ("1,2345", 2345),  # not a thousands group: two numbers, the last wins
        ("Answer: 12\nCheck: 3 + 9 = 12 and 5 = 5", 12),  # the marked answer beats later '='
        (r"Answer: 13 ... \boxed{14}", 14),  # boxed is trusted most
        ("Answer: 12\nWait, no.\nAnswer: 15", 15),  # the last marked answer wins
        ("5-3", 3),  # a minus between numbers is not a sign
        ("−7", -7),  # unicode minus
        ("", None),
        ("no numbers here", None),
        ("Answer: 12.5", None),
        ("roughly 12.5", None),
        ("9" * 30, None),  # too long for a 64-bit answer
        ("{{{{}}}}", None),
    ],
)
def test_parse_integer_answer(text, answer):
    assert parse_integer_answer(text) == answer


ADVERSARIAL = [
    "9" * 100_000,
    "1,234" * 20_000,
    "1,234," * 20_000 + "5678",
    "answer " * 20_000,
    "answer is: " * 10_000 + "x",
    "\\boxed{" * 20_000,
    "{" * 50_000 + "}" * 50_000,
    "= " * 50_000,
    "**1" * 30_000,
    "1." * 50_000,
    "-" * 100_000,
    bytes(range(256)).decode("latin-1") * 400,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:10]))
def test_parse_is_fast_on_adversarial_input(text):
    start = time.perf_counter()
    answer = parse_integer_answer(text)
    assert time.perf_counter() - start < 0.5
    assert answer is None or abs(answer) < 2**63


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_never_raises_and_answers_fit_in_64_bits(text):
    answer = parse_integer_answer(text)
    assert answer is None or abs(answer) < 2**63


def test_sanitize_replaces_foreign_characters_and_keeps_newlines_and_tabs():
    assert sanitize_text("a\tb\nc é\x00", string.printable, 100) == "a\tb\nc ??"


def test_sanitize_truncates():
    assert sanitize_text("abcdef", string.printable, 3) == "abc"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=50))
def test_sanitized_text_lies_in_a_text_space(text, max_chars):
    space = Text(max_length=max_chars, min_length=0, charset=string.printable)
    assert space.contains(sanitize_text(text, string.printable, max_chars))


def test_sanitize_needs_the_replacement_character_in_the_charset():
    with pytest.raises(ValueError, match="'\\?'"):
        sanitize_text("x", "abc", 10)
