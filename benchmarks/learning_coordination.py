"""Learning result: MAGRPO on a coordination game against single-agent GRPO, same tokens.

Trains a recipe (default `configs/magrpo_referential.yaml`: a SmolLM2-135M speaker and
listener, a LoRA adapter each) with MAGRPO, and the same recipe with `algorithm: grpo`
(the first agent alone on the single-agent version of the task), each until it has
generated ``--tokens`` completion tokens or ``--minutes`` have passed. Both run at once,
one CPU thread each, or with ``--sequential`` one after the other on two threads (GRPO
then stops at the tokens MAGRPO generated). Held-out success is measured before training
(step 0), every ``eval_every`` steps and at the end.

    .venv/bin/python benchmarks/learning_coordination.py [--config configs/magrpo_relay.yaml]
        [--tokens 60000] [--minutes 30]

Prints a table (held-out success before and after, tokens, steps, minutes) and writes
`learning_curve.png` (held-out success and training success against generated tokens).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


def train(
    config_path: str,
    algorithm: str,
    tokens: int,
    minutes: float,
    out: str,
    overrides: list[str],
    queue,
    threads: int = 1,
) -> None:
    import torch

    torch.set_num_threads(threads)
    from marl.assembly import load_config
    from marl.commands.train import start_training

    config = load_config(
        config_path, [f"train.algorithm={algorithm}", f"run.output_dir={out}", *overrides]
    )
    config.name = f"{algorithm}_{config.scenario.name}"
    training = start_training(config)
    start = time.perf_counter()
    used = 0
    record: dict = {}
    if config.train.eval_every:
        training.folder.log_metrics({"step": 0, **training.evaluate()})
    while (
        used < tokens
        and time.perf_counter() - start < minutes * 60
        and training.step < config.train.steps
    ):
        record = training.train_step()
        used += record["tokens"]
    if "eval/team" not in record:  # always end on a held-out measurement
        training.folder.log_metrics({"step": training.step, **training.evaluate()})
    training.save()
    queue.put(
        (
            algorithm,
            str(training.folder.path),
            used,
            training.step,
            (time.perf_counter() - start) / 60,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "magrpo_referential.yaml"))
    parser.add_argument(
        "--tokens", type=int, default=150_000, help="generated-token budget per method"
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock cap per method")
    parser.add_argument("--out", default=str(ROOT / "runs" / "learning"))
    parser.add_argument("--set", action="append", default=[], help="config override for both")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="MAGRPO first on both cores, then GRPO until it has MAGRPO's tokens",
    )
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    results = {}
    if args.sequential:  # MAGRPO with every core, then GRPO on the tokens MAGRPO used
        budget = args.tokens
        for alg in ("magrpo", "grpo"):
            p = ctx.Process(
                target=train,
                args=(args.config, alg, budget, args.minutes, args.out, args.set, queue, 2),
            )
            p.start()
            alg, folder, used, steps, minutes = queue.get()
            p.join()
            results[alg] = (Path(folder), used, steps, minutes)
            budget = min(budget, used)
    else:
        procs = [
            ctx.Process(
                target=train,
                args=(args.config, alg, args.tokens, args.minutes, args.out, args.set, queue),
            )
            for alg in ("magrpo", "grpo")
        ]
        for p in procs:
            p.start()
        for _ in procs:
            alg, folder, used, steps, minutes = queue.get()
            results[alg] = (Path(folder), used, steps, minutes)
        for p in procs:
            p.join()

    from analysis.plots import learning_curves, read_metrics

    table = Table(
        title=f"MAGRPO vs single-agent GRPO on {Path(args.config).name}, SmolLM2-135M, CPU"
    )
    for column in (
        "method",
        "held-out before",
        "held-out after",
        "change",
        "tokens",
        "steps",
        "minutes",
    ):
        table.add_column(column, justify="right")
    for alg, (folder, used, steps, minutes) in results.items():
        evals = [line["eval/team"] for line in read_metrics(folder) if "eval/team" in line]
        table.add_row(
            "MAGRPO team" if alg == "magrpo" else "GRPO single agent",
            f"{evals[0]:.0%}",
            f"{evals[-1]:.0%}",
            f"{(evals[-1] - evals[0]) * 100:+.0f} pts",
            str(used),
            str(steps),
            f"{minutes:.1f}",
        )
    png = learning_curves(
        [("MAGRPO team", results["magrpo"][0]), ("GRPO single agent", results["grpo"][0])],
        Path(args.out) / "learning_curve.png",
    )
    Console().print(table)
    print(f"curve: {png}")
    print(json.dumps({alg: str(r[0]) for alg, r in results.items()}))


if __name__ == "__main__":
    main()
