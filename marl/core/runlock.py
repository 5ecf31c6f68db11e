"""One process per run folder: ``<run>/.lock`` names the process that writes the run.

The lock is a small JSON file (PID, host, boot id, the process's start time, when it took
the lock). It appears whole: it is written to a temporary file and hard-linked into place,
and a link fails if the name exists (the ``O_EXCL`` of links), so a reader never sees half
a lock. A lock outlives a crash; it is then stale, and the next process takes it over
with a notice. Stale means, on this host: the PID is not running (or is a zombie), the PID
runs but started at another time (reused), or the lock is from an earlier boot. A lock
from another host cannot be checked and is never taken over. Checking and taking over
happen under an ``flock`` of the run folder, so two processes cannot both take over the
same stale lock. ``release`` removes the lock only if it is still this process's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

LOCK = ".lock"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class RunFolderInUse(RuntimeError):
    """Another live process holds the run folder's lock."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock; ``boot_id`` and ``pid_start`` are None where /proc is missing."""

    pid: int
    host: str
    boot_id: str | None
    pid_start: int | None  # clock ticks after boot (/proc/<pid>/stat field 22)
    started: str  # when the lock was taken, local time, for people

    @classmethod
    def this_process(cls) -> Holder:
        pid = os.getpid()
        return cls(
            pid,
            socket.gethostname(),
            boot_id(),
            process_start(pid),
            time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        )

    def why_stale(self) -> str | None:
        """Why this lock's process is certainly gone, or None if it may still run."""
        if self.host != socket.gethostname():
            return None  # its PID means nothing here
        here = boot_id()
        if self.boot_id and here and self.boot_id != here:
            return "it is from an earlier boot"
        start = process_start(self.pid)
        if start is None:
            return f"PID {self.pid} is not running"
        if self.pid_start is not None and start != self.pid_start:
            return f"PID {self.pid} is now another process"
        return None


def boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot); None if no such live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and ')'
    if fields[0] in "ZX":  # a zombie has exited; only its exit status is left
        return None
    return int(fields[19])


class RunLock:
    """``with RunLock(folder) as lock:`` holds ``folder/.lock``; ``lock.notice`` says if a
    stale lock was taken over. Raises ``RunFolderInUse`` when a live process holds it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.holder: Holder | None = None
        self.notice: str | None = None

    def acquire(self) -> None:
        me = Holder.this_process()
        with self._folder_flock():
            other, unreadable = self._read()
            if other is not None:
                why = other.why_stale()
                if why is None:
                    where = "" if other.host == me.host else f" on host {other.host}"
                    raise RunFolderInUse(
                        f"run folder {self.folder} is in use by PID {other.pid}{where} "
                        f"(started {other.started}); if that process is gone, "
                        f"delete {self.path} and try again"
                    )
                self.notice = (
                    f"took over the lock of PID {other.pid} (started {other.started}): {why}"
                )
                self.path.unlink()
            elif unreadable:
                self.notice = f"took over an unreadable lock file ({unreadable})"
                self.path.unlink()
            self._create(me)
        self.holder = me

    def release(self) -> None:
        """Remove the lock if it is still ours (nothing to do after a takeover by force)."""
        if self.holder is None:
            return
        with self._folder_flock():
            current, _ = self._read()
            if current == self.holder:
                self.path.unlink()
        self.holder = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _read(self) -> tuple[Holder | None, str | None]:
        """The holder, or (None, why the file is unreadable), or (None, None) if no lock."""
        try:
            data = json.loads(self.path.read_bytes())
            return Holder(**data), None
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError, TypeError) as err:
            return None, str(err)

    def _create(self, me: Holder) -> None:
        tmp = self.folder / f"{LOCK}.{me.pid}.tmp"
        try:
            tmp.write_text(json.dumps(asdict(me)) + "\n")
            os.link(tmp, self.path)  # FileExistsError if anyone holds it
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _folder_flock(self) -> Iterator[None]:
        fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock
