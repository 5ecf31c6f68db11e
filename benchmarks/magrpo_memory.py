"""MAGRPO memory: peak RSS of a training process for 2, 4 and 8 agents with LoRA policies.

Each agent count runs in its own process (so one count's peak cannot hide in another's):
it loads the embedded SmolLM2-135M-Instruct once with a LoRA adapter per agent
(`separate` policies) and makes ``--steps`` training steps, each of ``--tasks-per-step``
prompts x G=4 rollouts x 32 new tokens per agent, on the prompts and reward of
``magrpo_step.py``. The process reports its resident set size after loading and its peak
(``VmHWM`` from ``/proc/self/status``, the kernel's high-water mark of resident memory).
Target: 8 agents within 2 GB (2048 MB).

    .venv/bin/python benchmarks/magrpo_memory.py [--agents 2 4 8] [--steps 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

TARGET_MB = {8: 2048}


def rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(agents: int, steps: int, tasks_per_step: int, threads: int) -> None:
    """One agent count: load, train ``steps`` steps, print one JSON line."""
    import torch
    from magrpo_step import OurTrainer

    torch.set_num_threads(threads)
    ours = OurTrainer(agents, "separate", tasks_per_step)
    loaded = rss_mb("VmRSS")
    start = time.perf_counter()
    tokens = sum(ours.step(step)["tokens"] for step in range(steps))
    print(
        json.dumps(
            {
                "loaded_mb": loaded,
                "peak_mb": rss_mb("VmHWM"),
                "seconds_per_step": (time.perf_counter() - start) / steps,
                "tokens": tokens,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=2, help="training steps per process")
    parser.add_argument("--tasks-per-step", type=int, default=2, help="prompts per step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.tasks_per_step, args.threads)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"MAGRPO peak memory: `separate` LoRA policies, G=4, 32 new tokens, "
        f"{args.tasks_per_step} prompts per step, {args.steps} steps, SmolLM2-135M, CPU"
    )
    for column in ("agents", "RSS after load MB", "peak RSS MB", "s / step", "target", "met"):
        table.add_column(column, justify="right")
    for agents in args.agents:
        command = [sys.executable, __file__, "--worker", str(agents)]
        command += ["--steps", str(args.steps), "--tasks-per-step", str(args.tasks_per_step)]
        command += ["--threads", str(args.threads)]
        with console.status(f"{agents} agents: {args.steps} training steps in a fresh process"):
            done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{agents} agents failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        target = TARGET_MB.get(agents)
        table.add_row(
            str(agents),
            f"{result['loaded_mb']:.0f}",
            f"{result['peak_mb']:.0f}",
            f"{result['seconds_per_step']:.1f}",
            f"<= {target}" if target else "-",
            ("yes" if result["peak_mb"] <= target else "NO") if target else "-",
        )
    console.print(table)


if __name__ == "__main__":
    main()
