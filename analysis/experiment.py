"""An experiment folder (`marl experiment`) read back: per arm, across seeds, with intervals.

``load_experiment(path)`` reads ``experiment.yaml`` and each trial's ``metrics.jsonl``;
``summarise`` gives what ``summary.json`` of the experiment and its report hold:

- per arm, the held-out curve: at each evaluated step, the mean over the arm's seeds of
  ``eval/team`` with its 95% interval, and the mean generated tokens by then;
- per arm, the final table: each trial's last held-out evaluation (team, best single, team
  gain, and the equal-compute gain where the trial scored it), mean and interval;
- the differences asked for (``compare``, default the first arm minus each other) of the
  final team score, paired by seed: arm a's trial of seed s against arm b's of seed s,
  which saw the same training and held-out tasks.

The interval (``INTERVAL``): a Student t interval over seeds, mean +/- t(0.975, n-1) x
sd / sqrt(n), sd the sample standard deviation (n - 1); for a difference the same over the
per-seed differences. It says how much the result moves with the seed (training sampling,
task draws), which is what a reader of a learning table wants; with one seed there is none
(said, not drawn as zero width). Each trial's own held-out score also carries task
sampling noise; that is inside the seed-to-seed spread, not added to it.

A trial folder that is missing, unreadable or never evaluated is listed in ``problems``
and left out of its arm's numbers, which say how many seeds they are over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.rundata import read_metrics_lines
from marl.core.config import ConfigError
from marl.core.config_file import read_config_file
from marl.core.experiment import ExperimentConfig, parse_experiment

EXPERIMENT_FILE = "experiment.yaml"
INTERVAL = (
    "95% t-interval across seeds: mean +/- t(0.975, n-1) * sd / sqrt(n), sd over seeds "
    "(n - 1 in the denominator); differences paired by seed (same training and held-out "
    "tasks), the same interval over the per-seed differences; none from one seed"
)
FINAL_METRICS = (
    ("eval/team", "team"),
    ("eval/best_single", "best single"),
    ("eval/team_gain", "team gain"),
    ("eval/gain_vs/self_consistency", "gain vs self-consistency"),
)


class ExperimentFolderError(ValueError):
    """Not an experiment folder, or its experiment.yaml cannot be read."""


@dataclass
class TrialData:
    id: str
    arm: str
    seed: int
    path: Path
    lines: list[dict[str, Any]]  # training steps' metrics lines, in order

    @property
    def evaluations(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if isinstance(line.get("eval/team"), int | float)]

    @property
    def final(self) -> dict[str, Any] | None:
        evaluations = self.evaluations
        return evaluations[-1] if evaluations else None


@dataclass
class ExperimentData:
    path: Path
    config: ExperimentConfig
    trials: list[TrialData]
    problems: list[str] = field(default_factory=list)

    def arm_trials(self, arm: str) -> list[TrialData]:
        return [t for t in self.trials if t.arm == arm]


def is_experiment(path: str | Path) -> bool:
    return (Path(path) / EXPERIMENT_FILE).is_file()


def load_experiment(path: str | Path) -> ExperimentData:
    path = Path(path)
    if not is_experiment(path):
        raise ExperimentFolderError(f"{path} is not an experiment folder (no {EXPERIMENT_FILE})")
    try:
        config = parse_experiment(read_config_file(path / EXPERIMENT_FILE), EXPERIMENT_FILE)
    except ConfigError as err:
        raise ExperimentFolderError(f"{path}: {err}") from None
    trials, problems = [], []
    for arm, seed in config.trials():
        trial_id = f"{arm}-seed{seed}"
        folder = path / "trials" / trial_id
        lines, skipped = read_metrics_lines(folder / "metrics.jsonl")
        problems += [f"{trial_id}: {p}" for p in skipped]
        steps = [line for line in lines if isinstance(line.get("step"), int)]
        if not any(isinstance(line.get("eval/team"), int | float) for line in steps):
            problems.append(f"{trial_id}: no held-out evaluation yet; left out")
        trials.append(TrialData(trial_id, arm, seed, folder, steps))
    return ExperimentData(path, config, trials, problems)


def t_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, 95% t-interval across ``values`` (one per seed) and n (see ``INTERVAL``)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n, "why": "one seed: no interval"}
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def arm_curve(trials: Sequence[TrialData]) -> list[dict[str, Any]]:
    """At each evaluated step, the arm's team score across the seeds evaluated there."""
    by_step: dict[int, list[dict[str, Any]]] = {}
    for trial in trials:
        for line in trial.evaluations:
            by_step.setdefault(line["step"], []).append(line)
    curve = []
    for step in sorted(by_step):
        lines = by_step[step]
        tokens = [line["tokens_total"] for line in lines if "tokens_total" in line]
        curve.append(
            {
                "step": step,
                **t_interval([float(line["eval/team"]) for line in lines]),
                "tokens_mean": sum(tokens) / len(tokens) if tokens else None,
            }
        )
    return curve


