import string
import time

import pytest
from gymnasium.spaces import Text
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.parsing import FALLBACK_WINDOW, MARKER_WINDOW, parse_integer_answer, sanitize_text


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
        ("1,2345", None),  # not one number: neither its start 1 nor its end 2345
        ("Answer: 1,2345", None),
        ("Answer: 12,50", None),
        ("Answer: 1.2.3", None),
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


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # an exact integer of at most MAX_DIGITS digits, however it is written
        ("Answer: 1e3", 1000),
        ("1e3", 1000),
        ("so 2 * 500 = 1E+3", 1000),
        ("Answer: 2.5e1", 25),
        ("Answer: -1e3", -1000),
        ("Answer: 1000e-3", 1),
        ("Answer: 1,000", 1000),
        ("Answer: 2.0", 2),
        ("2.0", 2),
        ("Answer: -0", 0),
        ("-0", 0),
        ("Answer: 0e99999", 0),
        ("Answer: " + "9" * 18, 10**18 - 1),
        ("Answer: 1e17", 10**17),
        # anything else is no answer, never a part of the number
        ("Answer: 1e999", None),
        ("Answer: 1e18", None),  # 19 digits
        (r"\boxed{1e309}", None),
        (r"\boxed{1e309} so Answer: 5", None),  # the boxed answer decides
        ("Answer: 1e-3", None),
        ("Answer: 1.5", None),
        ("Answer: 1.25e1", None),
        ("Answer: 1e3.5", None),
        ("Answer: 1e" + "9" * 100_000, None),
        ("Answer: " + "9" * 100_000, None),
        ("Answer: 1" + "0" * 100_000 + "e-100000", None),  # exponents of 10,000 and more
        ("I get 1,2,3", None),
    ],
)
def test_a_number_is_read_whole_and_is_the_answer_only_when_an_integer(text, answer):
    assert parse_integer_answer(text) == answer


def test_a_number_cut_by_the_search_window_is_not_read_from_its_middle():
    assert parse_integer_answer("1234" + "x" * (FALLBACK_WINDOW - 2)) is None  # not 34
    assert parse_integer_answer("1,234" + "x" * (FALLBACK_WINDOW - 3)) is None  # not 234
    assert parse_integer_answer("1e5" + "x" * (FALLBACK_WINDOW - 1)) is None  # not 5
    assert parse_integer_answer("= 1234" + "x" * (MARKER_WINDOW - 2)) is None


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
    "1e1" * 30_000,
    "1.5e" * 25_000,
    "1e" + "9" * 100_000,
    "\\boxed{" + "9" * 100_000 + "}",
    "Answer: 1" + "0" * 100_000 + "e-1",
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
