"""Rollout throughput: the batched engine against one agent and one episode at a time.

Plays the demo debate team (3 agents, 2 rounds) for 8 episodes on the embedded
SmolLM2-135M-Instruct, twice in one run: once with every live agent of every episode in one
backend call per round (``batch_size=64``), once with one request per call
(``batch_size=1``). Per-request seeds make both produce the very same tokens, which is
checked, so the ratio compares equal work. Prints a table of tokens/s and the ratio.

    .venv/bin/python benchmarks/rollout_throughput.py [--episodes 8] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marl.config import load_config
from marl.rollout import run_episodes
from marl.simulate import build_team, env_factory

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "debate.yaml"))
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode; medians reported")
    args = parser.parse_args()
    console = Console()
    config = load_config(args.config, [f"run.episodes={args.episodes}"])
    with console.status("loading the model"):
        team = build_team(config)
    make_env = env_factory(config, config.team.ids)
    seeds = list(range(args.episodes))
    run_episodes(make_env, team, seeds[:1], batch_size=64)  # warm-up: first-call allocations

    results: dict[str, list[tuple[int, float]]] = {"batched (64)": [], "one at a time": []}
    tokens_seen = {}
    for _ in range(args.repeats):
        for mode, batch_size in (("batched (64)", 64), ("one at a time", 1)):
            with console.status(
                f"{mode}: {args.episodes} episodes x {len(config.team.ids)} agents"
            ):
                start = time.perf_counter()
                episodes = run_episodes(make_env, team, seeds, batch_size=batch_size)
                seconds = time.perf_counter() - start
            tokens = [t.token_ids for e in episodes for t in e.turns]
            tokens_seen[mode] = tokens
            results[mode].append((sum(map(len, tokens)), seconds))
    same = tokens_seen["batched (64)"] == tokens_seen["one at a time"]

    table = Table(
        title=f"rollout throughput: {len(config.team.ids)} agents x {args.episodes} "
        f"episodes x {config.scenario_options().rounds} rounds, SmolLM2-135M, CPU"
    )
    for column in ("mode", "completion tokens", "seconds (median)", "tokens/s", "speed-up"):
        table.add_column(column, justify="right")
    rate = {}
    for mode, runs in results.items():
        seconds = statistics.median(s for _, s in runs)
        rate[mode] = runs[0][0] / seconds
    for mode, runs in results.items():
        seconds = statistics.median(s for _, s in runs)
        table.add_row(
            mode,
            str(runs[0][0]),
            f"{seconds:.1f}",
            f"{rate[mode]:.1f}",
            f"{rate[mode] / rate['one at a time']:.2f}x",
        )
    table.caption = f"identical tokens in both modes: {same}; repeats: {args.repeats}"
    console.print(table)


if __name__ == "__main__":
    main()
