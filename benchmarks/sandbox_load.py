"""Sandbox throughput and latency: normal programs alone, then beside as many hostile ones.

| row                 | jobs, all at once                                               |
| ------------------- | --------------------------------------------------------------- |
| `normal alone`      | N right programs (pass every test)                              |
| `normal + hostile`  | the same N, plus N hostile ones: loops, fork bombs, memory hogs, |
|                     | 100 MB floods, sleepers (N / 5 of each)                         |

Per row: wall seconds, runs/s, and per-run latency (the caller's clock of one run: start,
the program, cleanup) of the normal and of the hostile runs, median, p90 and max. Hostile
runs last their wall clock limit (``--timeout``) by design; what matters is how much they
slow the normal ones, and how fast the whole crowd is cleared.

Run:

    .venv/bin/python benchmarks/sandbox_load.py --n 40 --timeout 2

The first line says which isolation scored the runs (``bwrap`` or ``rlimits-only``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scenarios.grading import TestSuite, grade, grade_many, suite_from_check
from scenarios.sandbox import Sandbox, SandboxLimits

CHECK = (
    "def check(candidate):\n"
    "    assert candidate(1) == 2\n"
    "    assert candidate(2) == 3\n"
    "    for x in range(3):\n"
    "        assert candidate(x) == x + 1\n"
)
RIGHT = "def inc(x):\n    return x + 1\n"
# past the Python guard: ctypes comes back once its entries leave sys.modules
CTYPES = (
    "import sys\n"
    "sys.modules.pop('ctypes'); sys.modules.pop('_ctypes')\n"
    "import ctypes\n"
    "libc = ctypes.CDLL(None)\n"
)
HOSTILE = {
    "loop": "def inc(x):\n    while True:\n        pass\n",
    "fork bomb": CTYPES + "while True:\n    libc.fork()\n",
    "memory": "hog = []\nwhile True:\n    hog.append(b'x' * 10 ** 6)\n",
    "flood": "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10 ** 6)\n",
    "sleep": "import time\ntime.sleep(600)\n" + RIGHT,
}


def percentiles(values: list[float]) -> str:
    if not values:
        return "- | - | -"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(ordered):.3f} | {p90:.3f} | {ordered[-1]:.3f}"


def measure(sandbox: Sandbox, suite: TestSuite, n: int, hostile: bool) -> tuple[str, ...]:
    jobs = [(RIGHT, suite)] * n
    if hostile:
        kinds = list(HOSTILE) * (n // len(HOSTILE) + 1)
        jobs += [(HOSTILE[kind], suite) for kind in kinds[:n]]
    start = time.perf_counter()
    results = grade_many(sandbox, jobs, workers=len(jobs))
    seconds = time.perf_counter() - start
    normal, rest = results[:n], results[n:]
    wrong = [r for r in normal if r.status != "ok"]
    cheated = [r for r in rest if r.passed]
    if wrong or cheated:
        raise SystemExit(f"wrong scores: {wrong[:3]} {cheated[:3]}")
    return (
        "normal + hostile" if hostile else "normal alone",
        str(len(jobs)),
        f"{seconds:.2f}",
        f"{len(jobs) / seconds:.1f}",
        percentiles([r.seconds for r in normal]),
        percentiles([r.seconds for r in rest]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="normal runs (and as many hostile)")
    parser.add_argument("--timeout", type=float, default=2.0, help="wall clock limit of a run")
    parser.add_argument("--repeat", type=int, default=1, help="rows of each kind, interleaved")
    args = parser.parse_args()
    limits = SandboxLimits(timeout_s=args.timeout, memory_mb=64, file_size_mb=4)
    with tempfile.TemporaryDirectory(prefix="marl-bench-sandbox-") as parent:
        os.chmod(parent, 0o755)
        sandbox = Sandbox(limits, parent=parent)
        suite = suite_from_check(sandbox, CHECK, "inc")
        probe = grade(sandbox, RIGHT, suite)
        print(f"isolation: {probe.isolation}; {os.cpu_count()} CPUs; timeout {args.timeout:g}s")
        print()
        print(
            "| row | runs | seconds | runs/s | normal s: median | p90 | max "
            "| hostile s: median | p90 | max |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for _ in range(args.repeat):
            for hostile in (False, True):
                row = measure(sandbox, suite, args.n, hostile)
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
