"""Calling model-written Python in a separate, contained process, and getting back plain data.

``Sandbox.execute(program, entry_point, inputs)`` runs ``program`` in a fresh interpreter,
calls its function ``entry_point`` on each input (positional and keyword arguments, plain
data) and returns an ``Execution``: a ``status`` and, per call, the value it returned,
decoded by the caller into builtin objects (``scenarios.plain_data``), or why there is
none. ``Sandbox.execute_many`` drives many at once from a thread pool. Nothing a program
does can crash the caller: timeouts, crashes and limit hits come back as a status with a
short ``detail``. Scoring is not done here: ``scenarios.grading`` judges the returned
values against a test suite, in the caller's process.

| status         | meaning                                                        |
| -------------- | -------------------------------------------------------------- |
| `done`         | the program ran and every call returned or raised              |
| `syntax_error` | the program does not compile                                   |
| `timeout`      | wall clock or CPU time limit                                   |
| `memory`       | the memory limit (``MemoryError``)                             |
| `output_limit` | wrote ``file_size_mb`` or more to stdout/stderr or to one file |
| `crash`        | the process died without a readable result (signal, ``os._exit``, ...) |

### How one run is contained

The isolation is the kernel's. Each run gets one of two, chosen once per process and
recorded in every ``Execution.isolation``:

* **`bwrap`** (bubblewrap; Debian package ``bubblewrap``, installed by ``make install``):
  new PID, IPC, network, UTS and cgroup namespaces, so the program sees only its own
  processes, has no network at all (not even the caller's ``127.0.0.1``) and no System V
  IPC or abstract sockets of the host; ``--die-with-parent``, so the run dies with its
  caller even after ``kill -9``. Its file system is a new root holding, read-only, only the
  system folders (``/usr``, ``/bin``, ``/lib*``, ``/sbin``, ``/etc``) and the interpreter's
  prefix: the project, home folders, the host's ``/tmp`` and ``/run`` are not there.
  Writable are three private tmpfs, each at most ``min(file_size_mb, memory_mb)`` MiB:
  ``/work`` (its working folder, ``HOME`` and ``TMPDIR``), ``/tmp`` and ``/dev/shm``. They
  vanish with the run, as do its processes (the PID namespace ends with its first process)
  and its IPC objects.
* **`rlimits-only`**: the fallback where bwrap cannot start (not installed; not root and
  no user namespaces). A warning says so, once per process. The program then shares the
  host's namespaces: it sees the host's files its uid may read and may connect to the
  network; only the limits, the uid and the cleanup below contain it.

In both:

* **Process.** ``python -s -S -P -B -c <scenarios/sandbox_runner.py>`` (the base
  interpreter: only the standard library is importable) in a new session, stdin from
  ``/dev/null``, stdout and stderr into one file, a fresh environment (``PATH``, ``HOME``
  and ``TMPDIR`` at the working folder, ``PYTHONHASHSEED=0`` so set order, and so results,
  are reproducible). The job and the result travel through two memfds, never a path.
* **Limits** (``resource`` rlimits, set by the runner before it runs anything):
  ``RLIMIT_AS`` (``memory_mb``), ``RLIMIT_CPU`` (``ceil(timeout_s) + 1`` seconds),
  ``RLIMIT_FSIZE`` (``file_size_mb``: also caps the captured output), ``RLIMIT_NOFILE``
  (``open_files``), ``RLIMIT_NPROC`` (``processes``), ``RLIMIT_CORE = 0``. The wall clock
  (``timeout_s``) is enforced by the caller, which kills the whole process group, and by
  the runner's own ``ITIMER_REAL`` (SIGALRM ends it), so a program stops on time even
  when a crowd of runs leaves the caller little CPU to kill it with.
* **User.** Linux does not enforce ``RLIMIT_NPROC`` for root, so when the caller is root
  the runner drops to an unprivileged uid/gid of its own, leased for the run from
  ``SANDBOX_UIDS`` (a lock file per uid in ``<temp>/marl-uid-locks/`` keeps concurrent
  runs, also from other processes, on distinct uids). A fork bomb then stops at
  ``processes`` tasks, however it forks (``_imp.create_builtin`` brings back ``posix.fork``,
  the kernel still counts).
* **Guard** (after the drop): ``os.system``, ``os.fork``, ``os.kill``, ``subprocess``,
  ``socket``, ``ctypes``, ... removed, writes outside the working folder refused with
  ``PermissionError``. It gives careless code a readable error; it is not the boundary
  (popping ``sys.modules`` brings those modules back).
* **Folder.** Each run gets ``<parent>/marl-sandbox-XXXX/`` (root only, mode 0711), locked
  with ``flock`` while the run lives, holding the output file and, in ``rlimits-only``, the
  working folder ``work/`` (owned by the run's uid, 0700). Removed after the run.
* **Cleanup.** After every run, finished or not: ``SIGKILL`` to the process group; as root
  also to every process of the run's uid (through pidfds, until none is left); in
  ``rlimits-only`` removal of what that uid left at the top of ``/tmp``, ``/var/tmp``,
  ``/dev/shm`` and the temp folder.
* **Leftovers of a killed caller** are swept whenever a ``Sandbox`` is made: run folders
  in its parent folder whose lock no live run holds, and for every sandbox uid no live
  run leases, its processes, its files at the top of the world-writable folders and its
  lock file.

### Deliberate simplifications

* A timeout scores 0, not the calls that returned before it: a slow program is a wrong
  program.
* In ``rlimits-only`` a program may open network connections, read the host's readable
  files (the dataset with its reference solutions among them, when it is readable by the
  run's uid) and leave files in nested world-writable folders (``/run/lock``,
  ``/tmp/x/``) or System V IPC objects; only the top of the world-writable folders is
  swept. ``/dev/shm`` there is the host's and is bounded by nothing but its size.
* Without root there is no uid to drop to: ``RLIMIT_NPROC`` then counts every process of
  the calling user (under bwrap, of that user in its user namespace) and there is no sweep
  by uid.
* Total disk use: bounded by the tmpfs sizes under bwrap; in ``rlimits-only`` per file
  and by the clock only.
* Linux only (``/proc``, pidfds, memfds).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import os
import pwd
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgpack
from pydantic import ConfigDict, Field

from marl.core.codec import CodecError, Limits, unpack
from marl.core.config import StrictModel
from scenarios.plain_data import DEFAULT_VALUE_LIMITS, PlainDataError, decode, encode

Status = Literal["done", "syntax_error", "timeout", "memory", "output_limit", "crash"]
Isolation = Literal["bwrap", "rlimits-only"]

# Uids leased to sandboxed runs when the caller is root; none may have a passwd entry.
SANDBOX_UIDS = range(61000, 62000)
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
BOX_PREFIX = "marl-sandbox-"
WORK_FOLDER = "/work"  # the working folder inside bwrap
MAX_DETAIL_CHARS = 300
MAX_RESULT_BYTES = 8 << 20  # every returned value of a run together
MAX_CALLS = 2000
MiB = 1 << 20
_KILL_SWEEPS = 100
RUNNER = (Path(__file__).parent / "sandbox_runner.py").read_text()


class SandboxLimits(StrictModel):
    """What one sandboxed run may use."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    timeout_s: float = Field(
        5.0, gt=0.0, le=600.0, description="Wall-clock seconds for the whole run (tests included)."
    )
    memory_mb: int = Field(
        512, ge=64, le=65536, description="Address-space limit of the process (RLIMIT_AS), MiB."
    )
    file_size_mb: int = Field(
        16, ge=1, le=4096, description="Largest file the program may write, its output included."
    )
    open_files: int = Field(
        64, ge=16, le=4096, description="Open file descriptors (RLIMIT_NOFILE)."
    )
    processes: int = Field(
        4,
        ge=1,
        le=1024,
        description="Processes and threads of the run's user (RLIMIT_NPROC); "
        "the interpreter itself is one.",
    )
    output_bytes: int = Field(
        4096, ge=0, le=1 << 20, description="Bytes of stdout/stderr kept in the result."
    )


