"""The `marl` command line.

    marl simulate CONFIG [--set key.path=value ...] [--episodes N] [--out DIR]
    marl eval CONFIG [--set key.path=value ...] [--episodes N] [--split train|test] [--ablate]
              [--out DIR]
    marl train CONFIG [--set key.path=value ...] [--steps N] [--out DIR]
    marl train --resume RUN_DIR
    marl experiment EXPERIMENT [--set key.path=value ...]
    marl experiment --resume EXP_DIR
    marl transcripts RUN_DIR --episode K [--phase PHASE] [--step N] [--full]
    marl report RUN_DIR [RUN_DIR ...] [--out PATH]
    marl report EXP_DIR
    marl export RUN_DIR --csv [--out DIR]

A config error prints every bad field by its path and exits with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.models import ModelLoadError
from marl.assembly import load_config
from marl.core.config import ConfigError, RunConfig
from marl.trackers import TrackerError

if TYPE_CHECKING:
    from marl.commands.train import Training, TrainingPhase

console = Console()
errors = Console(stderr=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="marl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate", help="play a team and its single-agent baseline")
    sim.add_argument("config", help="a run config YAML file (see configs/)")
    _config_flags(sim)
    sim.add_argument("--episodes", type=int, help="shorthand for --set run.episodes=N")
    ev = commands.add_parser("eval", help="score the team against each agent alone")
    ev.add_argument("config", help="a run config YAML file (see configs/)")
    _config_flags(ev)
    ev.add_argument("--episodes", type=int, help="shorthand for --set run.episodes=N")
    ev.add_argument(
        "--split",
        choices=("train", "test"),
        help="task split: test = seeds from 1,000,000 (and split: test for scenarios with a "
        "split option); default: the config's tasks, as simulate plays them",
    )
    ev.add_argument(
        "--ablate",
        action="store_true",
        help="also play the team without each agent in turn (removed, or a no-op stand-in "
        "where the scenario needs it) and print each agent's contribution",
    )
    train = commands.add_parser("train", help="train the team (MAGRPO or a baseline)")
    train.add_argument("config", nargs="?", help="a run config YAML file with a train: section")
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint"
    )
    train.add_argument("--steps", type=int, help="shorthand for --set train.steps=N")
    _config_flags(train)
    exp = commands.add_parser(
        "experiment", help="every arm x seed of an experiment file, as trials on Ray Tune"
    )
    exp.add_argument(
        "experiment", nargs="?", help="an experiment YAML file (see configs/experiments/)"
    )
    exp.add_argument(
        "--resume", metavar="EXP_DIR", help="finish an experiment folder after any stop"
    )
    exp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field of the experiment file, e.g. --set seeds=[0,1]",
    )
    exp.add_argument("--no-progress", action="store_true", help="no progress table")
    tr = commands.add_parser("transcripts", help="print one episode of a run folder")
    tr.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (simulate, eval or train)")
    tr.add_argument("--episode", type=int, required=True, metavar="K", help="0-based index")
    tr.add_argument("--phase", help="count K within this phase (team, single:<id>, ...)")
    tr.add_argument("--step", type=int, help="training runs: the step (default: the newest)")
    tr.add_argument("--full", action="store_true", help="observations and messages uncut")
    rep = commands.add_parser("report", help="write report.html for run folders, side by side")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders to report on")
    rep.add_argument(
        "--out",
        metavar="PATH",
        help="write the report here only (a file, or a folder to hold report.html); "
        "default: report.html in each run folder",
    )
    export = commands.add_parser(
        "export", help="a run folder's metrics, evaluations and episodes as CSV files"
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (simulate, eval or train)")
    formats = export.add_mutually_exclusive_group(required=True)
    formats.add_argument(
        "--csv",
        action="store_true",
        help="metrics.csv, evaluations.csv and episodes.csv (the only format so far)",
    )
    export.add_argument("--out", metavar="DIR", help="where to write them; default: RUN_DIR/export")
    args = parser.parse_args(argv)
    if args.command == "export":
        return _export(args.run_dir, args.out)
    if args.command == "transcripts":
        return _transcripts(args)
    if args.command == "report":
        return _report(args.run_dirs, args.out)
    if args.command == "experiment":
        if args.resume and (args.experiment or args.set):
            parser.error("--resume takes the experiment folder only: its experiment.yaml is it")
        if not args.resume and not args.experiment:
            parser.error("experiment needs EXPERIMENT or --resume EXP_DIR")
        return _experiment(args.experiment, args.set, args.resume, not args.no_progress)
    if args.command == "train" and args.resume:
        if args.config or args.set or args.steps is not None or args.out is not None:
            parser.error("--resume takes the run folder only: its config.yaml is the config")
        return _train(None, args.resume, progress=not args.no_progress)
    if args.command == "train" and not args.config:
        parser.error("train needs CONFIG or --resume RUN_DIR")
    try:
        config = load_config(args.config, _overrides(args))
        if args.command == "eval":
            from marl.tasks import split_seeds

            split_seeds(config, args.split)  # a train split reaching the test seeds
            if args.ablate:
                from marl.commands.evaluate import check_ablation

                check_ablation(config)
    except ConfigError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    if args.command == "train":
        if config.train is None or not _has_train_section(args.config):
            errors.print(
                f"[bold red]error:[/] {escape(str(args.config))} has no 'train:' section; "
                "add one (see configs/magrpo_relay.yaml) to use `marl train` (--steps and "
                "--set train.* change that section, they do not make one)",
                soft_wrap=True,
            )
            return 2
        return _train(config, None, progress=not args.no_progress)
    if args.command == "eval":
        return _eval(config, args.split, progress=not args.no_progress, ablate=args.ablate)
    return _simulate(config, progress=not args.no_progress)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set run.episodes=4",
    )
    parser.add_argument("--out", help="shorthand for --set run.output_dir=DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _has_train_section(path: str) -> bool:
    """Whether the config file itself has a ``train:`` mapping: an override such as
    ``--steps 3`` would otherwise make one of defaults for a config never meant to train."""
    from marl.core.config_file import read_config_file

    return isinstance(read_config_file(path).get("train"), dict)


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.set)
    if getattr(args, "steps", None) is not None:
        overrides.append(f"train.steps={args.steps}")
    if getattr(args, "episodes", None) is not None:
        overrides.append(f"run.episodes={args.episodes}")
    if args.out is not None:
        overrides.append(f"run.output_dir={args.out}")
    return overrides


@contextmanager
def _turns_bar(label: str, total: int, progress: bool) -> Iterator[Callable[[int], None]]:
    """A transient progress bar over agent turns; yields the ``on_turns`` callback."""
    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("agent turns"),
        TimeElapsedColumn(),
        console=console,
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("turns", total=total)
        yield lambda n: bar.advance(task, n)


def _workers_note(config: RunConfig, command: str) -> None:
    if config.resources.workers:
        console.print(
            f"[yellow]resources.workers applies to `marl train`; `marl {command}` plays in "
            "this process[/]",
            soft_wrap=True,
        )


def _simulate(config: RunConfig, progress: bool) -> int:
    from marl.commands.phases import turns_expected
    from marl.commands.simulate import simulate

    _workers_note(config, "simulate")
    rollouts = _load_rollouts(config)
    if rollouts is None:
        return 2
    total = turns_expected(config, len(config.team.agents) + 1)
    try:
        with _turns_bar("simulate", total, progress) as on_turns:
            folder, summary = simulate(config, rollouts, on_turns=on_turns)
    except TrackerError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    finally:
        rollouts.close()
    console.print(result_table(summary))
    console.print(f"run folder: [bold]{folder.path}[/]", soft_wrap=True)
    return 0


def _load_rollouts(config: RunConfig):
    """The config's rollouts with their models loaded; ``None`` after printing the one line
    of what only loading finds (the config check found the rest)."""
    from marl.assembly import build_rollouts

    try:
        with console.status("loading models"):
            return build_rollouts(config)
    except ModelLoadError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return None


def _eval(config: RunConfig, split: str | None, progress: bool, ablate: bool = False) -> int:
    from marl.commands.evaluate import evaluate
    from marl.commands.phases import turns_expected

    _workers_note(config, "eval")
    rollouts = _load_rollouts(config)
    if rollouts is None:
        return 2
    n = len(config.team.agents)
    # the team, then each alone, then (at most) the whole team again per ablated agent
    total = turns_expected(config, 2 * n + (n * n if ablate else 0))
    try:
        with _turns_bar("eval", total, progress) as on_turns:
            folder, summary = evaluate(config, rollouts, split, on_turns=on_turns, ablate=ablate)
    except TrackerError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    finally:
        rollouts.close()
    console.print(eval_table(summary))
    console.print(baselines_table(summary))
    if summary.get("decomposition"):
        console.print(decomposition_table(summary))
    console.print(eval_metrics_table(summary))
    if "contribution" in summary:
        console.print(contribution_table(summary))
    console.print(f"run folder: [bold]{folder.path}[/]", soft_wrap=True)
    return 0


def _train(config: RunConfig | None, resume: str | None, progress: bool) -> int:
    """Train under the run folder's lock. The first SIGINT/SIGTERM stops after the step in
    progress with a checkpoint (exit 128 + the signal), a second aborts at once; a failed
    write (a full disk) stops the run with exit 1, earlier checkpoints intact."""
    import signal

    from agents.policies import precision_warning
    from marl.commands.train import StopOnSignal, resume_training, start_training
    from marl.core.files import InputFileError
    from marl.core.runlock import RunFolderInUse, RunLock
    from marl.core.runs import RunFolder, WriteError, writing
    from marl.rollouts.ray_workers import WorkerLost

    if resume and not (Path(resume) / "config.yaml").is_file():
        errors.print(
            f"[bold red]error:[/] {escape(str(resume))} is not a run folder (no config.yaml)"
        )
        return 2

    def on_signal(signum: int) -> None:
        again = "press Ctrl-C" if signum == signal.SIGINT else "send it"
        errors.print(
            f"[yellow]{signal.Signals(signum).name}: stopping after the step in progress, "
            f"with a checkpoint; {again} again to stop at once[/]",
            soft_wrap=True,
        )

    def last_checkpoint() -> str:
        if training is None and resume:  # stopped while loading: nothing trained or saved
            return "its checkpoints are as they were"
        if training is None or training.checkpoint_step is None:
            return "no checkpoint has been written yet"
        return f"the last good checkpoint is step {training.checkpoint_step}"

    folder: RunFolder | None = None
    training: Training | None = None
    with StopOnSignal(on_signal) as stop:
        try:
            if resume:
                folder = RunFolder(resume)
            else:
                with writing(Path(config.run.output_dir)):
                    folder = RunFolder.create(config.run.output_dir, config.name)
            with RunLock(folder.path) as lock:
                if lock.notice:
                    console.print(f"[yellow]{escape(lock.notice)}[/]", soft_wrap=True)
                with console.status("loading models"):
                    if resume:
                        training, notes = resume_training(folder.path)
                    else:
                        training, notes = start_training(config, folder), []
                if warning := precision_warning(training.tc.precision):
                    notes.append(warning)
                for note in notes:
                    console.print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
                _train_steps(training, progress, stop.requested)
        except (RunFolderInUse, TrackerError) as err:
            errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
            return 2
        except (ConfigError, InputFileError, ModelLoadError) as err:  # a damaged run folder,
            # found on resume; a model or checkpoint that does not load
            where = f"cannot resume {resume}: " if resume else ""
            errors.print(f"[bold red]error:[/] {escape(where + str(err))}", soft_wrap=True)
            return 2
        except WriteError as err:
            what = "no space left on device" if err.disk_full else err.strerror or "write failed"
            errors.print(
                f"[bold red]error:[/] {what} while writing {escape(str(err.filename))}; "
                f"{last_checkpoint()}",
                soft_wrap=True,
            )
            return 1
        except KeyboardInterrupt:
            where = f"; resume with: marl train --resume {folder.path}" if folder else ""
            errors.print(f"aborted; {last_checkpoint()}{escape(where)}", soft_wrap=True)
            return 128 + (stop.signum or signal.SIGINT)
        except WorkerLost as err:
            where = f"; resume with: marl train --resume {folder.path}" if folder else ""
            errors.print(
                f"[bold red]error:[/] {escape(str(err))}; {last_checkpoint()}{escape(where)}",
                soft_wrap=True,
            )
            return 1
        finally:
            if training is not None:
                training.close()
    if stop.signum is not None and not training.finished:
        errors.print(
            f"interrupted after step {training.step}; "
            f"resume with: marl train --resume {escape(str(training.folder.path))}",
            soft_wrap=True,
        )
        return 128 + stop.signum
    return 0


def _experiment(path: str | None, overrides: list[str], resume: str | None, progress: bool) -> int:
    """Run or finish an experiment; then its summary.json, report.html and tables. Exit 1
    when a trial failed (each said with its error), 130 on Ctrl-C (resume to finish)."""
    from rich.live import Live

    from analysis.experiment import write_summary_and_report
    from marl.commands.experiment import Experiment, create, read_experiment, run_experiment
    from marl.core.files import InputFileError

    try:
        if resume:
            experiment = Experiment.load(resume)
        else:
            config = read_experiment(path, overrides)
            experiment = create(config)
    except (ConfigError, InputFileError) as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    console.print(
        f"experiment folder: [bold]{escape(str(experiment.path))}[/] "
        f"({len(experiment.trials)} trials)",
        soft_wrap=True,
    )
    live = Live(console=console, refresh_per_second=2, transient=False)
    try:
        if progress:
            live.start()
        progress_state = run_experiment(
            experiment, resume=bool(resume), on_change=lambda p: live.update(progress_table(p))
        )
    except ConfigError as err:
        live.stop()
        errors.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        live.stop()
        errors.print(
            f"stopped; finish with: marl experiment --resume {escape(str(experiment.path))}",
            soft_wrap=True,
        )
        return 130
    finally:
        live.stop()
    summary, page = write_summary_and_report(experiment.path)
    console.print(experiment_table(summary))
    if summary["differences"]:
        console.print(differences_table(summary))
    failed = {k: v for k, v in progress_state.trials.items() if v.status == "failed"}
    for trial_id, state in failed.items():
        errors.print(
            f"[bold red]trial {escape(trial_id)} failed:[/] {escape(state.error or '')}",
            soft_wrap=True,
        )
    unfinished = [k for k, v in progress_state.trials.items() if v.status not in ("done", "failed")]
    if unfinished:
        errors.print(f"not finished: {', '.join(unfinished)}", soft_wrap=True)
    console.print(f"report: [bold]{escape(str(page))}[/]", soft_wrap=True)
    if failed or unfinished:
        errors.print(
            f"finish or retry with: marl experiment --resume {escape(str(experiment.path))}",
            soft_wrap=True,
        )
        return 1
    return 0


def progress_table(progress) -> Table:
    """Trials done, running, failed; each arm's trials and latest held-out score."""
    counts = progress.counts()
    elapsed = time.monotonic() - progress.started
    table = Table(
        title=f"experiment: {counts['done']} done, {counts['running']} running, "
        f"{counts['failed']} failed, {counts['pending']} pending ({elapsed / 60:.0f} min)"
    )
    for name in ("arm", "trials (done/running/failed)", "latest step", "latest held-out"):
        table.add_column(name, justify="left" if name == "arm" else "right")
    latest = progress.latest_by_arm()
    for arm in dict.fromkeys(s.arm for s in progress.trials.values()):
        states = [s for s in progress.trials.values() if s.arm == arm]
        done = sum(s.status == "done" for s in states)
        running = sum(s.status == "running" for s in states)
        failed = sum(s.status == "failed" for s in states)
        score = latest[arm]
        table.add_row(
            arm,
            f"{done}/{running}/{failed} of {len(states)}",
            str(max(s.step for s in states)),
            "-" if score is None else f"{score:.0%}",
        )
    return table