def summarise(data: ExperimentData) -> dict[str, Any]:
    """The numbers of ``summary.json`` of an experiment (see the module docstring)."""
    arms: dict[str, Any] = {}
    for arm in data.config.arms:
        trials = data.arm_trials(arm)
        finals = {t.seed: t.final for t in trials if t.final is not None}
        final = {}
        for key, _ in FINAL_METRICS:
            values = [f[key] for f in finals.values() if isinstance(f.get(key), int | float)]
            if values:
                final[key] = {**t_interval([float(v) for v in values]), "values": values}
        arms[arm] = {
            "overrides": data.config.arms[arm],
            "seeds": sorted(finals),
            "final": final,
            "final_step": {str(s): f["step"] for s, f in finals.items()},
            "tokens_total": {
                str(t.seed): t.lines[-1].get("tokens_total") for t in trials if t.lines
            },
            "curve": arm_curve(trials),
        }
    differences = []
    for a, b in data.config.pairs():
        fa = {t.seed: t.final for t in data.arm_trials(a) if t.final is not None}
        fb = {t.seed: t.final for t in data.arm_trials(b) if t.final is not None}
        seeds = sorted(set(fa) & set(fb))
        diffs = [float(fa[s]["eval/team"]) - float(fb[s]["eval/team"]) for s in seeds]
        differences.append(
            {
                "a": a,
                "b": b,
                "metric": "eval/team",
                "seeds": seeds,
                "values": diffs,
                **t_interval(diffs),
            }
        )
    return {
        "name": data.config.name,
        "experiment_folder": str(data.path),
        "interval": INTERVAL,
        "seeds": data.config.seeds,
        "arms": arms,
        "differences": differences,
        "problems": data.problems,
    }


def interval_text(row: Mapping[str, Any], points: bool = False) -> str:
    """'48% [40, 56]' (or '+6.0 pts [-2.0, +14.0]' with ``points``), or why there is none."""
    mean = row.get("mean")
    if mean is None:
        return "-"
    scale, fmt = (100.0, "{:+.1f}") if points else (100.0, "{:.0f}")
    shown = fmt.format(mean * scale) + (" pts" if points else "%")
    ci = row.get("ci95")
    if ci is None:
        return f"{shown} (n={row.get('n', 0)}, no interval)"
    return f"{shown} [{fmt.format(ci[0] * scale)}, {fmt.format(ci[1] * scale)}] (n={row['n']})"


# =========================================================================== the page


def final_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """The final table: one row per arm, each metric as mean [interval] over seeds."""
    rows = []
    for arm, info in summary["arms"].items():
        row = [arm, str(len(info["seeds"]))]
        for key, _ in FINAL_METRICS:
            cell = info["final"].get(key)
            row.append(interval_text(cell, points=key != "eval/team") if cell else "-")
        tokens = [v for v in info["tokens_total"].values() if isinstance(v, int | float)]
        row.append(f"{sum(tokens) / len(tokens):,.0f}" if tokens else "-")
        rows.append(row)
    return rows


FINAL_HEADER = ["arm", "seeds", *(name for _, name in FINAL_METRICS), "tokens (mean)"]
DIFFERENCE_HEADER = ["difference", "seeds", "mean [95% CI]", "per seed (pts)"]


def difference_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            f"{d['a']} - {d['b']}",
            str(len(d["seeds"])),
            interval_text(d, points=True),
            ", ".join(f"{v * 100:+.0f}" for v in d["values"]) or "-",
        ]
        for d in summary["differences"]
    ]


def render(summary: Mapping[str, Any]) -> str:
    """The experiment's report page: the final table, the differences, the curves."""
    from analysis import plots
    from analysis.report import CSS, esc, figure, table

    curves = {arm: info["curve"] for arm, info in summary["arms"].items()}
    parts = [
        f"<header><h1>{esc('Experiment: ' + summary['name'])}</h1><p class='meta'>"
        f"<code>{esc(summary['experiment_folder'])}</code>; seeds "
        f"{esc(', '.join(map(str, summary['seeds'])))}</p></header>"
    ]
    if summary["problems"]:
        items = "".join(f"<li>{esc(p)}</li>" for p in summary["problems"])
        parts.append(
            f"<section class='problems'><h2>What was skipped</h2><ul>{items}</ul></section>"
        )
    parts.append(
        "<section><h2>Final held-out scores</h2>"
        + table(
            FINAL_HEADER,
            final_rows(summary),
            numeric_from=1,
            caption="each trial's last held-out evaluation; team in %, gains in points; "
            + INTERVAL,
        )
        + "</section>"
    )
    if summary["differences"]:
        parts.append(
            "<section><h2>Differences between arms</h2>"
            + table(
                DIFFERENCE_HEADER,
                difference_rows(summary),
                numeric_from=1,
                caption="final held-out team score of arm a minus arm b, paired by seed",
            )
            + "</section>"
        )
    if any(curves.values()):
        parts.append(
            "<section><h2>Held-out curves</h2>"
            + figure(
                plots.arm_curves(curves),
                "held-out team success per arm against steps and generated tokens",
                "mean over seeds (line) and 95% t-interval (band) at each evaluation",
            )
            + "</section>"
        )
    title = f"Experiment report: {summary['name']}"
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        + "".join(parts)
        + "</main></body></html>\n"
    )


def write_summary_and_report(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read an experiment folder, write its ``summary.json`` and ``report.html``."""
    import json

    from marl.core.runs import write_atomic

    data = load_experiment(path)
    summary = summarise(data)
    write_atomic(data.path / "summary.json", json.dumps(summary, indent=2) + "\n")
    page = data.path / "report.html"
    write_atomic(page, render(summary))
    return summary, page
