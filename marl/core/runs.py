"""Run folders: everything a run produces, in one place that analysis reads later.

```
runs/<name>-<YYYYmmdd-HHMMSS>/
  config.yaml          the resolved config (every default filled in)
  metrics.jsonl        one JSON object per line, flushed as written
  transcripts.msgpack  one msgpack frame per episode (marl.core.codec)
  summary.json         the aggregated result, written atomically at the end
```

Lines and frames are appended and flushed one by one, so a run killed half way keeps
everything it wrote before; files that are replaced whole go through ``write_atomic``.
A write that fails (disk full, quota, I/O error) raises ``WriteError`` naming the file and
leaves the file as it was: a metrics line is appended whole or not at all.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from marl.core.codec import TranscriptWriter

# pseudo-filesystems: a folder there is never where a run's files belong
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


def output_dir_problem(output_dir: str | Path) -> str | None:
    """Why run folders cannot be made under ``output_dir``, or None; checked before any model
    loads, without creating anything: the nearest existing folder on the way must be a
    writable folder outside the pseudo-filesystems."""
    if "\x00" in str(output_dir):
        return "a path cannot hold a NUL character"
    try:
        return _output_dir_problem(Path(output_dir).expanduser().absolute(), output_dir)
    except (OSError, ValueError, RuntimeError) as err:
        # a name past the filesystem's limits, a link loop, an unknown ~user
        reason = getattr(err, "strerror", None) or str(err)
        shown = str(output_dir) if len(str(output_dir)) <= 80 else str(output_dir)[:77] + "..."
        return f"{shown} cannot be used: {reason}"


def _output_dir_problem(path: Path, output_dir: str | Path) -> str | None:
    resolved = path.resolve()
    for pseudo in map(Path, PSEUDO_FILESYSTEMS):
        if resolved == pseudo or pseudo in resolved.parents:
            return f"{output_dir} is under {pseudo}, which holds no files of a run"
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            return f"{existing} is a broken link"
        existing = existing.parent
    if not existing.is_dir():
        what = "a file" if existing.is_file() else "not a folder"
        return f"{existing} is {what}; run folders go in a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing} (permission denied)"
    return None


class WriteError(OSError):
    """A file of a run folder could not be written; ``filename`` names it."""

    @property
    def disk_full(self) -> bool:
        return self.errno in (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` into a ``WriteError`` that names the file."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        raise WriteError(err.errno, err.strerror, str(err.filename or path)) from err


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old file or the new one, never half."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:  # named by the file it replaces, not by the temporary one
        raise WriteError(err.errno, err.strerror, str(path)) from err


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` completely, or cut the file back to where it was."""
    with writing(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
            except BaseException:
                os.ftruncate(fd, size)  # frees space, so it works on a full disk
                raise
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class RunFolder:
    CONFIG = "config.yaml"
    METRICS = "metrics.jsonl"
    TRANSCRIPTS = "transcripts.msgpack"
    SUMMARY = "summary.json"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # called with each metrics line once it is on disk (experiment trackers)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @classmethod
    def create(cls, output_dir: str | Path, name: str) -> RunFolder:
        """A new folder ``<output_dir>/<name>-<timestamp>`` (suffixed if that exists)."""
        parent = Path(output_dir)
        parent.mkdir(parents=True, exist_ok=True)
        stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        for k in range(1000):
            path = parent / (stem if k == 0 else f"{stem}-{k}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path)
        raise FileExistsError(f"could not create a new run folder under {parent}")

    def write_config(self, resolved: dict[str, Any]) -> None:
        write_atomic(self.path / self.CONFIG, yaml.safe_dump(resolved, sort_keys=False))

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one whole line to ``metrics.jsonl`` (no buffer: the OS has it at return)."""
        append_whole(self.path / self.METRICS, (json.dumps(record, sort_keys=True) + "\n").encode())
        for listener in self.listeners:
            listener(record)

    def transcripts(self) -> TranscriptWriter:
        return TranscriptWriter(self.path / self.TRANSCRIPTS)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_atomic(self.path / self.SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return json.loads((self.path / self.SUMMARY).read_text())