def experiment_table(summary: dict) -> Table:
    from analysis.experiment import FINAL_HEADER, INTERVAL, final_rows

    table = Table(title=f"{summary['name']}: final held-out scores, across seeds")
    for k, name in enumerate(FINAL_HEADER):
        table.add_column(name, justify="left" if k == 0 else "right", overflow="fold")
    for row in final_rows(summary):
        table.add_row(*(escape(c) for c in row))
    table.caption = INTERVAL
    return table


def differences_table(summary: dict) -> Table:
    from analysis.experiment import DIFFERENCE_HEADER, difference_rows

    table = Table(title="differences of the final team score, paired by seed")
    for k, name in enumerate(DIFFERENCE_HEADER):
        table.add_column(name, justify="left" if k == 0 else "right", overflow="fold")
    for row in difference_rows(summary):
        table.add_row(*(escape(c) for c in row))
    return table


class TrainBar:
    """`marl train`'s progress bar: steps done of ``train.steps``, the latest mean reward, the
    held-out team score (the newest, with step 0's, the untrained team's, beside it once
    known), tokens/s, time, and what the loop is doing now (a ``TrainingPhase``: rollouts,
    update, which evaluation and how many of its episodes, baselines, checkpoint)."""

    def __init__(self, total: int, completed: int, out: Console, disable: bool = False):
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps  reward {task.fields[reward]}  eval {task.fields[eval]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[phase]}"),
            console=out,
            disable=disable,
        )
        self.task = self.progress.add_task(
            "steps", total=total, completed=completed, reward="-", eval="-", tps="-", phase=""
        )

    def __enter__(self) -> TrainBar:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def show_phase(self, phase: TrainingPhase | str, eval_scores: dict[int, float]) -> None:
        """What the loop has begun, and the held-out scores so far."""
        self.progress.update(self.task, phase=escape(str(phase)), eval=eval_text(eval_scores))

    def show_step(self, record: dict, eval_scores: dict[int, float]) -> None:
        """A finished step's metrics line."""
        self.progress.update(
            self.task,
            completed=record["step"],
            reward=f"{record['reward_mean']:.2f}",
            tps=f"{record['tokens_per_s']:.0f}",
            eval=eval_text(eval_scores),
        )


