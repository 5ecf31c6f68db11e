"""Ray scaling: training rollouts in 1 and 2 Ray workers against this process, and the cost
of a weight push (LoRA adapters vs full weights).

Rollouts: one training step's groups of a recipe (default `configs/magrpo_referential.yaml`:
a SmolLM2-135M speaker and listener, 2 rounds) for ``--tasks`` tasks x ``group_size``
episodes, played (a) in this process with every core, (b) by 1 worker, (c) by 2 workers
(one CPU and one torch thread each). Each row is the median of ``--repeats`` calls after
one warm-up call; the workers already hold the weights. Sampling seeds depend on the task,
step and sample only, so every row plays the same tasks; the tokens each produced are
shown, so equal work can be checked.

Weight push: ``RayRollouts.load_weights(wait=True)`` with 2 workers: the state goes into the
object store once and both workers load it, for `separate` (LoRA adapters) and
`separate_full` (each agent's whole model).

    .venv/bin/python benchmarks/ray_scaling.py [--tasks 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marl.assembly import build_policies, build_rollouts, env_factory, load_config, training_agents
from marl.rollouts.engine import collect_groups
from marl.tasks import split_config

ROOT = Path(__file__).resolve().parent.parent


def tokens(groups) -> int:
    return sum(len(t.token_ids) for g in groups for r in g.rollouts for t in r.turns)


def episodes(groups) -> int:
    return sum(len(g.rollouts) for g in groups if g.round == 0)


def timed(call, repeats: int) -> tuple[float, int, int]:
    """Median seconds of ``call()`` over ``repeats`` after one warm-up; episodes, tokens."""
    groups = call()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        groups = call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), episodes(groups), tokens(groups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "magrpo_referential.yaml"))
    parser.add_argument("--tasks", type=int, default=8, help="tasks per rollout call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=5, help="weight pushes timed per kind")
    args = parser.parse_args()
    console = Console()
    config = load_config(args.config, [f"train.tasks_per_step={args.tasks}"])
    agents = training_agents(config)
    seeds = list(range(args.tasks))

    rows = []
    policies = build_policies(config, agents, reference=False)
    make_env = env_factory(split_config(config, "train")[0], agents)
    with console.status("in this process"):
        rows.append(
            (
                "this process (all cores)",
                *timed(
                    lambda: collect_groups(
                        make_env, policies.team, config.train, seeds, 0, config.run.batch_size
                    ),
                    args.repeats,
                ),
            )
        )
    for n in (1, 2):
        scaled = config.model_copy(deep=True)
        scaled.resources.workers = n
        with console.status(f"{n} Ray worker(s)"):
            workers = build_rollouts(scaled, policies)  # pushes the weights of step 0
            try:
                workers.load_weights(0, wait=True)
                rows.append(
                    (
                        f"{n} Ray worker{'s' if n > 1 else ''}",
                        *timed(
                            lambda w=workers: w.groups(make_env, seeds, 0, config.train),
                            args.repeats,
                        ),
                    )
                )
            finally:
                workers.close()

    table = Table(
        title=f"training rollouts on Ray: {args.tasks} tasks x G={config.train.group_size}, "
        f"{config.scenario.name}, SmolLM2-135M, CPU (median of {args.repeats})"
    )
    for column in ("where", "episodes", "tokens", "seconds", "episodes/s", "vs 1 worker"):
        table.add_column(column, justify="right")
    one = next(r for r in rows if r[0] == "1 Ray worker")
    for name, seconds, n_episodes, n_tokens in rows:
        table.add_row(
            name,
            str(n_episodes),
            str(n_tokens),
            f"{seconds:.1f}",
            f"{n_episodes / seconds:.2f}",
            f"{one[1] / seconds:.2f}x",
        )
    console.print(table)

    push_rows = []
    for kind in ("separate", "separate_full"):
        pushed = config.model_copy(deep=True)
        pushed.train.policy = kind
        pushed.resources.workers = 2
        with console.status(f"weight push: {kind}"):
            source = build_policies(pushed, agents, reference=False)
            size = sum(t.numel() * t.element_size() for t in source.state_dict().values())
            workers = build_rollouts(pushed, source)
            try:
                workers.load_weights(0, wait=True)
                seconds = []
                for version in range(1, args.pushes + 1):
                    start = time.perf_counter()
                    workers.load_weights(version, wait=True)
                    seconds.append(time.perf_counter() - start)
            finally:
                workers.close()
            del source
        push_rows.append((kind, size, statistics.median(seconds)))
    table = Table(title=f"weight push to 2 workers (median of {args.pushes})")
    for column in ("policies", "pushed", "seconds", "vs LoRA"):
        table.add_column(column, justify="right")
    for kind, size, seconds in push_rows:
        table.add_row(
            kind, f"{size / 2**20:.1f} MiB", f"{seconds:.3f}", f"{seconds / push_rows[0][2]:.1f}x"
        )
    console.print(table)


if __name__ == "__main__":
    main()
