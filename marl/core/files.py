"""Reading a file someone else wrote: regular files only, bounded, with one clear error.

Every file marl reads from a user or from a run folder (configs, graph files, metrics
lines, summaries, transcripts) comes through here, so that a path to a FIFO does not hang,
a link to ``/dev/zero`` does not read until memory runs out, and a folder where a file
should be is a sentence, not a traceback. ``InputFileError`` names the file and what is
wrong with it; callers add what to do.

Opening uses ``O_NONBLOCK`` (a FIFO with no writer opens at once and is then refused by
its type) and checks the type on the open descriptor, so a file swapped after a check is
still caught.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

MIB = 1024 * 1024


class InputFileError(ValueError):
    """A file that cannot be read as the regular file of bounded size it should be:
    ``str()`` is "<path> <reason>", e.g. "x.yaml is a folder, not a regular file"."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{shown(path)} {reason}")


def shown(path: str | os.PathLike[str], chars: int = 120) -> str:
    """``path`` for a message: at most ``chars`` characters (a long one ends in ...)."""
    text = str(path)
    return text if len(text) <= chars else text[: chars - 3] + "..."


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n:,} bytes"


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file (links followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputFileError(path, "does not exist") from None
    except OSError as err:
        raise InputFileError(path, f"cannot be opened: {err.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputFileError(path, f"is {_kind(mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them."""
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        if size > max_bytes:
            raise InputFileError(path, f"is {_size(size)}; at most {_size(max_bytes)} is read")
        data = file.read(max_bytes + 1)  # a file growing while read is cut at the bound
    if len(data) > max_bytes:
        raise InputFileError(path, f"grew past {_size(max_bytes)} while being read")
    return data


def read_text(path: str | os.PathLike[str], max_bytes: int) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``max_bytes``)."""
    data = read_bytes(path, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(
            path, f"is not UTF-8 text: byte {data[err.start]:#04x} at offset {err.start}"
        ) from None


def is_regular(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular file (links followed), without opening it."""
    try:
        return stat.S_ISREG(Path(path).stat().st_mode)
    except OSError:
        return False