def eval_text(eval_scores: dict[int, float]) -> str:
    """The newest held-out team score, and step 0's beside it: ``35% (step 0: 20%)``."""
    if not eval_scores:
        return "-"
    newest = max(eval_scores)
    text = f"{eval_scores[newest]:.0%}"
    if newest == 0:
        return f"{text} (step 0)"
    if 0 in eval_scores:
        return f"{text} (step 0: {eval_scores[0]:.0%})"
    return text


def _train_steps(training: Training, progress: bool, stop: Callable[[], bool]) -> None:
    tc = training.tc
    with TrainBar(tc.steps, training.step, console, disable=not progress) as bar:
        last = training.run(
            on_step=lambda record: bar.show_step(record, training.eval_scores),
            stop=stop,
            on_phase=(lambda p: bar.show_phase(p, training.eval_scores)) if progress else None,
        )
        bar.show_phase("finished" if training.finished else "stopped", training.eval_scores)
    metrics = training.folder.path / "metrics.jsonl"
    if metrics.exists():
        console.print(train_table(metrics))
    if last:
        budget = ""
        if tc.max_tokens is not None and last["tokens_total"] >= tc.max_tokens:
            budget = f": the budget of {tc.max_tokens:,} generated tokens is spent"
        console.print(f"finished step {last['step']} of {tc.steps}{budget}")
    console.print(f"run folder: [bold]{training.folder.path}[/]", soft_wrap=True)


