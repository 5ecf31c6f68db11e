"""The wire format: frames, bus messages and transcript files, under size limits."""

import contextlib
import random
import time
import tracemalloc

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marl.core.bus import Message
from marl.core.codec import (
    CodecError,
    Limits,
    TranscriptReader,
    TranscriptWriter,
    decode_message,
    encode_message,
    pack,
    read_transcript,
    unpack,
)

HUGE_STR_HEADER = b"\xdb\x80\x00\x00\x00"  # str32 claiming 2**31 bytes

MESSAGE = Message("a", ("b", "c"), 2, "message", "the answer is 42", {"answer": 42, "tags": ["x"]})


def record(i: int) -> dict:
    return {"episode": i, "reward": 0.5 * i, "done": True, "messages": [MESSAGE.to_dict()]}


def peak_bytes_and_seconds(fn) -> tuple[int, float]:
    tracemalloc.start()
    began = time.perf_counter()
    try:
        fn()
    finally:
        seconds = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, seconds


# --- frames -------------------------------------------------------------------------------


def test_nested_record_round_trips():
    value = {"a": [1, -2, 3.5, None, True, "é", b"\x00\xff"], "b": {"c": {"d": []}}, "e": {}}
    assert unpack(pack(value)) == value


def test_tuples_come_back_as_lists():
    assert unpack(pack({"pair": (1, 2)})) == {"pair": [1, 2]}


def test_oversized_frame_is_refused_both_ways():
    limits = Limits(max_frame_bytes=1000)
    with pytest.raises(CodecError, match=r"frame of \d+ bytes exceeds the limit of 1000 bytes"):
        pack({"text": "x" * 2000}, limits)
    with pytest.raises(CodecError, match="frame of 2000 bytes exceeds"):
        unpack(b"\x00" * 2000, limits)


def test_string_over_the_limit_is_refused_where_it_sits():
    with pytest.raises(CodecError, match=r"value\['meta'\]\['note'\]: str of 11 bytes"):
        pack({"meta": {"note": "x" * 11}}, Limits(max_str_len=10))


def test_random_garbage_is_a_codec_error():
    with pytest.raises(CodecError):
        unpack(random.Random(0).randbytes(4096))


def test_truncated_frame_is_a_codec_error():
    with pytest.raises(CodecError, match="truncated frame"):
        unpack(pack(record(1))[:-5])


def test_trailing_bytes_are_a_codec_error():
    with pytest.raises(CodecError, match="3 trailing bytes"):
        unpack(pack(record(1)) + b"\x01\x02\x03")


def test_header_claiming_a_huge_string_fails_fast_without_allocating():
    def decode():
        with pytest.raises(CodecError):
            unpack(HUGE_STR_HEADER + b"abc")

    peak, seconds = peak_bytes_and_seconds(decode)
    assert peak < 1024 * 1024
    assert seconds < 1


def test_header_claiming_a_huge_array_is_refused_before_allocating():
    def decode():
        with pytest.raises(CodecError, match="exceeds max_array_len"):
            unpack(b"\xdd\xff\xff\xff\xff" + b"\x00" * 8)  # array32 claiming 2**32-1 items

    peak, _ = peak_bytes_and_seconds(decode)
    assert peak < 1024 * 1024


def test_non_str_map_key_is_refused_with_its_path():
    with pytest.raises(CodecError, match=r"value\['meta'\]\[0\]: map key 3 is int"):
        pack({"meta": [{3: "x"}]})
    with pytest.raises(CodecError, match="map key b'k' is bytes"):
        unpack(msgpack.packb({b"k": 1}, use_bin_type=True))


def test_extension_types_are_refused_both_ways():
    with pytest.raises(CodecError, match="extension types are not allowed"):
        unpack(msgpack.packb(msgpack.ExtType(5, b"data")))
    with pytest.raises(CodecError, match="extension type 5"):
        unpack(b"\xc7\x00\x05")  # ext8 of length 0 reaches the ext hook
    with pytest.raises(CodecError, match=r"value\['x'\]: extension types are not allowed"):
        pack({"x": msgpack.ExtType(5, b"data")})


def test_unsupported_values_are_refused_with_their_path():
    with pytest.raises(CodecError, match=r"value\['ids'\]: cannot encode builtins.set"):
        pack({"ids": {1, 2}})
    with pytest.raises(CodecError, match="outside msgpack's 64-bit range"):
        pack([2**64])


def test_deep_nesting_is_a_codec_error_not_a_crash():
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(CodecError, match="nesting deeper"):
        pack(value)
    with pytest.raises(CodecError, match="nesting deeper"):
        unpack(b"\x91" * 5000 + b"\x01")


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_str_len must be at least 1"):
        Limits(max_str_len=0)


# --- bus messages -------------------------------------------------------------------------


def test_message_round_trips():
    assert decode_message(encode_message(MESSAGE)) == MESSAGE