@dataclass(frozen=True, slots=True)
class Returned:
    """What one call gave back: a plain value decoded by the caller, or why there is none."""

    value: Any = None
    error: str = ""  # "" when the call returned plain data; else "ValueError: ..." or why not


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a program: how it ended and, when it is ``done``, one ``Returned`` a call."""

    status: Status
    returned: tuple[Returned, ...]  # empty unless done
    detail: str  # short reason: the program's error, the limit hit, the signal
    seconds: float  # wall clock of the run, startup and cleanup included
    output: str  # the head of stdout and stderr, at most ``output_bytes``
    isolation: Isolation


Call = tuple[Sequence[Any], Mapping[str, Any]]  # positional and keyword arguments


# ---------------------------------------------------------------- isolation


@functools.lru_cache(maxsize=8)
def _bwrap_or_problem(path: str, as_root: bool) -> tuple[str | None, str]:
    """(the bwrap to use, "") or (None, why bwrap cannot start), for this ``PATH``."""
    bwrap = shutil.which("bwrap", path=path)
    if bwrap is None:
        return None, "bwrap is not installed (Debian: apt-get install bubblewrap)"
    probe = [*_bwrap_argv(bwrap, SandboxLimits(), as_root), _interpreter(), "-S", "-c", "pass"]
    try:
        done = subprocess.run(probe, capture_output=True, timeout=60, env={"PATH": "/usr/bin"})
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"bwrap did not start: {error}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        return None, f"bwrap cannot start here ({lines[-1]})"
    return bwrap, ""


_WARNED: set[str] = set()


def _choose_isolation(as_root: bool) -> tuple[Isolation, str | None]:
    """bwrap when it starts here; otherwise rlimits-only, said once per process and reason."""
    bwrap, problem = _bwrap_or_problem(os.environ.get("PATH", os.defpath), as_root)
    if bwrap is not None:
        return "bwrap", bwrap
    if problem not in _WARNED:
        _WARNED.add(problem)
        warnings.warn(
            f"sandbox: {problem}. Model-written programs now run WITHOUT namespaces "
            "(isolation 'rlimits-only': host network and files readable by the run's uid "
            "are reachable). Install bubblewrap ('make install' does) to contain them.",
            RuntimeWarning,
            stacklevel=3,
        )
    return "rlimits-only", None


def _interpreter() -> str:
    """The base interpreter itself (not the venv's link), so it runs where the venv is absent."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _bwrap_argv(bwrap: str, limits: SandboxLimits, as_root: bool) -> list[str]:
    """bwrap's options for one run, up to the command."""
    argv = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if as_root:  # the runner drops to the leased uid itself; these two caps let it
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user"]
    bound = []
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            argv += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            argv += ["--ro-bind", folder, folder]
            bound.append(folder)
    prefix = os.path.realpath(sys.base_prefix)
    if not any(prefix == f or prefix.startswith(f + "/") for f in bound):
        ancestors = list(reversed(Path(prefix).parents))[1:]  # without "/"
        for ancestor in ancestors:  # bwrap would make them 0700: the run's uid must pass
            argv += ["--perms", "0755", "--dir", str(ancestor)]
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    size = str(min(limits.file_size_mb, limits.memory_mb) * MiB)
    for folder, perms in (("/tmp", "1777"), ("/dev/shm", "1777"), (WORK_FOLDER, "0777")):
        argv += ["--size", size, "--perms", perms, "--tmpfs", folder]
    argv += ["--chdir", WORK_FOLDER, "--remount-ro", "/", "--"]
    return argv


# ---------------------------------------------------------------- uids (caller side)


class _UidLeases:
    """Hands out uids from ``SANDBOX_UIDS``, each to one run at a time, across processes.

    A uid is leased by holding ``flock`` on its lock file, and only while that file is still
    the one at its path (releasing unlinks it first, so no lock file outlives its run and a
    lock taken on an unlinked file is not a lease).
    """

    def __init__(self, uids: range):
        self.uids = uids
        self._lock = threading.Lock()
        self._next = 0
        self._held: set[int] = set()
        self.folder = Path(tempfile.gettempdir()) / "marl-uid-locks"

    def acquire(self) -> tuple[int, int]:
        """A free uid and the descriptor holding its lock (release with ``release``)."""
        with self._lock:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            for k in range(len(self.uids)):
                uid = self.uids[(self._next + k) % len(self.uids)]
                if uid in self._held or _has_passwd_entry(uid):
                    continue
                fd = self._try_lock(uid)
                if fd is None:
                    continue
                # round robin: a uid comes back only after the others, long after its
                # killed processes were reaped
                self._next = (self._next + k + 1) % len(self.uids)
                self._held.add(uid)
                return uid, fd
        raise RuntimeError(
            f"all {len(self.uids)} sandbox uids are in use; run fewer sandboxes at once"
        )

    def release(self, uid: int, fd: int) -> None:
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.folder / str(uid))
            os.close(fd)  # closing drops the flock
            self._held.discard(uid)

    def sweep(self) -> int:
        """Clean up after uids whose leaseholder died: their processes, files and lock files.

        Returns how many uids needed it. A uid leased by a live run is left alone.
        """
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            names = []
        candidates = {int(n) for n in names if n.isdigit() and int(n) in self.uids}
        candidates |= {uid for uid, _ in _sandbox_processes()}
        swept = 0
        for uid in sorted(candidates):
            with self._lock:
                if uid in self._held:
                    continue
                self.folder.mkdir(mode=0o700, exist_ok=True)
                fd = self._try_lock(uid)
                if fd is None:
                    continue
                self._held.add(uid)
            try:
                _kill_processes_of(uid)
                _remove_files_of(uid)
                swept += 1
            finally:
                self.release(uid, fd)
        return swept

    def _try_lock(self, uid: int) -> int | None:
        path = self.folder / str(uid)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except (BlockingIOError, FileNotFoundError):
            pass  # held by a live run, or released (and unlinked) under us
        os.close(fd)
        return None


