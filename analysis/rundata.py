"""Loading a run folder for analysis: everything in it, read-only, and what could not be read.

A run folder (``marl.core.runs``) comes from one of three commands:

| kind       | written by      | episodes from                          | phases                 |
| ---------- | --------------- | -------------------------------------- | ---------------------- |
| `simulate` | `marl simulate` | `transcripts.msgpack`, one per frame   | `team`, `single`       |
| `eval`     | `marl eval`     | `transcripts.msgpack`, one per frame   | `team`, `single:<id>`, |
|            |                 |                                        | `ablate:<id>`          |
| `train`    | `marl train`    | `transcripts/step-NNNNNN.msgpack`      | `train`, per rollout   |

A training transcript frame is one group ``{"step", "seed", "round", "rollouts": [...]}``;
``load_run`` flattens it into one episode-like record per rollout, carrying ``step``,
``seed``, ``round``, ``sample`` (its index in the group) and ``phase: "train"``. In
``episodes`` mode the rollouts with the same step, seed and sample are the rounds of one
episode.

A run killed mid-write leaves a cut last line in ``metrics.jsonl`` or a cut last frame in a
transcript, and no ``summary.json``. ``load_run`` keeps everything before the damage and
says, in ``RunData.problems``, what it skipped, in sentences a user can act on. It never
writes to the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import yaml
from pydantic import BaseModel

from marl.core.codec import TranscriptReader
from marl.core.config import ConfigError, parse_run_config
from marl.core.files import InputFileError, read_bytes, read_text
from marl.core.run_records import (
    EpisodeRecord,
    GroupRecord,
    MetricsLine,
    SummaryRecord,
    problem,
)
from marl.core.runs import RunFolder

RunKind = Literal["simulate", "eval", "train"]
TRAIN_TRANSCRIPTS = "transcripts"  # folder of step-NNNNNN.msgpack files in a training run


class RunFolderError(ValueError):
    """A path that is not a readable run folder; the message says what is missing."""


@dataclass
class RunData:
    """One run folder, as read: its config, metrics lines, summary and episode records."""

    path: Path
    kind: RunKind
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] | None
    episodes: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)  # what was skipped, one sentence each

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def scenario(self) -> str:
        return self.config["scenario"]["name"]

    @property
    def agent_ids(self) -> list[str]:
        return [agent["id"] for agent in self.config["team"]["agents"]]

    @property
    def algorithm(self) -> str | None:
        """The training algorithm (magrpo, igrpo, shared, grpo), for training runs."""
        train = self.config.get("train")
        if self.kind != "train" or not train:
            return None
        return "shared" if train["policy"] == "shared" else train["algorithm"]

    def phases(self) -> list[str]:
        """Phase names in the order their episodes were written."""
        return list(dict.fromkeys(e["phase"] for e in self.episodes))

    def phase_episodes(self, phase: str) -> list[dict[str, Any]]:
        return [e for e in self.episodes if e["phase"] == phase]

    def training_episodes(self) -> list[dict[str, Any]]:
        """A training run's rollouts as episode records, as ``analysis.metrics`` reads them.

        In ``episodes`` mode the rollouts with one step, seed and sample are the rounds of
        one episode and are joined; in ``tree`` mode a rollout's parent is not recorded, so
        each rollout stays a record of its own round, with ``node: True``: it is a branch
        point, not an episode, its ``return`` is the one the trainer learnt from (the mean
        over its agents of their returns), and only a node where the episode ended has
        ``metrics`` and a score. Each record's ``rewards`` are per round the mean over the
        acting agents of what they learnt from (the team reward, or under igrpo their own);
        ``messages`` is the bus log where the transcript has it.
        """
        joined = (self.config.get("train") or {}).get("multi_turn", "episodes") == "episodes"
        by_key: dict[tuple[int, ...], list[dict[str, Any]]] = {}
        for k, rollout in enumerate(self.episodes):
            key = (rollout["step"], rollout["seed"], rollout["sample"]) if joined else (k,)
            by_key.setdefault(key, []).append(rollout)
        episodes = []
        for index, parts in enumerate(by_key.values()):
            parts.sort(key=lambda part: part["round"])
            rewards = [sum(p["rewards"].values()) / max(1, len(p["rewards"])) for p in parts]
            # a tree node is one round of one branch: its return is the one the trainer used
            returns = parts[-1]["returns"]
            value = sum(returns.values()) / len(returns) if returns else 0.0
            turns = [turn for part in parts for turn in part["turns"]]
            order = {a: i for i, a in enumerate(self.agent_ids)}
            agents = sorted({t["agent"] for t in turns}, key=lambda a: order.get(a, len(order)))
            episodes.append(
                {
                    "index": index,
                    "phase": "train",
                    "step": parts[0]["step"],
                    "seed": parts[0]["seed"],
                    "sample": parts[0]["sample"],
                    "scenario": self.scenario,
                    "agents": agents,
                    "turns": turns,
                    "rewards": rewards,
                    "messages": [m for p in parts for m in p.get("messages", [])],
                    "metrics": parts[-1]["metrics"],
                    "return": sum(rewards) if joined else value,
                    "node": not joined,
                }
            )
        return episodes

    def graph(self) -> nx.DiGraph:
        """The configured interaction graph (a ``GraphSchedule`` when it varies by round).

        Raises ``RunFolderError`` when the config's graph cannot be rebuilt (e.g. its graph
        file has gone since the run).
        """
        from marl.core.config import GraphConfig
        from marl.core.graph import GraphError, build_graph_from_config

        try:
            spec = GraphConfig.model_validate(self.config["graph"])
            return build_graph_from_config(self.agent_ids, spec)
        except (GraphError, ValueError) as err:
            raise RunFolderError(
                f"{self.path}: cannot rebuild the interaction graph: {err}"
            ) from None


MAX_CONFIG_BYTES = 1024 * 1024
MAX_SUMMARY_BYTES = 64 * 1024 * 1024
MAX_METRICS_BYTES = 1024 * 1024 * 1024


def load_run(path: str | Path) -> RunData:
    """Read a run folder; raise ``RunFolderError`` when it is missing or not a run folder.

    Every file is read as a regular file of bounded size, and every record is checked
    against ``marl.core.run_records`` before anything uses it: what does not fit is skipped
    and counted in ``problems`` (one sentence per file and kind of damage, with the first
    case), never one line per bad record."""
    path = Path(path)
    if not path.exists():
        raise RunFolderError(f"{path} does not exist")
    if not path.is_dir():
        raise RunFolderError(f"{path} is a file; give a run folder (it holds config.yaml)")
    config_path = path / RunFolder.CONFIG
    if not config_path.exists():
        raise RunFolderError(
            f"{path} is not a run folder: it has no {RunFolder.CONFIG} "
            "(folders made by marl simulate, eval or train have one)"
        )
    config = _read_config(config_path)
    metrics, problems = read_metrics_lines(path / RunFolder.METRICS)
    summary = _read_summary(path / RunFolder.SUMMARY, problems)
    train_dir = path / TRAIN_TRANSCRIPTS
    trained = train_dir.is_dir() or any("step" in line for line in metrics)
    if trained or (config.get("train") and not (path / RunFolder.TRANSCRIPTS).exists()):
        kind: RunKind = "train"
        episodes = _read_training_transcripts(train_dir, problems)
    else:
        episodes = _read_transcript(path / RunFolder.TRANSCRIPTS, problems)
        phases = {e["phase"] for e in episodes} | {m.get("phase") or "" for m in metrics}
        is_eval = any(p.startswith(("single:", "ablate:")) for p in phases)
        kind = "eval" if is_eval or (summary and "best_single" in summary) else "simulate"
        if summary is None and not (path / RunFolder.SUMMARY).exists():
            problems.append(
                f"{RunFolder.SUMMARY} is missing (the run did not finish?); the report's "
                "scores come from the episodes that were read"
            )
    return RunData(path, kind, config, metrics, summary, episodes, problems)


def _read_config(path: Path) -> dict[str, Any]:
    """The run's resolved config, which must be a valid run config (the core's schema)."""
    try:
        data = yaml.safe_load(read_text(path, MAX_CONFIG_BYTES))
    except InputFileError as err:
        raise RunFolderError(f"cannot read the run's config: {err}") from None
    except yaml.YAMLError as err:
        raise RunFolderError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} is not a run config (not a mapping)")
    try:
        return parse_run_config(data, str(path)).model_dump(mode="json")
    except ConfigError as err:
        first = "; ".join(f"{where}: {why}" for where, why in err.problems[:3])
        more = f" (and {len(err.problems) - 3} more)" if len(err.problems) > 3 else ""
        raise RunFolderError(f"{path} is not a valid run config: {first}{more}") from None


class _Damage:
    """Records of one file that did not fit their model: a count and the first reason."""

    def __init__(self, name: str, what: str):
        self.name, self.what = name, what
        self.count, self.first = 0, ""

    def add(self, where: str, why: str) -> None:
        self.count += 1
        if self.count == 1:
            self.first = f"{where}: {why}"

    def report(self, problems: list[str]) -> None:
        if self.count:
            plural = "s" * (self.count != 1)
            problems.append(
                f"{self.name}: {self.count:,} {self.what}{plural} of the wrong shape skipped "
                f"(first: {self.first})"
            )


def read_metrics_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON objects of a ``metrics.jsonl`` that fit ``MetricsLine``, and what was skipped.

    A run killed mid-write leaves its last line without the newline that ends every
    complete line; that line is reported as cut off, other bad lines by count.
    """
    if not path.exists():
        return [], [f"{path.name} is missing; no per-episode or per-step metrics"]
    try:
        data = read_bytes(path, MAX_METRICS_BYTES)
    except InputFileError as err:
        return [], [f"{err}; no per-episode or per-step metrics"]
    lines = data.split(b"\n")
    last = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    out, problems, cut = [], [], []
    damage = _Damage(path.name, "line")
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # not UTF-8 (UnicodeDecodeError is a ValueError), or not JSON
            record = None
        if isinstance(record, dict):
            why = problem(MetricsLine, record)
            if why is None:
                out.append(record)
            else:
                damage.add(f"line {i + 1}", why)
        elif i == last and not data.endswith(b"\n"):
            cut.append(f"{path.name}: line {i + 1} is cut off (run killed mid-write?); skipped")
        else:
            damage.add(f"line {i + 1}", "not a JSON object")
    damage.report(problems)
    return out, problems + cut


