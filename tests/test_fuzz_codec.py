"""The codec under hostile bytes: transcripts and bus frames from a killed run, a bad disk or
another process decode to records or to a counted, located failure, in bounded memory.

test_codec.py has one case per rule; here the rules are checked as properties: any bytes,
every truncation point, damaged files, and a model of which frames are kept, skipped or
fatal (TranscriptReader's docstring), run against files built from random frame sequences.
"""

from __future__ import annotations

import contextlib
import struct
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marl.core.bus import Message
from marl.core.codec import (
    MAX_DEPTH,
    CodecError,
    Limits,
    TranscriptReader,
    decode_message,
    pack,
    read_transcript,
)

SMALL = Limits(
    max_frame_bytes=4096, max_str_len=64, max_bin_len=64, max_array_len=16, max_map_len=16
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """One folder for a module's examples (hypothesis runs many per test function)."""
    return tmp_path_factory.mktemp("fuzz_codec")


def read(path: Path, limits: Limits = SMALL) -> tuple[list[dict], TranscriptReader]:
    """Every record the lenient reader yields, checked to be JSON-shaped; and the reader."""
    reader = TranscriptReader(path, limits)
    records = list(reader.records())
    for record in records:
        assert_json_shaped(record)
    assert reader.skipped >= 0
    assert reader.error is None or (isinstance(reader.error, str) and reader.error)
    assert not (reader.error and reader.truncated_tail)
    return records, reader


def assert_json_shaped(value: Any, top: bool = True) -> None:
    if top:
        assert type(value) is dict
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            assert_json_shaped(item, top=False)
    elif isinstance(value, list):
        for item in value:
            assert_json_shaped(item, top=False)
    else:
        assert value is None or isinstance(value, bool | int | float | str | bytes), value


def strict_outcome(path: Path, limits: Limits = SMALL) -> list[dict] | CodecError:
    """read_transcript raises CodecError on any damage, and nothing else."""
    try:
        return read_transcript(path, limits)
    except CodecError as err:
        assert str(err)
        return err


# --- any bytes ----------------------------------------------------------------------------


@given(data=st.binary(max_size=2000))
def test_any_bytes_give_records_or_counted_damage(folder, data):
    path = folder / "any.msgpack"
    path.write_bytes(data)
    for limits in (SMALL, Limits()):
        records, reader = read(path, limits)
        clean = strict_outcome(path, limits)
        damaged = reader.skipped or reader.truncated_tail or reader.error
        assert isinstance(clean, CodecError) == bool(damaged)
        if not damaged:
            assert clean == records


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.binary(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(frames=st.lists(msgpack_values, max_size=6))
def test_frames_of_any_msgpack_value_are_yielded_or_skipped(folder, frames):
    """Valid msgpack of any shape never stops the reader: non-records are skipped."""
    path = folder / "values.msgpack"
    path.write_bytes(b"".join(msgpack.packb(f, use_bin_type=True) for f in frames))
    records, reader = read(path, Limits())
    assert reader.error is None and not reader.truncated_tail
    assert len(records) + reader.skipped == len(frames)


# --- truncation and damage ----------------------------------------------------------------


def records(n: int) -> list[dict]:
    return [{"episode": i, "text": "é" * i, "rewards": [0.5] * i, "meta": {}} for i in range(n)]


def test_a_file_cut_at_any_byte_keeps_every_complete_frame(tmp_path):
    items: list[Any] = records(4)
    items.insert(2, [1, 2])  # a frame that is skipped, not a record
    frames = [pack(item) for item in items]
    data = b"".join(frames)
    ends = [sum(len(f) for f in frames[: i + 1]) for i in range(len(frames))]
    path = tmp_path / "cut.msgpack"
    for cut in range(len(data) + 1):
        path.write_bytes(data[:cut])
        got, reader = read(path, Limits())
        complete = [item for item, end in zip(items, ends, strict=True) if end <= cut]
        assert got == [item for item in complete if isinstance(item, dict)]
        assert reader.skipped == (ends[2] <= cut)
        assert reader.truncated_tail == (cut not in (0, *ends))
        assert reader.error is None


@given(
    n=st.integers(1, 6),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_damage_keeps_every_record_before_it(folder, n, flips):
    frames = [pack(r) for r in records(n)]
    data = bytearray(b"".join(frames))
    positions = []
    for at, byte in flips:
        at %= len(data)
        data[at] = byte
        positions.append(at)
    path = folder / "damaged.msgpack"
    path.write_bytes(bytes(data))
    got, _ = read(path, Limits())
    ends = [sum(len(f) for f in frames[: i + 1]) for i in range(n)]
    intact = sum(end <= min(positions) for end in ends)
    assert got[:intact] == records(n)[:intact]


# --- which frames are kept, skipped or fatal -----------------------------------------------
# Under SMALL: a record is kept; a frame that decodes but is not a record is skipped and
# counted; a frame the decoder refuses (a size over a limit, an extension, bad bytes) stops
# the reading with an error. The model below says what each kind of frame must do.

KEEP, SKIP, FATAL = "keep", "skip", "fatal"
KINDS: dict[str, tuple[str, bytes]] = {
    "record": (KEEP, pack({"ok": 1, "s": "x" * 64, "b": b"y" * 64, "l": list(range(16))}, SMALL)),
    "list": (SKIP, pack([1, 2, 3], SMALL)),
    "str": (SKIP, pack("just text", SMALL)),
    "bytes_key": (SKIP, msgpack.packb({b"k": 1}, use_bin_type=True)),
    "nested_bytes_key": (SKIP, msgpack.packb({"a": [{b"k": 1}]}, use_bin_type=True)),
    "frame_over_limit": (SKIP, msgpack.packb({"a": [["x" * 60] * 16] * 8})),  # ~8 KB
    "str_over_limit": (FATAL, msgpack.packb({"s": "x" * 65})),
    "bin_over_limit": (FATAL, msgpack.packb({"b": b"x" * 65}, use_bin_type=True)),
    "array_over_limit": (FATAL, msgpack.packb({"l": [0] * 17})),
    "map_over_limit": (FATAL, msgpack.packb({"m": {str(i): 0 for i in range(17)}})),
    "ext": (FATAL, msgpack.packb({"e": msgpack.ExtType(1, b"ab")})),
    "empty_ext": (FATAL, b"\x81\xa1e\xc7\x00\x05"),  # ext8 of length 0: reaches the ext hook
    "invalid_byte": (FATAL, b"\xc1"),
    "int_key": (FATAL, msgpack.packb({1: 2})),
    "bad_utf8": (FATAL, b"\x81\xa1s\xa2\xff\xfe"),
    "too_deep": (FATAL, b"\x81\xa1d" + b"\x91" * (MAX_DEPTH + 1) + b"\xc0"),
    # more bytes than the reader's buffer (frame limit + one read) before the claim is met
    "huge_str_header": (FATAL, b"\x81\xa1s\xdb\x7f\xff\xff\xff" + b"x" * 80_000),
}


@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), max_size=8), cut=st.integers(0, 20))
def test_each_frame_is_kept_skipped_or_fatal_as_documented(folder, kinds, cut):
    data = b"".join(KINDS[k][1] for k in kinds)
    if not kinds or KINDS[kinds[-1]][0] == FATAL:  # a cut fatal frame may still be fatal
        cut = 0
    cut = min(cut, len(KINDS[kinds[-1]][1]) - 1) if cut else 0  # bytes cut off the end
    path = folder / "kinds.msgpack"
    path.write_bytes(data[: len(data) - cut])
    got, reader = read(path)
    fates = [KINDS[k][0] for k in kinds]
    if cut:
        fates[-1] = "cut"
    stop = fates.index(FATAL) if FATAL in fates else len(fates)
    assert len(got) == fates[:stop].count(KEEP)
    assert reader.skipped == fates[:stop].count(SKIP)
    assert (reader.error is not None) == (FATAL in fates)
    assert reader.truncated_tail == (FATAL not in fates and "cut" in fates)
    if reader.error:
        offset = sum(len(KINDS[k][1]) for k in kinds[:stop])
        assert f"corrupt frame at byte {offset}:" in reader.error


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("str_over_limit", "exceeds max_str_len(64)"),
        ("bin_over_limit", "exceeds max_bin_len(64)"),
        ("array_over_limit", "exceeds max_array_len(16)"),
        ("map_over_limit", "exceeds max_map_len(16)"),
        ("ext", "extension types are not allowed"),
        ("empty_ext", "extension type 5 is not allowed"),
        ("invalid_byte", "malformed msgpack"),
        ("too_deep", f"nesting deeper than {MAX_DEPTH} levels"),
        ("huge_str_header", "frame larger than the limit of 4096 bytes"),
    ],
)
def test_a_fatal_frame_says_why(tmp_path, kind, says):
    path = tmp_path / "fatal.msgpack"
    path.write_bytes(KINDS["record"][1] + KINDS[kind][1] + KINDS["record"][1])
    got, reader = read(path)
    assert len(got) == 1 and says in reader.error


