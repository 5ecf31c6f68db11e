"""The sandbox: right scores for right and wrong code, and hostile code contained by the kernel.

Every test runs its sandboxes in a fresh parent folder; the ``sandbox`` fixture then checks
that the run left nothing behind: no per-run folder and no live process of a sandbox uid.
Tests marked ``bwrap`` need bubblewrap (``make install`` installs it); where it is installed
they fail, not skip, if it cannot start, so a CI machine cannot quietly lose its isolation.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import scenarios.sandbox as sandbox_module
from scenarios import sandbox_runner
from scenarios.grading import Check, grade, grade_many, suite_from_check
from scenarios.plain_data import PlainDataError, ValueLimits, decode, encode
from scenarios.sandbox import SANDBOX_UIDS, Sandbox, SandboxLimits

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0
BWRAP_INSTALLED = shutil.which("bwrap") is not None
root_only = pytest.mark.skipif(not AS_ROOT, reason="the uid drop and sweeps need root")
bwrap = pytest.mark.skipif(not BWRAP_INSTALLED, reason="bubblewrap is not installed")

CHECK = (
    "METADATA = {}\n\n"
    "def check(candidate):\n"
    "    assert candidate(1) == 2\n"
    "    assert candidate(2) == 3\n"
    "    assert True, 'not a test'\n"
    "    for x in range(3):\n"
    "        assert candidate(x) == x + 1\n"
)
RIGHT = "def inc(x):\n    return x + 1\n"
# Reaches ctypes although the guard removed it: the guard is not the boundary.
CTYPES = (
    "import sys\n"
    "sys.modules.pop('ctypes'); sys.modules.pop('_ctypes')\n"
    "import ctypes\n"
    "libc = ctypes.CDLL(None)\n"
)
REIMPORT = (  # every module the guard removed comes back this way
    "import sys\n"
    "for name in ('socket', '_socket', 'subprocess', '_posixsubprocess', 'signal', '_signal',"
    " 'select'):\n"
    "    sys.modules.pop(name, None)\n"
    "import socket, subprocess\n"
)


def live_sandbox_processes() -> list[tuple[int, int]]:
    """(pid, uid) of every live process whose real uid is a sandbox uid."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))
        state = re.search(r"^State:\s+(\S)", status, re.MULTILINE).group(1)
        if uid in SANDBOX_UIDS and state not in "ZX":
            found.append((int(entry.name), uid))
    return found


