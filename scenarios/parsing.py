"""Reading an integer answer out of model text, and keeping text inside a ``Text`` space.

Small models answer in many shapes (``\\boxed{12}``, ``Answer: 12``, ``the answer is 12``,
``**12**``, ``= 12``) or just stop after a number. ``parse_integer_answer`` tries those
shapes in that order of trust, taking the last occurrence of the first shape found, and
falls back to the last number in the text. It never raises and runs in linear time: every
pattern uses bounded quantifiers, markers are only searched in the last ``MARKER_WINDOW``
characters and the fallback only in the last ``FALLBACK_WINDOW``.

What a number is. A number is read whole, as written: an optional sign (``-`` or ``−``),
digits, thousands groups (``1,234``) or a fraction (``12.0``), and an exponent (``1e3``,
``2.5E+1``), never glued to a word, a point or another number. Its value is the answer when
that value is an exact integer of at most ``MAX_DIGITS`` digits: ``1,000`` and ``1e3`` are
1000, ``2.0`` is 2, ``-0`` is 0. Anything else gives ``None``, never a part of the number:
a real fraction (``1.5``, ``1e-3``), a value too large (``1e999``, ``\\boxed{1e309}``, 30
digits, a nonzero number with an exponent of 10,000 or more), and text that is not one
number (``1,2345``, ``1.2.3``, ``1e3.5``). The first shape found decides: ``\\boxed{1e309}``
is no answer even when a later line says ``Answer: 5``. So every parsed answer fits in a
signed 64-bit int (msgpack, numpy), and ``int()`` only ever meets at most ``MAX_DIGITS``
digits: a number of 100k digits, or with a 100k-digit exponent, costs one pass. Left out:
other bases (``0x1F`` reads as the number 0 followed by the word ``x1F``).
"""

from __future__ import annotations

import re

MAX_DIGITS = 18
MARKER_WINDOW = 20_000
FALLBACK_WINDOW = 2_000

# A number as written, read whole: a sign, digit runs joined by ',' or '.', an exponent.
# Nothing before it (a word, a point, '1,' or '1e-') or after it continues it.
_NUMBER = (
    r"(?<![\w.])(?<![0-9],)(?<![0-9][eE][-+−])"
    r"(?P<num>[-−]?[0-9]+(?:[.,][0-9]+)*(?:[eE][-+−]?[0-9]+)?)"
    r"(?![0-9]|[.,][0-9]|[eE][-+−]?[0-9])"
)
# A decimal number's parts: -1,234.0e3 / 12 / 1e-2 (not 1,2345 or 1.2.3: no number)
_DECIMAL = re.compile(
    r"(?P<sign>[-−]?)(?P<whole>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<fraction>[0-9]+))?"
    r"(?:[eE](?P<exponent>[-+−]?[0-9]+))?"
)
MAX_EXPONENT_DIGITS = 4  # a longer exponent (without leading zeros) is out of any bound

_MARKERS = [  # most trusted first
    re.compile(r"\\boxed\{[\s$]{0,3}" + _NUMBER + r"[\s$]{0,3}\}"),
    re.compile(r"answer(?:\s{1,3}is)?[\s:=*$]{0,8}" + _NUMBER, re.IGNORECASE),
    re.compile(r"\*\*[\s$]{0,3}" + _NUMBER + r"[\s$.]{0,3}\*\*"),
    re.compile(r"=[\s$*]{0,4}" + _NUMBER),
]
_ANY_NUMBER = re.compile(_NUMBER)


def _to_int(number: str) -> int | None:
    """``'-1,234.0'`` -> -1234, ``'1e3'`` -> 1000; ``None`` unless an integer of at most
    ``MAX_DIGITS`` digits. Linear in ``len(number)``: no ``int()`` of a long string."""
    parts = _DECIMAL.fullmatch(number)
    if parts is None:
        return None
    fraction = parts["fraction"] or ""
    digits = (parts["whole"].replace(",", "") + fraction).lstrip("0")
    if not digits:
        return 0  # 0, -0, 0.00, 0e999
    shift = -len(fraction)  # value = int(digits) * 10**shift
    if parts["exponent"]:
        exponent = parts["exponent"].replace("−", "-")
        if len(exponent.lstrip("+-").lstrip("0")) > MAX_EXPONENT_DIGITS:
            return None  # over any bound, or a fraction
        shift += int(exponent)
    if shift < 0:
        if digits[shift:].strip("0"):
            return None  # a real fraction
        digits, shift = digits[:shift], 0
    if len(digits) + shift > MAX_DIGITS:
        return None
    value = int(digits + "0" * shift)
    return -value if parts["sign"] else value


def _last_match(pattern: re.Pattern[str], text: str, window: int) -> str | None:
    """The last match starting in the last ``window`` characters (which may look before)."""
    last = None
    for last in pattern.finditer(text, max(0, len(text) - window)):  # noqa: B007
        pass
    return None if last is None else last.group("num")


def parse_integer_answer(text: str) -> int | None:
    """The integer a model gave as its answer, or ``None`` if it gave none."""
    for marker in _MARKERS:
        number = _last_match(marker, text, MARKER_WINDOW)
        if number is not None:
            return _to_int(number)
    number = _last_match(_ANY_NUMBER, text, FALLBACK_WINDOW)
    return None if number is None else _to_int(number)


def sanitize_text(text: str, charset: str | frozenset[str], max_chars: int) -> str:
    """``text`` cut to ``max_chars`` with every character outside ``charset`` replaced by '?'.

    With ``string.printable`` (our spaces' charset) newlines and tabs are kept as they are.
    """
    allowed = charset if isinstance(charset, frozenset) else frozenset(charset)
    if "?" not in allowed:
        raise ValueError("the charset must contain '?', the replacement character")
    return "".join(c if c in allowed else "?" for c in text[:max_chars])