# --- memory ---------------------------------------------------------------------------------


def traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"\xdb\xff\xff\xff\xff", id="str32_4GiB"),
        pytest.param(b"\xc6\xff\xff\xff\xff", id="bin32_4GiB"),
        pytest.param(b"\xc9\xff\xff\xff\xff\x01", id="ext32_4GiB"),
        pytest.param(b"\xdd\xff\xff\xff\xff", id="array32_4G_items"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="map32_4G_items"),
        pytest.param(b"\xdd" + struct.pack(">I", 1_000_000), id="array32_at_the_limit"),
    ],
)
def test_a_header_claiming_gigabytes_allocates_nothing_of_the_sort(tmp_path, header):
    path = tmp_path / "claim.msgpack"
    path.write_bytes(pack({"ok": 1}) + header + b"\x00" * 1000)
    got: list = []
    reader = TranscriptReader(path)
    peak = traced_peak(lambda: got.extend(reader.records()))
    assert got == [{"ok": 1}]
    assert reader.error or reader.truncated_tail
    assert peak < 2 * 1024 * 1024


def test_nested_size_claims_stay_bounded_by_the_depth_limit(tmp_path):
    """Each container header can make msgpack reserve ~78 KB before its items arrive, so
    5 KB of nested 'array of 1,000,000' headers cost ~80 MB: bounded by msgpack's depth
    limit (1024), measured here so a decoder upgrade that grows it is noticed."""
    path = tmp_path / "nested.msgpack"
    path.write_bytes((b"\xdd" + struct.pack(">I", 1_000_000)) * (MAX_DEPTH - 1))
    reader = TranscriptReader(path)
    peak = traced_peak(lambda: list(reader.records()))
    assert reader.truncated_tail
    assert peak < 128 * 1024 * 1024


# --- bus messages ---------------------------------------------------------------------------

MESSAGE = Message("a", ("b",), 0, "message", "hi", {"answer": 1})


@given(
    fields=st.fixed_dictionaries(
        {},
        optional={name: msgpack_values for name in MESSAGE.to_dict()} | {"extra": msgpack_values},
    ),
    base=st.booleans(),
)
def test_decode_message_gives_a_message_or_names_the_problem(fields, base):
    value = (MESSAGE.to_dict() | fields) if base else fields
    try:
        message = decode_message(msgpack.packb(value, use_bin_type=True))
    except CodecError as err:
        assert str(err)
        return
    assert type(message.sender) is str and type(message.round) is int
    assert all(type(r) is str for r in message.recipients)
    assert_json_shaped(dict(message.meta))


@given(data=st.binary(max_size=300))
def test_decode_message_on_any_bytes_gives_a_message_or_a_codec_error(data):
    with contextlib.suppress(CodecError):
        assert isinstance(decode_message(data), Message)
