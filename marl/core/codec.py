"""The wire format: msgpack frames for bus messages and transcript files.

This module owns every byte that leaves or enters a run: ``pack``/``unpack`` for one
frame, ``encode_message``/``decode_message`` for bus messages (schema-checked), and
transcripts (``TranscriptWriter`` appends one frame per episode record,
``TranscriptReader`` streams them back and reports damage).

Why the limits: these bytes come from outside the process (another worker, a run killed
mid-write, a file someone edited), and a msgpack header is a promise of length. Five
bytes can claim a 4-billion-item array, which the decoder allocates up front, or a
2 GiB string, which a streaming decoder waits for. So every decode runs under
``Limits``: a cap on the frame (msgpack's ``max_buffer_size``) and on each string,
binary, array and map. ``pack`` refuses whatever the decoder would refuse, so a
transcript written under some limits reads back under the same limits.

Deliberately left out:
- extension types, refused both ways: decoding hooks that build objects are how
  msgpack-numpy ends up unpickling;
- non-str map keys, so records stay JSON-shaped for ``analysis/``;
- tuples are accepted but come back as lists (msgpack has one array type);
- fsync: a flush per record survives a killed process, not a power cut.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Self

import msgpack

from marl.core.bus import Message
from marl.core.files import open_regular

MiB = 1024 * 1024
MAX_DEPTH = 1024  # msgpack's decoder refuses deeper nesting
_READ_SIZE = 64 * 1024  # bytes a streaming reader asks the file for at a time
_CONTAINERS = (dict, list, tuple)
_MESSAGE_FIELDS = {
    "sender": str,
    "recipients": list,
    "round": int,
    "channel": str,
    "content": str,
    "meta": dict,
}


class CodecError(ValueError):
    """Bytes that are not a valid frame, or a value that cannot become one; says what and where."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on one frame. Every decode enforces them; ``pack`` refuses what would break them."""

    max_frame_bytes: int = 16 * MiB  # one encoded message or transcript record
    max_str_len: int = 4 * MiB  # UTF-8 bytes in one string
    max_bin_len: int = 16 * MiB  # bytes in one binary value
    max_array_len: int = 1_000_000  # items in one list; the decoder allocates them up front
    max_map_len: int = 100_000  # keys in one dict

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"Limits.{f.name} must be at least 1, got {getattr(self, f.name)}")


DEFAULT_LIMITS = Limits()


