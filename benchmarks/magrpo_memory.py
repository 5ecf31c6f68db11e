"""MAGRPO memory: peak RSS of a training process for 2, 4 and 8 agents with LoRA policies.

Each agent count runs in its own process (so one count's peak cannot hide in another's):
it loads the embedded SmolLM2-135M-Instruct once with a LoRA adapter per agent
(`separate` policies) and makes ``--steps`` training steps, each of ``--tasks-per-step``
prompts x G=4 rollouts x 32 new tokens per agent, on the prompts, reward and batch size
of ``magrpo_step.py`` (``marl train``'s default of 32 prompts per generate call). Reported
from ``/proc/self/status``: ``VmHWM``, the kernel's high-water mark of resident memory,
over the whole process (the peak), and how far one rollout and one update lift RSS above
where each started (the mark is reset between phases by writing 5 to
``/proc/self/clear_refs``). The weights are memory-mapped, so they count once they have
been read, from the first rollout on.
Target: 8 agents within 2 GB (2048 MB).

    .venv/bin/python benchmarks/magrpo_memory.py [--agents 2 4 8] [--steps 2] [--micro-batch N]

``--micro-batch`` sets how many completions the trainer runs through one forward/backward
pass (default: the trainer's own); the activations kept for that backward pass are most
of an update's memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TARGET_MB = {8: 2048}


def rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Restart ``VmHWM`` from the current resident size (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")


def worker(
    agents: int, steps: int, tasks_per_step: int, threads: int, micro_batch: int | None
) -> None:
    """One agent count: load, train ``steps`` steps, print one JSON line."""
    import torch
    from magrpo_step import OurTrainer

    torch.set_num_threads(threads)
    ours = OurTrainer(agents, "separate", tasks_per_step, micro_batch=micro_batch)
    peak = 0.0
    rise = {"rollout_mb": 0.0, "update_mb": 0.0}  # how far each phase lifts RSS above its start

    def phase(name: str, run):
        nonlocal peak
        peak = max(peak, rss_mb("VmHWM"))
        reset_peak()
        start = rss_mb("VmRSS")
        out = run()
        rise[name] = max(rise[name], rss_mb("VmHWM") - start)
        return out

    for step in range(steps):
        episodes = phase("rollout_mb", lambda step=step: ours.rollout(step))
        phase("update_mb", lambda episodes=episodes: ours.update(episodes))
    peak = max(peak, rss_mb("VmHWM"))
    result = {"micro_batch": ours.config.micro_batch, "peak_mb": peak, "end_mb": rss_mb("VmRSS")}
    print(json.dumps(result | rise))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=2, help="training steps per process")
    parser.add_argument("--tasks-per-step", type=int, default=2, help="prompts per step")
    parser.add_argument("--micro-batch", type=int, help="completions per backward pass")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.tasks_per_step, args.threads, args.micro_batch)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = []
    for agents in args.agents:
        command = [sys.executable, __file__, "--worker", str(agents), "--steps", str(args.steps)]
        command += ["--tasks-per-step", str(args.tasks_per_step), "--threads", str(args.threads)]
        if args.micro_batch:
            command += ["--micro-batch", str(args.micro_batch)]
        with console.status(f"{agents} agents: {args.steps} training steps in a fresh process"):
            done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{agents} agents failed:\n{done.stderr[-3000:]}")
        rows.append((agents, json.loads(done.stdout.strip().splitlines()[-1])))

    table = Table(
        title=f"MAGRPO peak memory: `separate` LoRA policies, G=4, 32 new tokens, "
        f"{args.tasks_per_step} prompts per step, {args.steps} steps, SmolLM2-135M, CPU"
    )
    for column in ("agents", "peak RSS MB", "rollout +MB", "update +MB", "RSS at end", "target"):
        table.add_column(column, justify="right")
    for agents, result in rows:
        target = TARGET_MB.get(agents)
        verdict = ("met" if result["peak_mb"] <= target else "NOT met") if target else ""
        table.add_row(
            str(agents),
            f"{result['peak_mb']:.0f}",
            f"{result['rollout_mb']:.0f}",
            f"{result['update_mb']:.0f}",
            f"{result['end_mb']:.0f}",
            f"<= {target}: {verdict}" if target else "-",
        )
    table.caption = (
        "rollout / update +MB: the most one rollout / one update lifted RSS above where it "
        f"started; trainer micro-batch: {rows[0][1]['micro_batch']} completions per backward"
    )
    console.print(table)


if __name__ == "__main__":
    main()
