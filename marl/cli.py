"""The `marl` command line.

    marl simulate CONFIG [--set key.path=value ...] [--episodes N] [--out DIR]

A config error prints every bad field by its path and exits with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marl.config import ConfigError, RunConfig, load_config

console = Console()
errors = Console(stderr=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="marl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate", help="play a team and its single-agent baseline")
    sim.add_argument("config", help="a run config YAML file (see configs/)")
    sim.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set run.episodes=4",
    )
    sim.add_argument("--episodes", type=int, help="shorthand for --set run.episodes=N")
    sim.add_argument("--out", help="shorthand for --set run.output_dir=DIR")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, _overrides(args))
    except ConfigError as err:
        errors.print(f"[bold red]error:[/] {err}", highlight=False, markup=True)
        return 2
    return _simulate(config, progress=not args.no_progress)


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.set)
    if args.episodes is not None:
        overrides.append(f"run.episodes={args.episodes}")
    if args.out is not None:
        overrides.append(f"run.output_dir={args.out}")
    return overrides


def _simulate(config: RunConfig, progress: bool) -> int:
    from marl.simulate import build_team, simulate, turns_expected

    with console.status("loading models"):
        team = build_team(config)
    total = turns_expected(config, len(config.team.agents) + 1)
    with Progress(
        TextColumn("[bold]simulate"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("agent turns"),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("turns", total=total)
        folder, summary = simulate(config, team, on_turns=lambda n: bar.advance(task, n))
    console.print(result_table(summary))
    console.print(f"run folder: [bold]{folder.path}[/]", soft_wrap=True)
    return 0


def result_table(summary: dict) -> Table:
    """The team against its single-agent baseline: score by round, consensus, cost."""
    phases = summary["phases"]
    rounds = max(len(p["score_by_round"]) for p in phases.values())
    table = Table(title=f"{summary['name']} on {summary['scenario']}: score by round")
    table.add_column("who", no_wrap=True)
    for k in range(rounds):
        table.add_column(
            f"r{k + 1}" + (" (final)" if k == rounds - 1 and k else ""), justify="right"
        )
    for name in ("consensus", "msgs/ep", "tokens/ep", "seconds"):
        table.add_column(name, justify="right")
    for name, phase in (("single", phases["single"]), ("team", phases["team"])):
        by_round = [f"{s:.0%}" for s in phase["score_by_round"]]
        by_round += [""] * (rounds - len(by_round))
        table.add_row(
            f"single: {phase['agents'][0]}"
            if name == "single"
            else f"team of {len(phase['agents'])}",
            *by_round,
            f"{phase['consensus']:.0%}" if "consensus" in phase else "-",
            f"{phase.get('messages', 0):.1f}",
            f"{phase['completion_tokens']:.0f}",
            f"{phase['seconds']:.0f}",
        )
    episodes = phases["team"]["episodes"]
    table.caption = (
        f"{episodes} tasks, same seeds for both rows; "
        f"team gain at the final round: {summary['team_gain']:+.0%}"
    )
    return table


if __name__ == "__main__":
    sys.exit(main())