def pack(obj: Any, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode one value as a frame: str, int, float, bool, None, bytes, lists, str-keyed dicts."""
    _check_tree(obj, limits)
    data = msgpack.packb(obj, use_bin_type=True)
    if len(data) > limits.max_frame_bytes:
        raise CodecError(_frame_too_big(len(data), limits))
    return data


def unpack(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode exactly one frame; anything else (trailing bytes, truncation...) is a CodecError."""
    if len(data) > limits.max_frame_bytes:
        raise CodecError(_frame_too_big(len(data), limits))
    try:
        obj = msgpack.unpackb(data, **_decoder_options(limits))
    except msgpack.ExtraData as exc:
        raise CodecError(f"{len(exc.extra)} trailing bytes after a complete frame") from None
    except ValueError as exc:
        raise CodecError(f"cannot decode frame of {len(data)} bytes: {_reason(exc)}") from exc
    _check_tree(obj, limits)
    return obj


def encode_message(message: Message, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """One bus message as a frame."""
    return pack(message.to_dict(), limits)


def decode_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """A bus message from a frame, checking the schema and naming the first bad field."""
    obj = unpack(data, limits)
    if type(obj) is not dict:
        raise CodecError(f"a message must be a map, got {type(obj).__name__}")
    if obj.keys() != _MESSAGE_FIELDS.keys():
        missing = sorted(_MESSAGE_FIELDS.keys() - obj.keys())
        unknown = sorted(obj.keys() - _MESSAGE_FIELDS.keys())
        raise CodecError(
            f"message fields must be {list(_MESSAGE_FIELDS)}; missing {missing}, unknown {unknown}"
        )
    for name, kind in _MESSAGE_FIELDS.items():
        if type(obj[name]) is not kind:  # `is`, so that True is not an int round
            raise CodecError(
                f"message field '{name}': expected {kind.__name__}, got {type(obj[name]).__name__}"
            )
    for i, recipient in enumerate(obj["recipients"]):
        if type(recipient) is not str:
            raise CodecError(
                f"message field 'recipients': expected list[str], item {i} is "
                f"{type(recipient).__name__}"
            )
    return Message(
        obj["sender"],
        tuple(obj["recipients"]),
        obj["round"],
        obj["channel"],
        obj["content"],
        obj["meta"],
    )


class TranscriptWriter:
    """Appends episode records (str-keyed dicts) to a transcript file, one frame each.

    A record is encoded whole, written in one call and flushed, so a run killed
    mid-write leaves at most one partial frame at the end of the file.
    """

    def __init__(self, path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = Path(path)
        self.limits = limits
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")

    def write(self, record: dict[str, Any]) -> None:
        _check_record(record)
        self._file.write(pack(record, self.limits))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TranscriptReader:
    """Streams records back from a transcript and reports damage instead of dying on it.

    Once ``records()`` is exhausted:
    - ``skipped``: frames that decoded but are not records (not a dict, a non-str key,
      over a limit); reading goes on after them;
    - ``truncated_tail``: the file ends inside a frame (a run killed mid-write); every
      complete record before it was yielded;
    - ``error``: where an undecodable frame stopped the reading. msgpack has no resync
      marker, so nothing after it can be trusted; the records before it were yielded.
    With ``strict=True`` each of these raises ``CodecError`` instead.
    """

    def __init__(
        self, path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS, strict: bool = False
    ) -> None:
        self.path = Path(path)
        self.limits = limits
        self.strict = strict
        self.skipped = 0
        self.truncated_tail = False
        self.error: str | None = None

    def records(self) -> Iterator[dict[str, Any]]:
        self.skipped, self.truncated_tail, self.error = 0, False, None
        with open_regular(self.path) as file:
            # The buffer holds one whole frame plus one read of the next: a frame at the
            # limit still fits, and a header claiming more can never make it grow past that.
            unpacker = msgpack.Unpacker(
                file,
                read_size=_READ_SIZE,
                max_buffer_size=self.limits.max_frame_bytes + _READ_SIZE,
                **_decoder_options(self.limits),
            )
            while True:
                start = unpacker.tell()
                try:
                    frame = unpacker.unpack()
                except msgpack.OutOfData:
                    break
                except (ValueError, msgpack.BufferFull) as exc:
                    self.error = f"corrupt frame at byte {start}: {_reason(exc, self.limits)}"
                    if self.strict:
                        raise CodecError(f"{self.path}: {self.error}") from exc
                    return
                try:
                    if unpacker.tell() - start > self.limits.max_frame_bytes:
                        raise CodecError(_frame_too_big(unpacker.tell() - start, self.limits))
                    _check_record(frame)
                    _check_tree(frame, self.limits)
                except CodecError as exc:
                    self.skipped += 1
                    if self.strict:
                        raise CodecError(f"{self.path}: frame at byte {start}: {exc}") from None
                    continue
                yield frame
            size = os.fstat(file.fileno()).st_size
        # Out of data: `start` is where the last complete frame ended (tell() has moved on).
        if start < size:
            self.truncated_tail = True
            if self.strict:
                raise CodecError(
                    f"{self.path}: ends inside a frame at byte {start} ({size - start} bytes"
                    " left over, e.g. a run killed mid-write)"
                )


def read_transcript(
    path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """Every record of a clean transcript; any damage raises CodecError (see TranscriptReader)."""
    return list(TranscriptReader(path, limits, strict=True).records())


def _decoder_options(limits: Limits) -> dict[str, Any]:
    return {
        "raw": False,
        "strict_map_key": True,
        "max_str_len": limits.max_str_len,
        "max_bin_len": limits.max_bin_len,
        "max_array_len": limits.max_array_len,
        "max_map_len": limits.max_map_len,
        "max_ext_len": 0,
        "ext_hook": _refuse_ext,
    }


def _refuse_ext(code: int, data: bytes) -> Any:
    # Only zero-length extensions get here; longer ones already fail max_ext_len=0.
    raise CodecError(f"extension type {code} is not allowed")


def _reason(exc: Exception, limits: Limits = DEFAULT_LIMITS) -> str:
    """msgpack's exception as a reason a user can act on (some of its messages are empty)."""
    if isinstance(exc, msgpack.FormatError):
        return "malformed msgpack (an invalid type byte)"
    if isinstance(exc, msgpack.StackError):
        return f"nesting deeper than {MAX_DEPTH} levels"
    if isinstance(exc, msgpack.BufferFull):
        limit = _size(limits.max_frame_bytes)
        return f"frame larger than the limit of {limit} (Limits.max_frame_bytes)"
    text = str(exc)
    if "max_ext_len" in text:
        return "extension types are not allowed"
    if "incomplete input" in text:
        return "truncated frame (the data ends inside an object)"
    return text  # e.g. "5000000 exceeds max_str_len(4194304)", bad UTF-8, a non-str map key


def _check_record(record: Any) -> None:
    if not isinstance(record, dict):
        kind = type(record).__name__
        raise CodecError(f"a transcript record must be a dict with str keys, got {kind}")


def _check_tree(value: Any, limits: Limits) -> None:
    """Refuse what must not cross the wire, naming where it sits in ``value``.

    Non-str map keys, types msgpack would not bring back, and sizes or nesting the
    decoder would refuse. Iterative, so deep nesting gives a CodecError, not a RecursionError.
    """
    if not isinstance(value, _CONTAINERS):
        if problem := _scalar_problem(value, limits):
            raise CodecError(f"value: {problem}")
        return
    stack = [(value, "value", 1)]  # containers still to visit: (node, path, depth)
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, msgpack.ExtType):  # a namedtuple, so it looks like a container
            raise CodecError(f"{path}: extension types are not allowed")
        if depth > MAX_DEPTH:
            raise CodecError(f"{path}: nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            _check_len(path, "map", len(node), limits.max_map_len, "max_map_len")
            for key in node:
                if not isinstance(key, str):
                    raise CodecError(
                        f"{path}: map key {key!r} is {type(key).__name__}; map keys must be str"
                    )
            children = node.items()
        else:
            _check_len(path, "list", len(node), limits.max_array_len, "max_array_len")
            children = enumerate(node)
        for key, item in children:
            if isinstance(item, _CONTAINERS):
                stack.append((item, f"{path}[{key!r}]", depth + 1))
            elif problem := _scalar_problem(item, limits):
                raise CodecError(f"{path}[{key!r}]: {problem}")


def _scalar_problem(value: Any, limits: Limits) -> str | None:
    if value is None or isinstance(value, bool | float):
        return None
    if isinstance(value, int):
        in_range = -(2**63) <= value < 2**64
        return None if in_range else f"int {value} is outside msgpack's 64-bit range"
    if isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            return "str holds a lone surrogate, which is not valid UTF-8"
        return _too_long("str", size, limits.max_str_len, "max_str_len")
    if isinstance(value, bytes | bytearray):
        return _too_long("bytes", len(value), limits.max_bin_len, "max_bin_len")
    kind = type(value)
    return (
        f"cannot encode {kind.__module__}.{kind.__qualname__}; "
        "use str, int, float, bool, None, bytes, list or a dict with str keys"
    )


def _check_len(path: str, what: str, n: int, limit: int, name: str) -> None:
    if problem := _too_long(what, n, limit, name):
        raise CodecError(f"{path}: {problem}")


def _too_long(what: str, n: int, limit: int, name: str) -> str | None:
    unit = "items" if what in ("map", "list") else "bytes"
    return f"{what} of {n} {unit} exceeds Limits.{name} ({limit})" if n > limit else None


def _frame_too_big(n: int, limits: Limits) -> str:
    limit = _size(limits.max_frame_bytes)
    return f"frame of {n} bytes exceeds the limit of {limit} (Limits.max_frame_bytes)"


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n} bytes"
