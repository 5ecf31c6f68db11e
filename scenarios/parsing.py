"""Reading an integer answer out of model text, and keeping text inside a ``Text`` space.

Small models answer in many shapes (``\\boxed{12}``, ``Answer: 12``, ``the answer is 12``,
``**12**``, ``= 12``) or just stop after a number. ``parse_integer_answer`` tries those
shapes in that order of trust, taking the last occurrence of the first shape found, and
falls back to the last number in the text. It never raises and runs in linear time: every
pattern uses bounded quantifiers, markers are only searched in the last ``MARKER_WINDOW``
characters and the fallback only in the last ``FALLBACK_WINDOW``.

Numbers may be negative, use thousands separators (``1,234``) or a zero fraction
(``12.0``). A number with a real fraction (``12.5``) is not an integer answer: the parse
gives ``None``. Numbers over ``MAX_DIGITS`` digits are rejected too, so every parsed answer
fits in a signed 64-bit int (msgpack, numpy) and ``int()`` never meets a huge digit string.
"""

from __future__ import annotations

import re

MAX_DIGITS = 18
MARKER_WINDOW = 20_000
FALLBACK_WINDOW = 2_000

# A number not glued to a word or another number: -1,234.0 / 12 / −7 (unicode minus).
_NUMBER = r"(?<![\w.])(?P<num>[-−]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?)(?![0-9])"

_MARKERS = [  # most trusted first
    re.compile(r"\\boxed\{[\s$]{0,3}" + _NUMBER + r"[\s$]{0,3}\}"),
    re.compile(r"answer(?:\s{1,3}is)?[\s:=*$]{0,8}" + _NUMBER, re.IGNORECASE),
    re.compile(r"\*\*[\s$]{0,3}" + _NUMBER + r"[\s$.]{0,3}\*\*"),
    re.compile(r"=[\s$*]{0,4}" + _NUMBER),
]
_ANY_NUMBER = re.compile(_NUMBER)


def _to_int(number: str) -> int | None:
    """``'-1,234.0'`` -> -1234; ``None`` for a real fraction or too many digits."""
    whole, _, fraction = number.replace(",", "").replace("−", "-").partition(".")
    if fraction.strip("0") or len(whole.lstrip("-")) > MAX_DIGITS:
        return None
    return int(whole)


def _last_match(pattern: re.Pattern[str], text: str) -> str | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - we want the last match
        pass
    return None if last is None else last.group("num")


def parse_integer_answer(text: str) -> int | None:
    """The integer a model gave as its answer, or ``None`` if it gave none."""
    window = text[-MARKER_WINDOW:]
    for marker in _MARKERS:
        number = _last_match(marker, window)
        if number is not None:
            return _to_int(number)
    number = _last_match(_ANY_NUMBER, text[-FALLBACK_WINDOW:])
    return None if number is None else _to_int(number)


def sanitize_text(text: str, charset: str | frozenset[str], max_chars: int) -> str:
    """``text`` cut to ``max_chars`` with every character outside ``charset`` replaced by '?'.

    With ``string.printable`` (our spaces' charset) newlines and tabs are kept as they are.
    """
    allowed = charset if isinstance(charset, frozenset) else frozenset(charset)
    if "?" not in allowed:
        raise ValueError("the charset must contain '?', the replacement character")
    return "".join(c if c in allowed else "?" for c in text[:max_chars])