def train_table(metrics_path: Path) -> Table:
    """Reward and held-out evaluation over the run, from its metrics file."""
    lines = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    table = Table(title="training")
    for name in ("step", "reward", "flat groups", "eval team", "eval best single", "team gain"):
        table.add_column(name, justify="right")
    for line in lines:
        if "eval/team" not in line and line is not lines[-1]:
            continue
        table.add_row(
            str(line["step"]),
            f"{line['reward_mean']:.3f}" if "reward_mean" in line else "",
            f"{line['flat_group_fraction']:.0%}" if "flat_group_fraction" in line else "",
            f"{line['eval/team']:.0%}" if "eval/team" in line else "",
            f"{line['eval/best_single']:.0%}" if "eval/best_single" in line else "",
            f"{line['eval/team_gain']:+.0%}" if "eval/team_gain" in line else "",
        )
    return table


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


def eval_table(summary: dict) -> Table:
    """One row per phase (the team, each agent alone) and the team gain."""
    phases = summary["phases"]
    best = summary["best_single"]
    table = Table(
        title=f"{summary['name']} on {summary['scenario']}: the team and each agent alone"
    )
    for name in ("who", "score", "consensus", "msgs/ep", "tokens/ep", "seconds"):
        table.add_column(name, justify="left" if name == "who" else "right", no_wrap=True)
    phases = {k: v for k, v in phases.items() if k == "team" or k.startswith("single:")}
    for name, phase in phases.items():
        who = (
            f"team of {len(phase['agents'])}" if name == "team" else f"alone: {phase['agents'][0]}"
        )
        if name == f"single:{best['id']}":
            who += " (best)"
        table.add_row(
            who,
            f"{phase['score']:.1%}",
            f"{phase['consensus']:.0%}" if "consensus" in phase else "-",
            f"{phase.get('messages', 0):.1f}",
            f"{phase['completion_tokens']:.0f}",
            f"{phase['seconds']:.0f}",
            end_section=name == "team" or name == list(phases)[-1],
        )
    table.add_row("team gain", f"{summary['team_gain']:+.1%}", "", "", "", "")
    split = summary["split"]
    table.caption = (
        f"{len(summary['seeds'])} tasks, the same seeds for every row"
        + (f"; split {split['name']}: {split['how']}" if split else "")
        + f". team gain = team - best single ({best['id']}, {best['score']:.1%}); "
        f"vs the mean single ({summary['mean_single']:.1%}): {summary['team_gain_vs_mean']:+.1%}"
    )
    return table


