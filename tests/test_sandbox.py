"""The sandbox: right scores for right and wrong code, and hostile code contained.

Every test runs its sandboxes in a fresh parent folder; the ``sandbox`` fixture then checks
that the run left nothing behind: no per-run folder and no live process of a sandbox uid.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from scenarios.humaneval import load_problems
from scenarios.sandbox import SANDBOX_UIDS, Sandbox, SandboxLimits, TestSuite

AS_ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not AS_ROOT, reason="the uid drop and sweeps need root")

SUITE = TestSuite.from_check(
    "METADATA = {}\n\n"
    "def check(candidate):\n"
    "    assert candidate(1) == 2\n"
    "    assert candidate(2) == 3\n"
    "    assert True, 'not a test'\n"
    "    for x in range(3):\n"
    "        assert candidate(x) == x + 1\n",
    "inc",
)
RIGHT = "def inc(x):\n    return x + 1\n"
# Reaches ctypes although the guard removed it: the guard is not the boundary, the limits are.
CTYPES = (
    "import sys\n"
    "sys.modules.pop('ctypes'); sys.modules.pop('_ctypes')\n"
    "import ctypes\n"
    "libc = ctypes.CDLL(None)\n"
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
def sandbox(parent):
    box = Sandbox(SandboxLimits(timeout_s=20), parent=parent)  # generous: 2 busy cores
    yield box
    assert list(parent.iterdir()) == [], "a run left its folder behind"
    if AS_ROOT:
        assert live_sandbox_processes() == [], "a run left a process behind"


# ---------------------------------------------------------------- scoring


def test_canonical_solutions_of_all_164_problems_pass(parent):
    problems = load_problems()
    box = Sandbox(SandboxLimits(timeout_s=30), parent=parent)
    start = time.perf_counter()
    results = box.run_many([(p.canonical_program, p.tests) for p in problems])
    seconds = time.perf_counter() - start
    failing = {p.task_id: r for p, r in zip(problems, results, strict=True) if r.status != "ok"}
    assert failing == {}
    assert all(r.fraction == 1.0 and r.total >= 1 for r in results)
    assert sum(r.total for r in results) == 1133  # asserts about candidate, 'assert True' not
    assert seconds < 60
    assert list(parent.iterdir()) == []


def test_obviously_wrong_solutions_fail(parent):
    problems = load_problems()
    box = Sandbox(SandboxLimits(timeout_s=30), parent=parent)
    results = box.run_many([(p.prompt + "    return None\n", p.tests) for p in problems])
    assert not any(r.status == "ok" for r in results)
    assert sum(r.passed for r in results) < 0.1 * sum(r.total for r in results)


def test_counts_each_test_and_a_failing_one_does_not_stop_the_rest(sandbox):
    assert SUITE.total == 3  # two asserts and the loop; 'assert True' does not count
    result = sandbox.run("def inc(x):\n    return 2 if x == 1 else 0\n", SUITE)
    assert (result.status, result.passed, result.total) == ("failed", 1, 3)
    assert result.fraction == pytest.approx(1 / 3)
    assert result.detail.startswith("test 2: AssertionError in assert candidate(2) == 3")
    right = sandbox.run(RIGHT, SUITE)
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
    ],
)
def test_broken_programs_score_zero_with_the_reason(sandbox, program, status, detail):
    result = sandbox.run(program, SUITE)
    assert (result.status, result.passed, result.total) == (status, 0, 3)
    assert detail in result.detail


def test_main_block_does_not_run_and_the_standard_library_imports(sandbox):
    program = (
        "import collections, datetime, fractions, hashlib, heapq, json, math, re, time\n"
        "assert hashlib.md5(b'x').hexdigest().startswith('9dd4')\n"
        "assert time.strptime('2020', '%Y').tm_year == 2020\n"  # imports _strptime lazily
        "assert 'ü'.encode('idna')\n"  # imports encodings.idna lazily
        + RIGHT
        + "if __name__ == '__main__':\n    input()\n"
    )
    assert sandbox.run(program, SUITE).status == "ok"


def test_a_program_sees_a_clean_environment_in_its_own_folder(sandbox):
    program = (
        "import os, sys\n"
        "assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PYTHONHASHSEED', 'TMPDIR']\n"
        "assert os.environ['HOME'] == os.getcwd() == os.environ['TMPDIR']\n"
        "assert os.listdir('.') == []\n"
        "with open('notes.txt', 'w') as f:\n    f.write('mine')\n"
        "os.remove('notes.txt')\n"
        "print('uid', os.getuid(), 'cwd', os.getcwd())\n" + RIGHT
    )
    result = sandbox.run(program, SUITE)
    assert result.status == "ok", result.detail
    uid = int(result.output.split()[1])
    assert (uid in SANDBOX_UIDS) == AS_ROOT
    assert "marl-sandbox-" in result.output


# ---------------------------------------------------------------- hostile code


def test_infinite_loop_times_out(sandbox, parent):
    quick = Sandbox(SandboxLimits(timeout_s=1), parent=parent)
    start = time.perf_counter()
    result = quick.run("def inc(x):\n    while True:\n        pass\n", SUITE)
    assert (result.status, result.passed) == ("timeout", 0)
    assert "wall clock" in result.detail
    assert time.perf_counter() - start < 1 + 2


def test_sleeping_program_times_out(sandbox, parent):
    quick = Sandbox(SandboxLimits(timeout_s=1), parent=parent)
    result = quick.run("import time\ntime.sleep(60)\n" + RIGHT, SUITE)
    assert (result.status, result.passed) == ("timeout", 0)


@pytest.mark.parametrize(
    "program",
    [
        "x = bytearray(10 ** 11)",
        "hog = []\nwhile True:\n    hog.append(bytearray(10 ** 7))",
        "def inc(x):\n    return len([0] * 10 ** 10)\n",
    ],
)
def test_memory_hog_hits_the_memory_limit(sandbox, program):
    result = sandbox.run(program, SUITE)
    assert (result.status, result.passed) == ("memory", 0)


def test_output_flood_hits_the_output_limit(sandbox):
    result = sandbox.run("while True:\n    print('x' * 100_000)\n", SUITE)
    assert (result.status, result.passed) == ("output_limit", 0)
    assert len(result.output) <= sandbox.limits.output_bytes


def test_naive_fork_bomb_is_stopped_by_the_guard(sandbox):
    result = sandbox.run("import os\nwhile True:\n    os.fork()\n" + RIGHT, SUITE)
    assert (result.status, result.passed) == ("failed", 0)
    assert "TypeError" in result.detail


@root_only
def test_fork_bomb_past_the_guard_stops_at_the_process_limit(sandbox, parent):
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
    result = Sandbox(SandboxLimits(timeout_s=2), parent=parent).run(bomb, SUITE)
    assert (result.status, result.passed) == ("timeout", 0)
    forks = [int(n) for n in re.findall(r"forked (\d+)", result.output)]
    assert 1 < len(forks) <= sandbox.limits.processes, result.output  # one line a process
    assert sum(forks) == len(forks) - 1


@root_only
def test_a_process_that_leaves_the_group_is_killed_too(sandbox):
    escape = CTYPES + (
        "if libc.fork() == 0:\n    libc.setsid()\n    import time\n    time.sleep(60)\n"
    )
    result = sandbox.run(escape + RIGHT, SUITE)
    assert result.status == "ok"  # the fixture checks that the sleeper is gone


def test_writing_outside_its_folder_is_refused(sandbox, tmp_path):
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
    if AS_ROOT:  # past the guard, the folder's permissions hold against the run's uid
        program += f"attempt(lambda: _io.FileIO({str(private)!r}, 'w'))\n"
    result = sandbox.run(program + RIGHT, SUITE)
    assert result.status == "ok"
    attempts = 5 if AS_ROOT else 4
    assert result.output.split("\n")[:attempts] == ["refused PermissionError"] * attempts
    assert not private.exists() and not shared.exists()


@root_only
def test_files_left_in_world_writable_folders_are_removed(sandbox):
    shared = Path(tempfile.gettempdir()) / f"marl-test-outside-{uuid.uuid4().hex}"
    program = f"import _io\n_io.FileIO({str(shared)!r}, 'w').write(b'x')\nprint('wrote')\n"
    result = sandbox.run(program + RIGHT, SUITE)
    assert result.status == "ok" and "wrote" in result.output  # the guard was bypassed
    assert not shared.exists()


def test_destructive_calls_are_contained(sandbox, parent):
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
            result = sandbox.run(program, SUITE)
            assert result.passed == 0 or program.endswith(RIGHT), program
            assert (victim / "keep.txt").read_text() == "precious", program
    finally:
        shutil.rmtree(victim)


def test_many_sandboxes_at_once_leave_nothing_behind(sandbox, parent):
    jobs = [
        (RIGHT, SUITE),
        ("def inc(x):\n    while True:\n        pass\n", SUITE),
        ("x = bytearray(10 ** 11)", SUITE),
        ("def inc(x):\n    return x\n", SUITE),
        ("import os\nos._exit(0)", SUITE),
        ("while True:\n    print('x' * 100_000)\n", SUITE),
        ("def inc(x) return", SUITE),
        (RIGHT, SUITE),
    ] * 2
    results = Sandbox(SandboxLimits(timeout_s=3), parent=parent).run_many(jobs, workers=8)
    statuses = [r.status for r in results]
    expected = ["ok", "timeout", "memory", "failed", "crash", "output_limit", "syntax_error", "ok"]
    assert statuses == expected * 2
    assert [r.passed for r in results[:8]] == [3, 0, 0, 0, 0, 0, 0, 3]


# ---------------------------------------------------------------- suites and limits


def test_suite_from_check_keeps_setup_and_counts_only_tests():
    suite = TestSuite.from_check(
        "import math\nMETADATA = {'author': 'x'}\n\n"
        "def check(candidate):\n"
        "    import random\n"
        "    rng = random.Random(0)\n"
        "    assert candidate(4) == 2\n"
        "    assert True\n"
        "    print('debug')\n",
        "root",
    )
    assert suite.entry_point == "root" and suite.total == 1
    assert [is_test for _, is_test in suite.statements] == [False, False, True, False, False]
    assert "METADATA" in suite.preamble and "import math" in suite.preamble


@pytest.mark.parametrize(
    "source",
    ["def helper(candidate):\n    assert candidate(1)\n", "def check(x, y):\n    assert x\n"],
)
def test_suite_from_check_rejects_a_module_without_check_candidate(source):
    with pytest.raises(ValueError, match="check"):
        TestSuite.from_check(source, "f")


@pytest.mark.parametrize(
    "limits",
    [{"timeout_s": 0}, {"memory_mb": 1}, {"processes": 0}, {"open_files": 3}, {"cpu": 1}],
)
def test_limits_reject_bad_values(limits):
    with pytest.raises(ValidationError):
        SandboxLimits(**limits)


def test_result_dict_is_small_and_complete(sandbox):
    result = sandbox.run("print('hello')\n" + RIGHT, SUITE)
    assert result.output == "hello\n"
    assert set(result.to_dict()) == {"status", "passed", "total", "fraction", "detail", "seconds"}


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


def test_200_hostile_programs_at_once_are_contained_and_leave_nothing(parent):
    """Loops, fork bombs, memory hogs, 100 MB floods and sleepers, 40 of each, all at once
    on whatever cores there are: each stops at its limit and scores 0, no process outlives
    its wall clock by much, the caller's memory does not grow with their output, and
    nothing is left behind."""
    limits = SandboxLimits(timeout_s=5, memory_mb=64, file_size_mb=4)
    kinds = list(HOSTILE) * 40
    jobs = [(HOSTILE[kind][0], SUITE) for kind in kinds]
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
        results = Sandbox(limits, parent=parent).run_many(jobs, workers=len(jobs))
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