def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


_LEASES = _UidLeases(SANDBOX_UIDS)


def _process_uid_and_state(pid: int) -> tuple[int, str] | None:
    """(real uid, state letter) of a process from ``/proc/<pid>/status``; None if gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read(4096).decode("ascii", "replace")
    except OSError:
        return None
    uid = state = None
    for line in status.splitlines():
        if line.startswith("State:"):
            state = line.split()[1]
        elif line.startswith("Uid:"):
            uid = int(line.split()[1])
    return None if uid is None or state is None else (uid, state)


def _live_processes() -> list[tuple[int, int]]:
    """(uid, pid) of every live (not zombie) process."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            info = _process_uid_and_state(int(entry.name))
            if info is not None and info[1] not in "ZX":
                found.append((info[0], int(entry.name)))
    return found


def _sandbox_processes() -> list[tuple[int, int]]:
    return [(uid, pid) for uid, pid in _live_processes() if uid in SANDBOX_UIDS]


def processes_of(uid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose real uid is ``uid``."""
    return [pid for owner, pid in _live_processes() if owner == uid]


def _kill_processes_of(uid: int) -> int:
    """SIGKILL every process of ``uid`` until none is left; returns how many were killed."""
    killed = 0
    for _ in range(_KILL_SWEEPS):
        pids = processes_of(uid)
        if not pids:
            return killed
        for pid in pids:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue  # already gone
            try:
                found = _process_uid_and_state(pid)  # the pidfd pins the process we check
                if found is not None and found[0] == uid:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    killed += 1
            except ProcessLookupError:
                pass
            finally:
                os.close(pidfd)
    raise RuntimeError(f"sandbox uid {uid} still has processes after {_KILL_SWEEPS} sweeps")


def _remove_files_of(uid: int) -> int:
    """Remove what ``uid`` left at the top of the world-writable folders; returns the count."""
    removed = 0
    for folder in dict.fromkeys((*WORLD_WRITABLE, tempfile.gettempdir())):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid != uid:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            removed += 1
    return removed


# ---------------------------------------------------------------- run folders


def _open_box(parent: Path) -> tuple[Path, int]:
    """A new run folder and the descriptor holding its lock (it marks the folder as live)."""
    while True:
        box = Path(tempfile.mkdtemp(prefix=BOX_PREFIX, dir=parent))
        fd = os.open(box, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return box, fd
        os.close(fd)  # a sweep took it for a leftover between mkdtemp and flock


def _sweep_boxes(parent: Path) -> int:
    """Remove run folders in ``parent`` that no live run holds (their caller was killed)."""
    removed = 0
    for entry in os.scandir(parent):
        if not entry.name.startswith(BOX_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live run's
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


# ---------------------------------------------------------------- the sandbox (caller side)


def _read_head(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        return b""


def shorten(text: str) -> str:
    """``text`` on one line, at most ``MAX_DETAIL_CHARS`` long (a result's ``detail``)."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


class Sandbox:
    """Runs programs and calls their functions, each run in its own contained process.

    ``parent`` is where the per-run folders are made (default: the temp folder). Making a
    Sandbox sweeps what killed callers left behind (see the module docstring) and picks the
    isolation (``isolation``: "bwrap", or "rlimits-only" with a warning).
    """

    def __init__(self, limits: SandboxLimits | None = None, parent: str | Path | None = None):
        self.limits = limits or SandboxLimits()
        self.parent = Path(parent if parent is not None else tempfile.gettempdir())
        if not self.parent.is_dir():
            raise ValueError(f"sandbox parent folder {self.parent} does not exist")
        self.as_root = os.geteuid() == 0
        self.isolation, self._bwrap = _choose_isolation(self.as_root)
        _sweep_boxes(self.parent)
        if self.as_root:
            _LEASES.sweep()

    def execute(self, program: str, entry_point: str, inputs: Sequence[Call]) -> Execution:
        """Run ``program``, then call ``entry_point(*args, **kwargs)`` for each input."""
        start = time.perf_counter()
        if len(inputs) > MAX_CALLS:
            raise ValueError(f"{len(inputs)} calls in one run; at most {MAX_CALLS}")
        calls = [encode((tuple(args), dict(kwargs))) for args, kwargs in inputs]
        lease = _LEASES.acquire() if self.as_root else None
        uid = lease[0] if lease else None
        box, box_fd = _open_box(self.parent)
        try:
            status, returned, detail, output = self._execute(program, entry_point, calls, box, uid)
        finally:
            if uid is not None:
                _kill_processes_of(uid)
                if self.isolation == "rlimits-only":
                    _remove_files_of(uid)
            shutil.rmtree(box)
            os.close(box_fd)
            if lease is not None:
                _LEASES.release(*lease)
        seconds = time.perf_counter() - start
        return Execution(status, returned, shorten(detail), seconds, output, self.isolation)

    def execute_many(
        self, jobs: Sequence[tuple[str, str, Sequence[Call]]], workers: int | None = None
    ) -> list[Execution]:
        """``execute`` for every ``(program, entry_point, inputs)``, ``workers`` at a time."""
        workers = workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs) or 1))) as pool:
            return list(pool.map(lambda job: self.execute(*job), jobs))

    # ------------------------------------------------------------ one run

    def _execute(
        self, program: str, entry_point: str, calls: list[bytes], box: Path, uid: int | None
    ) -> tuple[Status, tuple[Returned, ...], str, str]:
        limits = self.limits
        box.chmod(0o711)  # the run's user may pass through to work/, not list or read the rest
        fsize = limits.file_size_mb * MiB
        result_bytes = max(0, min(MAX_RESULT_BYTES, fsize - 65536 - 256 * len(calls)))
        job = [
            program,
            entry_point,
            uid,
            [
                limits.timeout_s,
                math.ceil(limits.timeout_s) + 1,
                limits.memory_mb,
                limits.file_size_mb,
                limits.open_files,
                limits.processes,
                result_bytes,
            ],
            calls,
            [
                DEFAULT_VALUE_LIMITS.max_bytes,
                DEFAULT_VALUE_LIMITS.max_items,
                DEFAULT_VALUE_LIMITS.max_depth,
                DEFAULT_VALUE_LIMITS.max_int_digits,
            ],
        ]
        job_fd = os.memfd_create("marl-job", os.MFD_CLOEXEC)
        result_fd = os.memfd_create("marl-result", os.MFD_CLOEXEC)
        try:
            os.write(job_fd, msgpack.packb(job, use_bin_type=True))
            runner = [_interpreter(), "-s", "-S", "-P", "-B", "-c", RUNNER, str(box)]
            runner += [str(job_fd), str(result_fd)]
            if self.isolation == "bwrap":
                argv = [*_bwrap_argv(self._bwrap, limits, self.as_root), *runner]
                cwd, home = box, WORK_FOLDER
            else:
                work = box / "work"
                work.mkdir(mode=0o700)
                if uid is not None:
                    os.chown(work, uid, uid)
                argv, cwd, home = runner, work, str(work)
            env = {
                "PATH": "/usr/bin:/bin",
                "HOME": home,
                "TMPDIR": home,
                "LANG": "C.UTF-8",
                "PYTHONHASHSEED": "0",
            }
            output_path = box / "output.txt"
            with open(output_path, "wb") as output:
                process = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(job_fd, result_fd),
                )
            timed_out = not _wait(process, limits.timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the runner leads its own process group
            process.wait()
            size = os.fstat(result_fd).st_size
            raw = os.pread(result_fd, MAX_RESULT_BYTES + (1 << 20), 0) if size else b""
        finally:
            os.close(job_fd)
            os.close(result_fd)

        output_head = _read_head(output_path, limits.output_bytes).decode("utf-8", "replace")
        wall = f"wall clock limit of {limits.timeout_s:g}s"
        if timed_out:
            return "timeout", (), wall, output_head
        if output_path.stat().st_size >= limits.file_size_mb * MiB:
            return "output_limit", (), "output reached the file size limit", output_head
        parsed = _parse_result(raw, len(calls))
        if parsed is not None:
            return (*parsed, output_head)
        code = process.returncode
        if self.isolation == "bwrap" and code > 128:
            code = -(code - 128)  # bwrap exits with 128 + the signal that ended the runner
        if code < 0 and -code == signal.SIGALRM:
            return "timeout", (), wall, output_head
        if code < 0 and -code == signal.SIGXCPU:
            return "timeout", (), "CPU time limit", output_head
        if code < 0 and -code == signal.SIGXFSZ:
            return "output_limit", (), "file size limit", output_head
        if code < 0 and -code in signal.valid_signals():
            reason = f"killed by {signal.Signals(-code).name}"
        elif raw:
            reason = f"exited with code {code} and a malformed result"
        else:
            reason = f"exited with code {code} without a result"
        last_line = output_head.strip().splitlines()[-1:] if output_head.strip() else []
        return "crash", (), reason + (f": {last_line[0]}" if last_line else ""), output_head


def _wait(process: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``process`` to exit within ``timeout`` seconds; False if it did not."""
    pidfd = os.pidfd_open(process.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(ready)


_RESULT_LIMITS = Limits(
    max_frame_bytes=MAX_RESULT_BYTES + (1 << 20),
    max_str_len=64 * 1024,
    max_bin_len=DEFAULT_VALUE_LIMITS.max_bytes,
    max_array_len=MAX_CALLS,
    max_map_len=1,
)
_RUN_STATUSES = ("done", "syntax_error", "memory", "output_limit")


def _parse_result(raw: bytes, calls: int) -> tuple[Status, tuple[Returned, ...], str] | None:
    """The runner's result, or None when it is missing or malformed.

    Everything in it is the program's word: a status other than ``done`` only lowers its
    own score, and the values are decoded as plain data under limits, never trusted.
    """
    try:
        data = unpack(raw, _RESULT_LIMITS)
    except CodecError:
        return None
    if type(data) is not list or len(data) != 3:
        return None
    status, detail, outcomes = data
    if status not in _RUN_STATUSES or type(detail) is not str or type(outcomes) is not list:
        return None
    if status != "done":
        return status, (), detail
    if len(outcomes) != calls:
        return None
    returned = []
    for outcome in outcomes:
        if type(outcome) is not list or len(outcome) != 2 or type(outcome[0]) is not int:
            return None
        kind, payload = outcome
        if kind == 0 and type(payload) is bytes:
            try:
                returned.append(Returned(decode(payload)))
            except PlainDataError as error:
                returned.append(Returned(error=f"returned bytes that are not plain data: {error}"))
        elif kind in (1, 2) and type(payload) is str:
            returned.append(Returned(error=payload[:MAX_DETAIL_CHARS] or "error"))
        else:
            return None
    return "done", tuple(returned), detail