BASELINE_NAMES = {
    "vote": "vote: the team's round-1 answers, majority",
    "self_consistency": "self-consistency: one agent, k answers, majority",
    "solo_rounds": "solo rounds: one agent refines alone",
}


def baselines_table(summary: dict) -> Table:
    """The team against baselines of the same tasks: what talking, voting and equal compute
    account for (``marl.commands.baselines``)."""
    from analysis.report import gain_interval, signed_points

    team = summary["phases"]["team"]
    table = Table(
        title=f"the team ({team['score']:.1%}, {team['completion_tokens']:.0f} tokens/ep) "
        "against baselines on the same tasks"
    )
    for name in ("baseline", "score", "tokens/ep", "team gain", "95% CI (pts)"):
        table.add_column(name, justify="left" if name == "baseline" else "right", overflow="fold")
    for key, row in summary.get("baselines", {}).items():
        label = BASELINE_NAMES.get(key, key)
        if "not_applicable" in row:
            table.add_row(label, f"not applicable: {row['not_applicable']}", "", "", "")
            continue
        if "k" in row:
            label += f" (k={row['k']})"
        table.add_row(
            label,
            f"{row['score']:.1%}",
            f"{row['tokens_per_episode']:.0f}",
            signed_points(row["gain"]),
            gain_interval(row),
        )
    table.caption = (
        "team gain = team score - baseline score, per task; interval: paired bootstrap over "
        "tasks (2,000 resamples, none from fewer than 10 tasks)"
    )
    return table


