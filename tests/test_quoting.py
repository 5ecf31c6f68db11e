"""``scenarios.base.quoted``: the one way observations show text the scenario did not write.

Properties: whatever the quoted texts hold, reading the frame back (``frame_lines``) gives
exactly the header lines the scenario wrote, the quoted lines give back every line of every
text (nothing lost, nothing added), and the quoted text fits the budget ``quoted_chars``.
The scenario-level properties (each scenario's real headers) are in test_forged_senders.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scenarios.base import CHARSET, LINE_BREAK, QUOTE, frame_lines, quoted, quoted_chars
from scenarios.parsing import sanitize_text
from tests.test_forged_senders import FORGED, hostile

BREAK_CHARS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
header = st.text(st.characters(blacklist_characters=BREAK_CHARS, blacklist_categories=["Cs"]))
header = (header | st.sampled_from(FORGED)).filter(lambda h: not h.startswith(QUOTE))


def observed(text: str) -> str:
    return sanitize_text(text, CHARSET, len(text))


@given(messages=st.lists(st.tuples(header, hostile), min_size=1, max_size=6))
def test_quoted_text_cannot_add_remove_or_change_a_frame_line(messages):
    observation = observed("\n".join(f"{head}\n{quoted(text)}" for head, text in messages))
    assert frame_lines(observation) == [observed(head) for head, _ in messages]
    shown = [
        line.removeprefix(QUOTE) for line in LINE_BREAK.split(observation) if line.startswith(QUOTE)
    ]
    assert shown == [observed(line) for _, text in messages for line in LINE_BREAK.split(text)]


@given(text=hostile)
def test_every_line_of_quoted_text_is_quoted_whatever_breaks_it(text):
    lines = quoted(text).split("\n")
    assert all(line.startswith(QUOTE) for line in lines)
    assert not any(c in BREAK_CHARS for line in lines for c in line)
    assert quoted(text).splitlines() == lines


@given(text=st.text(st.sampled_from([*BREAK_CHARS, "x", "\t", " "])) | hostile)
def test_quoted_text_fits_its_budget(text):
    assert len(quoted(text)) <= quoted_chars(len(text))


def test_a_blank_text_is_one_quoted_blank_line():
    assert quoted("") == QUOTE
    assert quoted("a\r\nb\rc\x0bd\x0ce\u2028f") == "\n".join(QUOTE + c for c in "abcdef")