@pytest.fixture
def parent():
    """A folder any user may pass through (like /tmp), holding the per-run folders."""
    folder = Path(tempfile.mkdtemp(prefix="marl-test-sandbox-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def outside():
    """A folder outside every sandbox that any user may pass through."""
    folder = Path(tempfile.mkdtemp(prefix="marl-test-outside-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture
def sandbox(parent):
    box = Sandbox(SandboxLimits(timeout_s=20), parent=parent)  # generous: 2 busy cores
    yield box
    assert list(parent.iterdir()) == [], "a run left its folder behind"
    if AS_ROOT:
        assert live_sandbox_processes() == [], "a run left a process behind"


@pytest.fixture(scope="module")
def suite():
    """The cases of CHECK, recorded once."""
    return suite_from_check(Sandbox(SandboxLimits(timeout_s=20)), CHECK, "inc")


# ---------------------------------------------------------------- scoring


def test_counts_each_test_and_a_failing_one_does_not_stop_the_rest(sandbox, suite):
    assert suite.total == 3  # two asserts and the loop; 'assert True' does not count
    assert len(suite.cases) == 5  # the loop is one test of three calls
    result = grade(sandbox, "def inc(x):\n    return 2 if x == 1 else 0\n", suite)
    assert (result.status, result.passed, result.total) == ("failed", 1, 3)
    assert result.fraction == pytest.approx(1 / 3)
    assert result.detail == "test 2: AssertionError in assert candidate(2) == 3 (returned 0)"
    right = grade(sandbox, RIGHT, suite)
    assert (right.status, right.passed, right.fraction, right.detail) == ("ok", 3, 1.0, "")


@pytest.mark.parametrize(
    ("program", "status", "detail"),
    [
        ("def inc(x) return x", "syntax_error", "line 1: SyntaxError"),
        ("def inc(x):\n  return x\n return 1", "syntax_error", "IndentationError"),
        ("\x00", "syntax_error", ""),
        ("def other(x):\n    return x + 1\n", "failed", "the entry point 'inc' is not defined"),
        ("1 / 0\n" + RIGHT, "failed", "the program raised ZeroDivisionError"),
        ("import sys\nsys.exit(0)", "failed", "the program raised SystemExit"),
        ("import os\nos._exit(3)", "crash", "exited with code 3 without a result"),
        ("import numpy", "failed", "ModuleNotFoundError"),  # the standard library only
        ("exit()", "failed", "TypeError"),
        ("def inc(x):\n    return iter([x + 1])\n", "failed", "list_iterator, not plain data"),
        ("def inc(x):\n    raise KeyboardInterrupt\n", "failed", "test 1: KeyboardInterrupt"),
    ],
)
def test_broken_programs_score_zero_with_the_reason(sandbox, suite, program, status, detail):
    result = grade(sandbox, program, suite)
    assert (result.status, result.passed, result.total) == (status, 0, 3)
    assert detail in result.detail


def test_main_block_does_not_run_and_the_standard_library_imports(sandbox, suite):
    program = (
        "import collections, datetime, fractions, hashlib, heapq, json, math, re, time\n"
        "assert hashlib.md5(b'x').hexdigest().startswith('9dd4')\n"
        "assert time.strptime('2020', '%Y').tm_year == 2020\n"  # imports _strptime lazily
        "assert 'ü'.encode('idna')\n"  # imports encodings.idna lazily
        + RIGHT
        + "if __name__ == '__main__':\n    input()\n"
    )
    assert grade(sandbox, program, suite).status == "ok"


def test_a_program_sees_a_clean_environment_in_its_own_folder(sandbox, suite):
    program = (
        "import os, sys\n"
        "assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PYTHONHASHSEED', 'TMPDIR']\n"
        "assert os.environ['HOME'] == os.getcwd() == os.environ['TMPDIR']\n"
        "assert os.listdir('.') == []\n"
        "with open('notes.txt', 'w') as f:\n    f.write('mine')\n"
        "os.remove('notes.txt')\n"
        "print('uid', os.getuid(), 'cwd', os.getcwd())\n" + RIGHT
    )
    result = grade(sandbox, program, suite)
    assert result.status == "ok", result.detail
    uid, cwd = result.output.split()[1], result.output.split()[3]
    assert (int(uid) in SANDBOX_UIDS) == AS_ROOT
    assert cwd == "/work" if result.isolation == "bwrap" else "marl-sandbox-" in cwd


def test_calls_get_fresh_arguments_and_return_only_plain_data(sandbox):
    program = (
        "seen = []\n"
        "def f(items):\n"
        "    seen.append(items)\n"
        "    items.append(len(seen))\n"  # mutating its argument changes no later call
        "    return (items, {'n': len(seen)}, {1, 2}, 2 ** 80, -0.0)\n"
    )
    run = sandbox.execute(program, "f", [(([0],), {}), (([0],), {})])
    assert run.status == "done" and run.isolation in ("bwrap", "rlimits-only")
    first, second = (r.value for r in run.returned)
    assert first == ([0, 1], {"n": 1}, {1, 2}, 2**80, -0.0)
    assert second[0] == [0, 2] and type(second) is tuple and math.copysign(1, second[4]) < 0


# ---------------------------------------------------------------- hostile code


def test_infinite_loop_times_out(sandbox, parent, suite):
    quick = Sandbox(SandboxLimits(timeout_s=1), parent=parent)
    start = time.perf_counter()
    result = grade(quick, "def inc(x):\n    while True:\n        pass\n", suite)
    assert (result.status, result.passed) == ("timeout", 0)
    assert "wall clock" in result.detail
    assert time.perf_counter() - start < 1 + 2


def test_sleeping_program_times_out(sandbox, parent, suite):
    quick = Sandbox(SandboxLimits(timeout_s=1), parent=parent)
    result = grade(quick, "import time\ntime.sleep(60)\n" + RIGHT, suite)
    assert (result.status, result.passed) == ("timeout", 0)


@pytest.mark.parametrize(
    "program",
    [
        "x = bytearray(10 ** 11)",
        "hog = []\nwhile True:\n    hog.append(bytearray(10 ** 7))",
        "def inc(x):\n    return len([0] * 10 ** 10)\n",
    ],
)
def test_memory_hog_hits_the_memory_limit(sandbox, suite, program):
    result = grade(sandbox, program, suite)
    assert (result.status, result.passed) == ("memory", 0)


def test_output_flood_hits_the_output_limit(sandbox, suite):
    result = grade(sandbox, "while True:\n    print('x' * 100_000)\n", suite)
    assert (result.status, result.passed) == ("output_limit", 0)
    assert len(result.output) <= sandbox.limits.output_bytes


def test_naive_fork_bomb_is_stopped_by_the_guard(sandbox, suite):
    result = grade(sandbox, "import os\nwhile True:\n    os.fork()\n" + RIGHT, suite)
    assert (result.status, result.passed) == ("failed", 0)
    assert "TypeError" in result.detail


@root_only
def test_fork_bomb_past_the_guard_stops_at_the_process_limit(sandbox, parent, suite):
    bomb = CTYPES + (
        "import os\n"
        "forked = 0\n"
        "for _ in range(500):\n"
        "    pid = libc.fork()\n"
        "    forked = 0 if pid == 0 else forked + (pid > 0)\n"
        "os.write(1, f'forked {forked}\\n'.encode())\n"
        "import time\n"
        "time.sleep(60)\n"
    )
    result = grade(Sandbox(SandboxLimits(timeout_s=2), parent=parent), bomb, suite)
    assert (result.status, result.passed) == ("timeout", 0)
    forks = [int(n) for n in re.findall(r"forked (\d+)", result.output)]
    assert 1 < len(forks) <= sandbox.limits.processes, result.output  # one line a process
    assert sum(forks) == len(forks) - 1


@root_only
def test_a_process_that_leaves_the_group_is_killed_too(sandbox, suite):
    escape = CTYPES + (
        "if libc.fork() == 0:\n    libc.setsid()\n    import time\n    time.sleep(60)\n"
    )
    result = grade(sandbox, escape + RIGHT, suite)
    assert result.status == "ok"  # the fixture checks that the sleeper is gone


def test_writing_outside_its_folder_is_refused(sandbox, suite, tmp_path):
    private = tmp_path / "outside.txt"  # in a folder only root may enter
    shared = Path(tempfile.gettempdir()) / f"marl-test-outside-{uuid.uuid4().hex}"
    program = (
        "import _io, os\n"
        "def attempt(write):\n"
        "    try:\n"
        "        write()\n"
        "        print('wrote')\n"
        "    except Exception as error:\n"
        "        print('refused', type(error).__name__)\n"
        f"attempt(lambda: open({str(private)!r}, 'w').write('x'))\n"
        f"attempt(lambda: open({str(shared)!r}, 'a').write('x'))\n"
        f"attempt(lambda: os.open({str(shared)!r}, os.O_CREAT | os.O_WRONLY))\n"
        f"attempt(lambda: os.mkdir({str(shared)!r}))\n"
    )
    if AS_ROOT:  # past the guard: the folder's permissions, or its absence under bwrap
        program += f"attempt(lambda: _io.FileIO({str(private)!r}, 'w'))\n"
    result = grade(sandbox, program + RIGHT, suite)
    assert result.status == "ok"
    lines = result.output.split("\n")
    assert lines[:4] == ["refused PermissionError"] * 4
    if AS_ROOT:
        assert lines[4] in ("refused PermissionError", "refused FileNotFoundError")
    assert not private.exists() and not shared.exists()


@root_only
def test_files_left_in_world_writable_folders_are_removed(sandbox, suite):
    shared = Path(tempfile.gettempdir()) / f"marl-test-outside-{uuid.uuid4().hex}"
    program = f"import _io\n_io.FileIO({str(shared)!r}, 'w').write(b'x')\nprint('wrote')\n"
    result = grade(sandbox, program + RIGHT, suite)
    assert result.status == "ok" and "wrote" in result.output  # the guard was bypassed
    assert not shared.exists()


def test_destructive_calls_are_contained(sandbox, parent, suite):
    victim = parent.parent / f"marl-test-victim-{uuid.uuid4().hex}"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    try:
        attempts = [
            f"import os\nos.system('rm -rf {victim}')",
            f"import shutil\nshutil.rmtree({str(victim)!r})",
            f"import os\nos.remove({str(victim / 'keep.txt')!r})",
            f"import subprocess\nsubprocess.run(['rm', '-rf', {str(victim)!r}])",
            "import os\nos.kill(1, 9)",
        ]
        if AS_ROOT:  # past the guard, the uid's permissions hold
            attempts.append(CTYPES + f"libc.system(b'rm -rf {victim}')\n" + RIGHT)
        for program in attempts:
            result = grade(sandbox, program, suite)
            assert result.passed == 0 or program.endswith(RIGHT), program
            assert (victim / "keep.txt").read_text() == "precious", program
    finally:
        shutil.rmtree(victim)


def test_many_sandboxes_at_once_leave_nothing_behind(sandbox, parent, suite):
    jobs = [
        (RIGHT, suite),
        ("def inc(x):\n    while True:\n        pass\n", suite),
        ("x = bytearray(10 ** 11)", suite),
        ("def inc(x):\n    return x\n", suite),
        ("import os\nos._exit(0)", suite),
        ("while True:\n    print('x' * 100_000)\n", suite),
        ("def inc(x) return", suite),
        (RIGHT, suite),
    ] * 2
    results = grade_many(Sandbox(SandboxLimits(timeout_s=3), parent=parent), jobs, workers=8)
    statuses = [r.status for r in results]
    expected = ["ok", "timeout", "memory", "failed", "crash", "output_limit", "syntax_error", "ok"]
    assert statuses == expected * 2
    assert [r.passed for r in results[:8]] == [3, 0, 0, 0, 0, 0, 0, 3]


# ---------------------------------------------------------------- the kernel's isolation


@bwrap
def test_bwrap_is_the_isolation_wherever_it_is_installed(sandbox, suite):
    assert sandbox.isolation == "bwrap"
    assert grade(sandbox, RIGHT, suite).isolation == "bwrap"


@bwrap
def test_reimported_socket_cannot_reach_a_listener_on_the_host(sandbox, suite):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    program = REIMPORT + (
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2).send(b'x')\n"
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print('no network:', error.strerror)\n"
    )
    try:
        result = grade(sandbox, program + RIGHT, suite)
    finally:
        thread.join()
        listener.close()
    assert result.status == "ok", result.detail
    assert result.output.startswith("no network:"), result.output
    assert accepted == []


@bwrap
def test_reimported_subprocess_runs_nothing_outside_the_sandbox(sandbox, outside, suite):
    drop = outside / "open"  # a folder anyone may write to, outside the sandbox
    drop.mkdir(mode=0o777)
    drop.chmod(0o1777)
    marker = drop / "escaped"
    program = REIMPORT + (
        f"done = subprocess.run(['sh', '-c', 'echo x > {marker}; ls /proc | grep -c ^[0-9]'],"
        " capture_output=True, text=True)\n"
        "print('processes seen', done.stdout.strip().splitlines()[-1])\n"
        "subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
    )
    result = grade(sandbox, program + RIGHT, suite)
    assert result.status == "ok", result.detail
    assert not marker.exists()  # the host's folder is not in its file system
    seen = int(result.output.split("processes seen")[1].split()[0])
    assert seen < 10  # its own few, not the host's (the fixture checks the sleeper is gone)


@bwrap
def test_restored_posix_calls_cannot_see_or_signal_processes_outside(sandbox, suite):
    victim = subprocess.Popen(["sleep", "60"])
    program = (
        "import _imp, importlib.machinery\n"
        "posix = _imp.create_builtin(importlib.machinery.ModuleSpec('posix', None))\n"
        "import errno\n"
        "def attempt(pid, sig):\n"
        "    try:\n"
        "        posix.kill(pid, sig)\n"
        "        return 'delivered'\n"
        "    except OSError as error:\n"
        "        return errno.errorcode[error.errno]\n"
        f"print('victim', attempt({victim.pid}, 9), 'caller', attempt({os.getpid()}, 0))\n"
        "print('everyone', attempt(-1, 9) if posix.fork() else '')\n"
    )
    try:
        result = grade(sandbox, program + RIGHT, suite)
        time.sleep(0.2)
        assert victim.poll() is None, "a process outside was killed"
    finally:
        victim.kill()
        victim.wait()
    assert "victim ESRCH caller ESRCH" in result.output, result.output  # not even visible


@bwrap
def test_nothing_survives_in_nested_world_writable_folders(sandbox, outside, suite):
    nested = outside / "open" / "deeper"  # world-writable, below a folder any user passes
    nested.mkdir(parents=True)
    for folder in (nested.parent, nested):
        folder.chmod(0o1777)
    name = f"marl-test-{uuid.uuid4().hex}"
    targets = [nested / name, Path("/var/tmp") / name, Path("/dev/shm") / name]
    if Path("/run/lock").is_dir():
        targets.append(Path("/run/lock") / name)
    program = "import _io, os\n" + "".join(
        f"try:\n    _io.FileIO({str(t)!r}, 'w').write(b'x')\n    print('wrote', {str(t)!r})\n"
        "except OSError:\n    pass\n"
        for t in targets
    )
    try:
        result = grade(sandbox, program + RIGHT, suite)
        assert result.status == "ok", result.detail
        assert [t for t in targets if t.exists()] == []
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def sysv_segments() -> set[int]:
    """Ids of the host's System V shared-memory segments."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


@bwrap
def test_a_sysv_shared_memory_segment_does_not_survive_the_run(sandbox, suite):
    before = sysv_segments()
    program = CTYPES + (
        "key = libc.shmget(0x6d61726c, 1 << 20, 0o1666)\n"  # IPC_CREAT | 0666
        "print('segment', key)\n"
    )
    result = grade(sandbox, program + RIGHT, suite)
    left = sysv_segments() - before
    for segment in left:
        subprocess.run(["ipcrm", "-m", str(segment)], check=False)
    assert result.status == "ok" and "segment" in result.output, result.output
    assert int(result.output.split()[1]) >= 0  # it was made
    assert left == set()


@bwrap
def test_dev_shm_holds_no_more_than_the_memory_limit_and_is_private(parent, suite):
    limits = SandboxLimits(timeout_s=20, memory_mb=64, file_size_mb=16)
    name = f"marl-test-shm-{uuid.uuid4().hex}"
    program = (
        "written = 0\n"
        "try:\n"
        "    for i in range(20):\n"  # 160 MiB in 8 MiB files: each under the file size limit
        f"        with open('/dev/shm/{name}-%d' % i, 'wb', buffering=0) as f:\n"
        "            for _ in range(8):\n"
        "                written += f.write(b'x' * (1 << 20))\n"
        "except OSError as error:\n"
        "    print('stopped:', error.strerror)\n"
        "print('written MiB', written >> 20)\n"
    )
    result = grade(Sandbox(limits, parent=parent), program + RIGHT, suite)
    assert result.status == "ok", result.detail
    written = int(result.output.split("written MiB")[1])
    assert written <= limits.memory_mb, result.output
    assert [p for p in Path("/dev/shm").iterdir() if p.name.startswith(name)] == []


KILLED_CALLER = """
import sys
sys.path.insert(0, {root!r})
from scenarios.sandbox import Sandbox, SandboxLimits
program = {program!r}
Sandbox(SandboxLimits(timeout_s=120), parent={parent!r}).execute(program, "f", [((), {{}})])
"""
SLEEPERS = CTYPES + (  # one process leaves the group and the session, then both sleep
    "if libc.fork() == 0:\n    libc.setsid()\n"
    "import time\ntime.sleep(120)\n"
    "def f():\n    return 1\n"
)


@pytest.mark.parametrize("isolation", ["bwrap", "rlimits-only"])
def test_a_caller_killed_mid_run_leaves_nothing_after_the_next_start(parent, isolation):
    if isolation == "bwrap" and not BWRAP_INSTALLED:
        pytest.skip("bubblewrap is not installed")
    env = dict(os.environ)
    if isolation == "rlimits-only":
        env["PATH"] = str(parent)  # no bwrap there
    script = KILLED_CALLER.format(root=str(ROOT), program=SLEEPERS, parent=str(parent))
    caller = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", script], env=env, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # mid-run: its folder exists, its sleepers sleep
        boxes = [p for p in parent.iterdir() if p.name.startswith("marl-sandbox-")]
        if boxes and (not AS_ROOT or len(live_sandbox_processes()) >= 2):
            break
        time.sleep(0.05)
    else:
        caller.kill()
        pytest.fail("the sandboxed run did not start")
    leased = {uid for _, uid in live_sandbox_processes()}
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    assert [p.name for p in parent.iterdir()] == [boxes[0].name]  # a leftover, for now

    Sandbox(parent=parent)  # the next start sweeps

    assert list(parent.iterdir()) == []
    if AS_ROOT:
        deadline = time.monotonic() + 5  # bwrap's processes die with their parent, at once
        while live_sandbox_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live_sandbox_processes() == []
        locks = sandbox_module._LEASES.folder
        assert [n for n in os.listdir(locks) if int(n) in leased] == []


def test_without_bwrap_the_fallback_warns_once_and_is_recorded(parent, suite, monkeypatch):
    monkeypatch.setenv("PATH", str(parent))  # no bwrap there
    monkeypatch.setattr(sandbox_module, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="bwrap is not installed.*rlimits-only"):
        first = Sandbox(parent=parent)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = Sandbox(parent=parent)  # said once per process
    assert first.isolation == second.isolation == "rlimits-only"
    result = grade(second, RIGHT, suite)
    assert (result.status, result.isolation) == ("ok", "rlimits-only")
    assert result.to_dict()["isolation"] == "rlimits-only"


# ---------------------------------------------------------------- plain data


def plain_values(hashable_only: bool = False):
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        | st.floats(allow_nan=False)
        | st.text(max_size=20)
        | st.binary(max_size=20)
    )
    if hashable_only:
        return st.recursive(scalars, lambda inner: st.tuples(inner, inner), max_leaves=4)
    keys = plain_values(hashable_only=True)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
        | st.sets(keys, max_size=4)
        | st.frozensets(keys, max_size=4),
        max_leaves=10,
    )


LIMITS = [1 << 20, 100_000, 64, 4300]


def exact(value):
    """``value`` as nested tuples that are equal only for equal values of the same types."""
    kind = type(value).__name__
    if isinstance(value, dict):
        return kind, tuple((exact(k), exact(v)) for k, v in value.items())
    if isinstance(value, set | frozenset):
        return kind, tuple(sorted((exact(v) for v in value), key=repr))
    if isinstance(value, list | tuple):
        return kind, tuple(exact(v) for v in value)
    return kind, repr(value)  # repr keeps -0.0 apart from 0.0


@settings(max_examples=300, deadline=None)
@given(plain_values())
def test_plain_data_crosses_both_ways_with_its_exact_types(value):
    """The sandbox's encoder and the caller's decoder (and back) agree on every value."""
    from_sandbox = decode(sandbox_runner.encode_value(value, LIMITS))
    assert exact(from_sandbox) == exact(value)  # a tuple stays a tuple, True stays True
    to_sandbox = sandbox_runner.untagged(sandbox_runner.unpack_raw(encode(value)))
    assert exact(to_sandbox) == exact(value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_to_plain_data_or_a_plain_data_error(data):
    try:
        value = decode(data)
    except PlainDataError:
        return
    assert encode(value) is not None


class Always(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize(
    "value",
    [
        Always(3),
        [Always(3)],
        {"a": object()},
        iter([1]),
        [[[[1]]]],  # too deep for the small limits below
        "x" * 5000,  # too big
        {1: [1] * 5000},  # too many items
    ],
)
def test_what_is_not_plain_data_is_refused_on_both_sides(value):
    small = ValueLimits(max_bytes=4096, max_items=1000, max_depth=3)
    with pytest.raises(PlainDataError):
        encode(value, small)
    with pytest.raises(sandbox_runner.NotPlain):
        sandbox_runner.encode_value(value, [4096, 1000, 3, 4300])


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb({"a": 1}),  # maps are not part of the format
        msgpack.packb(msgpack.ExtType(1, b"x")),  # nor extension types
        msgpack.packb([9, 1]),  # an unknown tag
        msgpack.packb([3, [0, 1]]),  # an unhashable set item
        b"\x91" * 2000 + b"\xc0",  # nested past every limit
        b"\xdd\xff\xff\xff\xff",  # claims four billion items
        msgpack.packb([5, "12"]),  # a small int dressed as a big one
    ],
)
def test_malformed_values_are_refused_without_building_them(data):
    with pytest.raises(PlainDataError):
        decode(data)


# ---------------------------------------------------------------- suites and limits


def test_check_statements_keep_setup_and_count_only_tests():
    check = Check.from_check_module(
        "import math\nMETADATA = {'author': 'x'}\n\n"
        "def check(candidate):\n"
        "    import random\n"
        "    rng = random.Random(0)\n"
        "    assert candidate(4) == 2\n"
        "    assert True\n"
        "    print('debug')\n",
        "root",
    )
    assert check.entry_point == "root" and check.total == 1
    assert [is_test for _, is_test in check.statements] == [False, False, True, False, False]
    assert "METADATA" in check.preamble and "import math" in check.preamble


@pytest.mark.parametrize(
    "source",
    ["def helper(candidate):\n    assert candidate(1)\n", "def check(x, y):\n    assert x\n"],
)
def test_check_rejects_a_module_without_check_candidate(source):
    with pytest.raises(ValueError, match="check"):
        Check.from_check_module(source, "f")


@pytest.mark.parametrize(
    "limits",
    [{"timeout_s": 0}, {"memory_mb": 1}, {"processes": 0}, {"open_files": 3}, {"cpu": 1}],
)
def test_limits_reject_bad_values(limits):
    with pytest.raises(ValidationError):
        SandboxLimits(**limits)


def test_result_dict_is_small_and_complete(sandbox, suite):
    result = grade(sandbox, "print('hello')\n" + RIGHT, suite)
    assert result.output == "hello\n"
    assert set(result.to_dict()) == {
        "status", "passed", "total", "fraction", "detail", "seconds", "isolation"
    }  # fmt: skip


# ---------------------------------------------------------------- under load

HOSTILE = {
    "loop": ("def inc(x):\n    while True:\n        pass\n", {"timeout"}),
    # past the guard (ctypes): every process forks until RLIMIT_NPROC says no, then spins
    "fork bomb": (CTYPES + "while True:\n    libc.fork()\n", {"timeout"}),
    "memory": ("hog = []\nwhile True:\n    hog.append(b'x' * 10 ** 6)\n", {"memory", "timeout"}),
    "100 MB to stdout": (
        "import sys\nchunk = 'x' * 10 ** 6\nfor _ in range(100):\n    sys.stdout.write(chunk)\n",
        {"output_limit", "timeout"},
    ),
    "sleep": ("import time\ntime.sleep(600)\n" + RIGHT, {"timeout"}),
}


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory of a process in KiB; 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line holds ``text`` (a run's runner names its folder;
    what it forks keeps that command line)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_200_hostile_programs_at_once_are_contained_and_leave_nothing(parent, suite):
    """Loops, fork bombs, memory hogs, 100 MB floods and sleepers, 40 of each, all at once
    on whatever cores there are: each stops at its limit and scores 0, no process outlives
    its wall clock by much, the caller's memory does not grow with their output, and
    nothing is left behind."""
    limits = SandboxLimits(timeout_s=5, memory_mb=64, file_size_mb=4)
    kinds = list(HOSTILE) * 40
    jobs = [(HOSTILE[kind][0], suite) for kind in kinds]
    shared = ("/tmp", "/var/tmp", "/dev/shm")
    before = {entry.name for folder in shared for entry in os.scandir(folder)}
    baseline = rss_kib()
    peaks = {"caller": baseline, "sandboxes": 0}
    lifetimes: dict[int, tuple[float, float]] = {}  # pid: (first seen, last seen)
    done = threading.Event()

    def watch() -> None:  # the caller's memory; every sandboxed process's memory and life
        while not done.wait(0.1):
            now = time.perf_counter()
            pids = processes_mentioning(str(parent))
            for pid in pids:
                lifetimes[pid] = (lifetimes.get(pid, (now, now))[0], now)
            peaks["caller"] = max(peaks["caller"], rss_kib())
            peaks["sandboxes"] = max(peaks["sandboxes"], sum(rss_kib(pid) for pid in pids))

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.perf_counter()
    try:
        results = grade_many(Sandbox(limits, parent=parent), jobs, workers=len(jobs))
    finally:
        done.set()
        watcher.join()
    seconds = time.perf_counter() - start

    for kind, result in zip(kinds, results, strict=True):
        assert result.passed == 0 and result.fraction == 0.0, (kind, result)
        assert result.status in HOSTILE[kind][1], (kind, result)
        assert result.detail, (kind, result)
        assert len(result.output) <= limits.output_bytes
        # the caller's own clock of a run: its start, the wall limit, cleanup; generous,
        # as 200 runs share a few busy cores with the caller
        assert result.seconds < limits.timeout_s + 30, (kind, result.seconds)
    assert seconds < limits.timeout_s + 60
    # the programs themselves end at the wall clock (the runner's kernel alarm, then the
    # caller's kill of the process group and, as root, of the run's uid)
    assert len(lifetimes) >= 3 * 40  # at least the runs that last: loops, bombs, sleepers
    assert max(last - first for first, last in lifetimes.values()) < limits.timeout_s + 10
    assert processes_mentioning(str(parent)) == []
    if AS_ROOT:
        assert live_sandbox_processes() == []
    assert list(parent.iterdir()) == []
    after = {entry.name for folder in shared for entry in os.scandir(folder)}
    assert [name for name in after - before if name.startswith("marl-sandbox-")] == []
    # floods reach the output files (4 MB each, 160 MB in all), never the caller's memory
    assert peaks["caller"] - baseline < 64 * 1024, peaks
    assert peaks["sandboxes"] <= len(jobs) * limits.memory_mb * 1024, peaks