DECOMPOSITION_NAMES = {
    "team_vs_mean_member": "team - mean member (the whole gain)",
    "voting": "vote - mean member (what voting adds)",
    "talking": "team - vote (what talking adds)",
    "equal_compute": "team - self-consistency (the gain at equal compute)",
}


def decomposition_table(summary: dict) -> Table:
    """The team's gain over its mean member split into voting and talking."""
    from analysis.report import gain_interval, signed_points

    table = Table(title="where the team's gain comes from (paired over the same tasks)")
    for name in ("part", "gain", "95% CI (pts)"):
        table.add_column(name, justify="left" if name == "part" else "right", overflow="fold")
    for key, row in summary["decomposition"].items():
        name = DECOMPOSITION_NAMES.get(key, key)
        table.add_row(name, signed_points(row["gain"]), gain_interval(row))
    return table


def eval_metrics_table(summary: dict) -> Table:
    """Every numeric metric of the scenario, one row each, a column for the team and each
    agent alone (ablations are in the contribution table)."""
    phases = {k: v for k, v in summary["phases"].items() if k == "team" or k.startswith("single:")}
    shown = ("score", "episodes", "seconds")  # already in eval_table, or not a metric
    keys = [
        key
        for key, value in phases["team"].items()
        if key not in shown and isinstance(value, int | float) and not isinstance(value, bool)
    ]
    table = Table(title="metrics, mean per episode (all in summary.json)")
    table.add_column("metric", no_wrap=True)
    for name in phases:
        table.add_column(name.removeprefix("single:"), justify="right")
    for key in keys:
        table.add_row(key, *(_number(phase.get(key)) for phase in phases.values()))
    return table