def wire(**changes) -> bytes:
    return pack({**MESSAGE.to_dict(), **changes})


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"round": "2"}, "message field 'round': expected int, got str"),
        ({"round": True}, "message field 'round': expected int, got bool"),
        ({"sender": None}, "message field 'sender': expected str, got NoneType"),
        ({"recipients": "b"}, "message field 'recipients': expected list, got str"),
        ({"recipients": ["b", 7]}, "'recipients': expected list\\[str\\], item 1 is int"),
        ({"meta": []}, "message field 'meta': expected dict, got list"),
        ({"extra": 1}, "unknown \\['extra'\\]"),
    ],
)
def test_decode_message_names_the_bad_field(changes, error):
    with pytest.raises(CodecError, match=error):
        decode_message(wire(**changes))


def test_decode_message_names_missing_fields():
    fields = MESSAGE.to_dict()
    del fields["channel"]
    with pytest.raises(CodecError, match="missing \\['channel'\\]"):
        decode_message(pack(fields))


# --- transcripts --------------------------------------------------------------------------


def test_transcript_round_trips(tmp_path):
    path = tmp_path / "transcripts" / "run.msgpack"
    with TranscriptWriter(path) as writer:
        for i in range(5):
            writer.write(record(i))
    assert read_transcript(path) == [record(i) for i in range(5)]


def test_a_second_writer_appends(tmp_path):
    path = tmp_path / "run.msgpack"
    with TranscriptWriter(path) as writer:
        for i in range(3):
            writer.write(record(i))
    with TranscriptWriter(path) as writer:
        for i in range(3, 5):
            writer.write(record(i))
    assert read_transcript(path) == [record(i) for i in range(5)]


def test_records_are_on_disk_before_the_writer_closes(tmp_path):
    path = tmp_path / "run.msgpack"
    with TranscriptWriter(path) as writer:
        writer.write(record(0))
        assert read_transcript(path) == [record(0)]  # a run killed now keeps it


def test_writer_refuses_a_record_that_is_not_a_dict(tmp_path):
    with TranscriptWriter(tmp_path / "run.msgpack") as writer, pytest.raises(CodecError):
        writer.write([1, 2])  # type: ignore[arg-type]


def write_records(path, n: int) -> None:
    with TranscriptWriter(path) as writer:
        for i in range(n):
            writer.write(record(i))


def test_file_cut_mid_frame_keeps_the_records_before_it(tmp_path):
    path = tmp_path / "run.msgpack"
    write_records(path, 5)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    reader = TranscriptReader(path)
    assert list(reader.records()) == [record(i) for i in range(4)]
    assert reader.truncated_tail
    assert reader.error is None
    with pytest.raises(CodecError, match="ends inside a frame"):
        read_transcript(path)


def test_garbage_in_the_middle_keeps_what_came_before_and_says_where(tmp_path):
    path = tmp_path / "run.msgpack"
    write_records(path, 2)
    offset = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\xc1\xc1\xc1")  # 0xc1 is never valid msgpack
    write_records(path, 2)
    reader = TranscriptReader(path)
    assert list(reader.records()) == [record(0), record(1)]
    assert reader.error is not None and f"byte {offset}" in reader.error
    assert not reader.truncated_tail
    with pytest.raises(CodecError, match=f"corrupt frame at byte {offset}"):
        read_transcript(path)


def test_frames_that_are_not_records_are_skipped_and_counted(tmp_path):
    path = tmp_path / "run.msgpack"
    write_records(path, 1)
    with path.open("ab") as f:
        f.write(pack([1, 2, 3]) + msgpack.packb({b"raw": 1}, use_bin_type=True))
    write_records(path, 1)
    reader = TranscriptReader(path)
    assert list(reader.records()) == [record(0), record(0)]
    assert reader.skipped == 2
    with pytest.raises(CodecError, match="must be a dict"):
        list(TranscriptReader(path, strict=True).records())


def test_frames_at_the_limit_read_back(tmp_path):
    limits = Limits(max_frame_bytes=1000)
    big = {"s": "x" * 994}
    assert len(pack(big, limits)) == 1000
    path = tmp_path / "run.msgpack"
    with TranscriptWriter(path, limits) as writer:
        for _ in range(3):
            writer.write(big)
    assert read_transcript(path, limits) == [big] * 3


def test_huge_string_header_mid_file_does_not_make_the_reader_wait_or_grow(tmp_path):
    path = tmp_path / "run.msgpack"
    write_records(path, 1)
    with path.open("ab") as f:
        f.write(HUGE_STR_HEADER + b"\x00" * (4 * 1024 * 1024))
    reader = TranscriptReader(path, Limits(max_frame_bytes=64 * 1024))
    got: list = []
    peak, seconds = peak_bytes_and_seconds(lambda: got.extend(reader.records()))
    assert got == [record(0)]
    assert reader.error is not None and "limit of" in reader.error
    assert peak < 1024 * 1024 and seconds < 1


# --- properties ---------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), values, max_size=5))
def test_any_record_round_trips(value):
    data = pack(value)
    assert unpack(data) == value
    assert pack(unpack(data)) == data  # same types too: True stays bool, 1.0 stays float


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_codec_error(data):
    with contextlib.suppress(CodecError):
        unpack(data)
