"""`marl export RUN_DIR --csv`: a run folder's numbers as CSV files, for pandas and spreadsheets.

| file              | one row per                                    | read from              |
| ----------------- | ---------------------------------------------- | ---------------------- |
| `metrics.csv`     | line of `metrics.jsonl` (an episode, a step)   | `metrics.jsonl`        |
| `evaluations.csv` | evaluation point x who was scored (the team,   | train: lines with      |
|                   | each agent alone, an ablation, a baseline)     | `eval/team`; simulate, |
|                   |                                                | eval: `summary.json`   |
| `episodes.csv`    | episode (training: a rollout, joined over its  | the transcripts        |
|                   | rounds in `episodes` mode; a node in `tree`)   |                        |

`metrics.csv` has the union of every line's keys as columns, in the order they first
appear, blank where a line lacks one; a nested mapping becomes one column per leaf
(``a/b``), a list one JSON-encoded cell. Numbers are written as Python prints them, so
they read back exactly. In `evaluations.csv` ``gain`` is the team's score minus the row's
(for a baseline the paired gain over tasks recorded with it, and its 95% interval).
`episodes.csv` counts tokens from the transcripts' token ids and adds the scenario's
episode metrics as columns (``metrics/<key>`` where a name is taken).

The folder is read through ``analysis.rundata.load_run``: records that do not fit their
schema are skipped and counted in its ``problems``, which the caller shows. Left out:
turn-level rows (the text is in `marl transcripts`), and a training run's held-out
episodes, which its transcripts do not keep.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from analysis.rundata import RunData
from marl.core.runs import write_atomic, writing

FILES = ("metrics.csv", "evaluations.csv", "episodes.csv")
EVALUATION_COLUMNS = (
    "step",
    "tokens_total",
    "split",
    "who",
    "score",
    "gain",
    "gain_ci95_low",
    "gain_ci95_high",
)
BASELINES = ("vote", "self_consistency", "solo_rounds")  # marl.commands.baselines


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """One level of ``column -> cell``: nested mappings joined with '/', lists as JSON."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}/")
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def metrics_rows(run: RunData) -> list[dict[str, Any]]:
    return [flatten(line) for line in run.metrics]


def evaluation_rows(run: RunData) -> list[dict[str, Any]]:
    """Every held-out score of a training run, or the phases and baselines of a simulate or
    eval run's ``summary.json`` (none when it is missing)."""
    if run.kind == "train":
        return [row for line in run.metrics if "eval/team" in line for row in _train_eval(line)]
    if run.summary is None:
        return []
    return _summary_eval(run.summary)


def _train_eval(line: Mapping[str, Any]) -> list[dict[str, Any]]:
    team = line["eval/team"]
    at = {"step": line["step"], "tokens_total": line.get("tokens_total"), "split": "test"}
    rows = [{**at, "who": "team", "score": team}]
    singles = [k.removeprefix("eval/single/") for k in line if k.startswith("eval/single/")]
    for agent in singles:
        score = line[f"eval/single/{agent}"]
        rows.append({**at, "who": f"single:{agent}", "score": score, "gain": team - score})
    for name in BASELINES:
        if f"eval/{name}" in line:
            rows.append(
                {
                    **at,
                    "who": name,
                    "score": line[f"eval/{name}"],
                    "gain": line.get(f"eval/gain_vs/{name}"),
                    "gain_ci95_low": line.get(f"eval/gain_vs/{name}/ci95_low"),
                    "gain_ci95_high": line.get(f"eval/gain_vs/{name}/ci95_high"),
                }
            )
    return rows


def _summary_eval(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    split = (summary.get("split") or {}).get("name")
    phases = summary["phases"]
    team = phases["team"]["score"]
    rows = [{"split": split, "who": "team", "score": team}]
    for name, phase in phases.items():
        if name == "single" or name.startswith(("single:", "ablate:")):
            rows.append(
                {
                    "split": split,
                    "who": name,
                    "score": phase["score"],
                    "gain": team - phase["score"],
                }
            )
    for name, row in (summary.get("baselines") or {}).items():
        if "score" not in row:  # not applicable to this scenario
            continue
        low, high = row.get("gain_ci95") or (None, None)
        rows.append(
            {
                "split": split,
                "who": name,
                "score": row["score"],
                "gain": row.get("gain"),
                "gain_ci95_low": low,
                "gain_ci95_high": high,
            }
        )
    return rows


def episode_rows(run: RunData) -> list[dict[str, Any]]:
    """One row per episode of the transcripts (see the module docstring)."""
    trained = run.kind == "train"
    records = run.training_episodes() if trained else run.episodes
    split = "train" if trained else ((run.summary or {}).get("split") or {}).get("name")
    rows = []
    by_phase: dict[str, int] = {}
    for record in records:
        position = by_phase.get(record["phase"], 0)
        by_phase[record["phase"]] = position + 1
        index = record.get("index")
        turns = record["turns"]
        row: dict[str, Any] = {
            "episode": position if index is None else index,
            "phase": record["phase"],
            "split": split,
            "step": record.get("step"),
            "seed": record["seed"],
            "sample": record.get("sample"),
            "agents": " ".join(record["agents"]),
            "rounds": len({t["round"] for t in turns}),
            "turns": len(turns),
            "completion_tokens": sum(len(t["token_ids"]) for t in turns),
            "prompt_tokens": sum(len(t["prompt_ids"]) for t in turns if "prompt_ids" in t),
            "return": record.get("return"),
        }
        if trained:
            row["node"] = record["node"]
        for key, value in flatten(record["metrics"]).items():
            row[f"metrics/{key}" if key in row else key] = value
        rows.append(row)
    return rows


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: Iterable[str] = ()) -> int:
    """Write ``rows`` to ``path`` whole or not at all; columns: ``columns``, then every other
    key in the order it first appears. Returns the number of rows."""
    rows = list(rows)
    header = dict.fromkeys(columns)
    for row in rows:
        header |= dict.fromkeys(row)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(header), restval="")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    write_atomic(path, text.getvalue())
    return len(rows)


def export_csv(run: RunData, out: Path) -> list[tuple[Path, int]]:
    """Write the three files into ``out`` (made if missing); their paths and row counts.
    A failed write raises ``WriteError`` naming the file."""
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    tables = (
        (metrics_rows(run), ()),
        (evaluation_rows(run), EVALUATION_COLUMNS),
        (episode_rows(run), ()),
    )
    return [
        (out / name, write_csv(out / name, rows, columns))
        for name, (rows, columns) in zip(FILES, tables, strict=True)
    ]