def contribution_table(summary: dict) -> Table:
    """Leave-one-out: the team's score without each agent, and what that agent adds."""
    team = summary["phases"]["team"]["score"]
    table = Table(title=f"contribution: the team ({team:.1%}) without each agent")
    for name in ("agent", "method", "score without", "marginal"):
        table.add_column(name, justify="left" if name in ("agent", "method") else "right")
    table.add_column("why", overflow="fold")
    for agent, c in summary["contribution"].items():
        table.add_row(
            agent, c["method"], f"{c['score_without']:.1%}", f"{c['marginal']:+.1%}", c["why"]
        )
    table.caption = (
        "marginal = team score - score without the agent, on the same seeds; removed: it and "
        "its edges are dropped; noop: it stays in its role but says nothing"
    )
    return table


def _transcripts(args: argparse.Namespace) -> int:

    from analysis.episode_view import EpisodeChoiceError, render_episode, select_episode
    from analysis.rundata import RunFolderError, load_run

    try:
        run = load_run(args.run_dir)
    except RunFolderError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    for problem in run.problems:
        console.print(f"[yellow]note:[/] {escape(problem)}", soft_wrap=True)
    try:
        record, where = select_episode(run, args.episode, args.phase, args.step)
    except EpisodeChoiceError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    console.print(render_episode(record, where, full=args.full))
    return 0