def _read_summary(path: Path, problems: list[str]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        summary = json.loads(read_text(path, MAX_SUMMARY_BYTES))
    except InputFileError as err:
        problems.append(f"{err}; the summary is ignored")
        return None
    except ValueError:
        problems.append(f"{path.name} is not valid JSON; ignored")
        return None
    if not isinstance(summary, dict):
        problems.append(f"{path.name} is not a JSON object; ignored")
        return None
    why = problem(SummaryRecord, summary)
    if why is not None:
        problems.append(f"{path.name} has the wrong shape ({why}); ignored")
        return None
    return summary


def _read_frames(
    path: Path, problems: list[str], what: str, model: type[BaseModel]
) -> list[dict[str, Any]]:
    """Every intact frame of one transcript file that fits ``model``; a sentence per kind
    of damage."""
    name = (
        path.name if path.parent.name != TRAIN_TRANSCRIPTS else f"{TRAIN_TRANSCRIPTS}/{path.name}"
    )
    reader = TranscriptReader(path)
    frames = []
    damage = _Damage(name, "frame")
    try:
        for n, frame in enumerate(reader.records()):
            why = problem(model, frame)
            if why is None:
                frames.append(frame)
            else:
                damage.add(f"frame {n}", why)
    except InputFileError as err:
        problems.append(f"{err}; no {what} read from it")
        return []
    damage.report(problems)
    if reader.skipped:
        problems.append(
            f"{name}: {reader.skipped} frame{'s' * (reader.skipped != 1)} are not records; skipped"
        )
    if reader.error:
        problems.append(f"{name}: {reader.error}; reading stopped there, {len(frames)} {what} read")
    elif reader.truncated_tail:
        problems.append(
            f"{name}: file ends inside a frame (run killed mid-write?); {len(frames)} {what} read"
        )
    return frames


def _read_transcript(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    if not path.exists():
        problems.append(f"{path.name} is missing; no transcripts to show")
        return []
    return _read_frames(path, problems, "episodes", EpisodeRecord)


def _read_training_transcripts(folder: Path, problems: list[str]) -> list[dict[str, Any]]:
    """Group frames of every step, flattened to one record per rollout (see module doc)."""
    files = sorted(folder.glob("step-*.msgpack")) if folder.is_dir() else []
    if not files:
        problems.append(f"{TRAIN_TRANSCRIPTS}/ has no step-*.msgpack files; no transcripts to show")
    records = []
    for path in files:
        for group in _read_frames(path, problems, "groups", GroupRecord):
            for sample, rollout in enumerate(group["rollouts"]):
                records.append(
                    {
                        "phase": "train",
                        "step": group["step"],
                        "seed": group["seed"],
                        "round": group["round"],
                        "sample": sample,
                        "agents": list(dict.fromkeys(t["agent"] for t in rollout["turns"])),
                        **rollout,
                    }
                )
    return records
