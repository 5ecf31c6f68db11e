"""Plain data across the sandbox boundary: the values a sandboxed call takes and returns.

A sandboxed program is called on arguments that the caller encodes here, and sends back
what it returned in the same format; the caller decodes it here, under limits, into fresh
objects of builtin types only. Nothing of the program's own objects (no ``__eq__``, no
``__bool__``, no pickle) ever reaches the caller: a value is bytes, then builtins.

The format is msgpack of a tagged tree (``scenarios/sandbox_runner.py`` holds the
sandbox's side, a standard-library encoder and decoder of exactly this format):

| Python value                         | msgpack                                   |
| ------------------------------------ | ----------------------------------------- |
| ``None``, ``bool``, ``float``        | nil, bool, float 64                       |
| ``int`` in [-2**63, 2**64)           | int                                       |
| any other ``int``                    | array ``[5, "<decimal digits>"]``         |
| ``str`` (valid UTF-8), ``bytes``     | str, bin                                  |
| ``list``/``tuple``/``set``/``frozenset`` | array ``[0/1/3/4, item, ...]``        |
| ``dict``                             | array ``[2, key, value, key, value, ...]`` |

Every container is an array whose first item is its tag, so a tuple comes back a tuple and
a list a list: ``(1, 2) == [1, 2]`` is False in Python, and a comparison made after the
round trip gives what it would have given in the program. msgpack maps and extension types
are not part of the format and are refused. Types are exact: a subclass of ``int`` or
``str`` (which could carry its own ``__eq__``) is not plain data.

Limits (``ValueLimits``): encoded size, items per container, nesting depth, digits of a big
int. A value over a limit, of another type, or holding a dict key or set item that is not
hashable is a ``PlainDataError`` naming what and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from marl.core.codec import CodecError, Limits, unpack

TAG_LIST, TAG_TUPLE, TAG_DICT, TAG_SET, TAG_FROZENSET, TAG_BIG_INT = range(6)
INT_RANGE = (-(2**63), 2**64)  # what msgpack holds as an int
_SEQUENCE_TAGS = {list: TAG_LIST, tuple: TAG_TUPLE, set: TAG_SET, frozenset: TAG_FROZENSET}
_SCALARS = (type(None), bool, int, float, str, bytes)


class PlainDataError(ValueError):
    """A value that is not plain data, or bytes that do not decode to one."""


@dataclass(frozen=True, slots=True)
class ValueLimits:
    """Caps on one encoded value; the sandbox's encoder enforces the same ones."""

    max_bytes: int = 1 << 20  # encoded size of one value
    max_items: int = 100_000  # items in one container (a dict's keys and values count)
    max_depth: int = 64  # containers inside containers
    max_int_digits: int = 4300  # decimal digits of an int outside msgpack's range

    def codec_limits(self) -> Limits:
        """The same bounds as msgpack decoder limits (maps are not part of the format)."""
        return Limits(
            max_frame_bytes=self.max_bytes,
            max_str_len=self.max_bytes,
            max_bin_len=self.max_bytes,
            max_array_len=self.max_items + 1,  # the tag
            max_map_len=1,
        )


DEFAULT_VALUE_LIMITS = ValueLimits()


def encode(value: Any, limits: ValueLimits = DEFAULT_VALUE_LIMITS) -> bytes:
    """``value`` as bytes of the tagged format; ``PlainDataError`` if it is not plain data."""
    data = msgpack.packb(_tagged(value, limits, 0, "value"), use_bin_type=True)
    if len(data) > limits.max_bytes:
        raise PlainDataError(f"value: {len(data)} bytes encoded, over {limits.max_bytes}")
    return data


def decode(data: bytes, limits: ValueLimits = DEFAULT_VALUE_LIMITS) -> Any:
    """Fresh builtin objects from bytes of the tagged format; ``PlainDataError`` otherwise."""
    if type(data) is not bytes:
        raise PlainDataError(f"expected bytes, got {type(data).__name__}")
    try:
        tree = unpack(data, limits.codec_limits())
    except CodecError as error:
        raise PlainDataError(f"value: {error}") from None
    return _untagged(tree, limits, 0, "value")


def _tagged(value: Any, limits: ValueLimits, depth: int, where: str) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        if kind is int and not INT_RANGE[0] <= value < INT_RANGE[1]:
            digits = str(value)  # ValueError past Python's own limit of 4300 digits
            if len(digits.lstrip("-")) > limits.max_int_digits:
                raise PlainDataError(f"{where}: int of {len(digits)} digits")
            return [TAG_BIG_INT, digits]
        if kind is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise PlainDataError(f"{where}: str with a lone surrogate") from None
        return value
    if depth >= limits.max_depth:
        raise PlainDataError(f"{where}: nested deeper than {limits.max_depth}")
    if kind is dict:
        items: list[Any] = [TAG_DICT]
        for key, item in value.items():
            items.append(_tagged(key, limits, depth + 1, f"{where} key"))
            items.append(_tagged(item, limits, depth + 1, f"{where}[{key!r}]"))
    elif kind in _SEQUENCE_TAGS:
        items = [_SEQUENCE_TAGS[kind]]
        items += [_tagged(v, limits, depth + 1, f"{where}[{i}]") for i, v in enumerate(value)]
    else:
        raise PlainDataError(f"{where}: {kind.__module__}.{kind.__qualname__} is not plain data")
    if len(items) - 1 > limits.max_items:
        raise PlainDataError(f"{where}: {len(items) - 1} items, over {limits.max_items}")
    return items


def _untagged(tree: Any, limits: ValueLimits, depth: int, where: str) -> Any:
    kind = type(tree)
    if kind is dict:
        raise PlainDataError(f"{where}: msgpack maps are not part of the format")
    if kind is not list:
        return tree  # nil, bool, int, float, str, bin: msgpack built them
    if not tree or type(tree[0]) is not int:
        raise PlainDataError(f"{where}: an array must start with its tag")
    tag, items = tree[0], tree[1:]
    if tag == TAG_BIG_INT:
        if len(items) != 1 or type(items[0]) is not str:
            raise PlainDataError(f"{where}: a big int is [5, digits]")
        digits = items[0]
        if len(digits.lstrip("-")) > limits.max_int_digits or not digits.lstrip("-").isdigit():
            raise PlainDataError(f"{where}: not an int of at most {limits.max_int_digits} digits")
        number = int(digits)
        if INT_RANGE[0] <= number < INT_RANGE[1]:
            raise PlainDataError(f"{where}: {number} fits msgpack's int and must be sent as one")
        return number
    if depth >= limits.max_depth:
        raise PlainDataError(f"{where}: nested deeper than {limits.max_depth}")
    values = [_untagged(v, limits, depth + 1, f"{where}[{i}]") for i, v in enumerate(items)]
    try:
        if tag == TAG_LIST:
            return values
        if tag == TAG_TUPLE:
            return tuple(values)
        if tag == TAG_SET:
            return set(values)
        if tag == TAG_FROZENSET:
            return frozenset(values)
        if tag == TAG_DICT:
            if len(values) % 2:
                raise PlainDataError(f"{where}: a dict needs a value for every key")
            return dict(zip(values[::2], values[1::2], strict=True))
    except TypeError as error:  # an unhashable key or set item (a list, a dict)
        raise PlainDataError(f"{where}: {error}") from None
    raise PlainDataError(f"{where}: unknown tag {tag}")