def _export(run_dir: str, out: str | None) -> int:
    """Write a run folder's CSV files (``marl.commands.export``); exit 2 for a folder that
    is not a run folder or an --out that cannot be written, 1 for a failed write."""
    from analysis.experiment import is_experiment
    from analysis.rundata import RunFolderError, load_run
    from marl.commands.export import export_csv
    from marl.core.runs import WriteError, output_dir_problem

    if is_experiment(run_dir):
        errors.print(
            f"[bold red]error:[/] {escape(run_dir)} is an experiment folder; export the run "
            "folder of one of its trials (under trials/)",
            soft_wrap=True,
        )
        return 2
    target = Path(out) if out is not None else Path(run_dir) / "export"
    try:
        run = load_run(run_dir)
    except RunFolderError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    if target.exists() and not target.is_dir():
        where: str | None = f"{target} is not a folder"
    else:
        where = output_dir_problem(target)  # a parent that is a file, no permission, /proc
    if where is not None:
        errors.print(
            f"[bold red]error:[/] cannot write the export: {escape(where)}", soft_wrap=True
        )
        return 2
    for problem in run.problems:
        errors.print(f"[yellow]warning:[/] {escape(problem)}", soft_wrap=True)
    try:
        written = export_csv(run, target)
    except WriteError as err:
        what = "no space left on device" if err.disk_full else err.strerror or "write failed"
        errors.print(
            f"[bold red]error:[/] {what} while writing {escape(str(err.filename))}",
            soft_wrap=True,
        )
        return 1
    for path, rows in written:
        console.print(f"{escape(str(path))}: {rows:,} row{'s' * (rows != 1)}", soft_wrap=True)
    return 0


def _report(run_dirs: Sequence[str], out: str | None) -> int:
    from analysis.experiment import ExperimentFolderError, is_experiment

    experiments = [p for p in run_dirs if is_experiment(p)]
    if experiments:
        if len(experiments) != len(run_dirs) or out is not None:
            errors.print(
                "[bold red]error:[/] an experiment folder is reported on its own (its "
                "report.html and summary.json go in it): one folder, no --out"
            )
            return 2
        from analysis.experiment import write_summary_and_report

        for path in experiments:
            try:
                summary, page = write_summary_and_report(path)
            except ExperimentFolderError as err:
                errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
                return 2
            console.print(experiment_table(summary))
            if summary["differences"]:
                console.print(differences_table(summary))
            for problem in summary["problems"]:
                console.print(f"[yellow]skipped:[/] {escape(problem)}", soft_wrap=True)
            console.print(f"report: [bold]{escape(str(page))}[/]", soft_wrap=True)
        return 0

    from analysis.report import KEY_COLUMNS, analyse_runs, key_row, render, report_problems
    from analysis.rundata import RunFolderError, load_run

    try:
        runs = [load_run(path) for path in run_dirs]
    except RunFolderError as err:
        errors.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
        return 2
    from marl.core.runs import output_dir_problem

    if out is None:
        targets = [run.path / "report.html" for run in runs]
    elif (where := output_dir_problem(Path(out).parent)) is not None:  # NUL, too long, ...
        errors.print(f"[bold red]error:[/] cannot write the report: {escape(where)}")
        return 2
    else:
        target = Path(out)
        targets = [target / "report.html" if target.is_dir() else target]
    for target in targets:  # before the analysis: a bad --out is said at once
        if target.is_dir() or (where := output_dir_problem(target.parent)) is not None:
            why = f"{target} is a folder" if target.is_dir() else where
            errors.print(f"[bold red]error:[/] cannot write the report: {escape(why)}")
            return 2
    with console.status("analysing runs"):
        summaries = analyse_runs(runs)
        page = render(summaries)
    # one column per run, so that runs compare side by side in a terminal's width
    rows = [key_row(summary) for summary in summaries]
    table = Table(title="key results")
    table.add_column("")
    for row in rows:
        table.add_column(escape(row["run"]), justify="right", overflow="fold")
    for name in KEY_COLUMNS[1:]:
        table.add_row(name, *(escape(row[name]) for row in rows))
    console.print(table)
    for problem in report_problems(summaries):
        console.print(f"[yellow]skipped:[/] {escape(problem)}", soft_wrap=True)
    for target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(page)
        except OSError as err:
            errors.print(
                f"[bold red]error:[/] cannot write the report to {escape(str(target))}: "
                f"{escape(err.strerror or str(err))}"
            )
            return 1 if err.errno in (errno.ENOSPC, errno.EDQUOT) else 2
        console.print(f"report: [bold]{escape(str(target))}[/]", soft_wrap=True)
    return 0


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    sys.exit(main())
