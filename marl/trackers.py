"""Experiment trackers: every metrics line of a run also goes to TensorBoard, W&B or MLflow.

``run.report_to: [tensorboard, wandb, mlflow]`` (TRL's convention; each an optional extra,
``pip install -e '.[trackers]'``). ``open_trackers`` opens the ones named on a run folder
and hooks them to ``RunFolder.log_metrics``, so whatever a command logs (a line per episode
of `marl simulate` and `marl eval`, a line per step of `marl train`, each trial of
`marl experiment`) reaches them with no change to the command.

| tracker | where it writes | the resolved config | transcript samples |
| --- | --- | --- | --- |
| tensorboard | ``<run>/tensorboard/`` event files | a text entry (YAML) | text entries |
| wandb | ``<run>/wandb/`` (1) | run config | a Table |
| mlflow | MLFLOW_TRACKING_URI, else the file store ``<output_dir>/mlruns`` | (2) | text files |

(1) offline unless WANDB_MODE or WANDB_API_KEY says otherwise; ``wandb sync`` uploads it.
(2) every key as ``a.b.c``, and the whole as the artifact ``config.yaml``.

How a line becomes scalars: its numbers only (lists, strings and flags are left out);
the step is the line's ``step`` (training) or ``episode`` (simulate and eval, whose keys
are prefixed by the line's ``phase``, e.g. ``team/score``). Names are kept to letters,
digits and ``_ - . /`` (MLflow allows no more), so ``single:alice/score`` is logged as
``single_alice/score`` (in MLflow ``single_alice.score``: ``mlflow_name``).

A resumed training run continues the same tracker runs: TensorBoard purges what was
logged after the checkpoint (``purge_step``), W&B and MLflow reopen their run by the id
kept in ``<run>/trackers.json``; lines that W&B or MLflow already had from after the
checkpoint are logged again, at the same steps.

A tracker that fails (a full disk, a server that went away) is closed and said once on
stderr; the run goes on and ``metrics.jsonl`` stays complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from marl.core.config import RunConfig
from marl.core.runs import RunFolder, write_atomic

TRACKERS = ("tensorboard", "wandb", "mlflow")
INSTALL_HINT = "pip install -e '.[trackers]'"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_\-./ ]")
PARAM_CHARS = 500  # MLflow keeps 6000 characters of a parameter; a prompt is shown cut
SAMPLE_TURN_CHARS = 2000
IDS_FILE = "trackers.json"


class TrackerError(ValueError):
    """A tracker named in ``run.report_to`` is not installed, or could not be opened."""


def tracker_problem(name: str) -> str | None:
    """Why ``name`` cannot be used here, or None (checked before any model loads)."""
    module = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}[name]
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"'{name}' is not installed here ({INSTALL_HINT})"
    return None


def metric_name(key: str) -> str:
    return _NAME_CHARS.sub("_", key)


def mlflow_name(key: str) -> str:
    """MLflow's file store keeps a metric per file named by it, so ``reward_mean`` and
    ``reward_mean/a`` cannot both be there: in MLflow the '/' of a name is a '.'."""
    return key.replace("/", ".")


def scalars(record: Mapping[str, Any]) -> tuple[int, dict[str, float]]:
    """(step, {name: value}) of one metrics line, as the module docstring says."""
    phase = record.get("phase")
    step = record.get("step", record.get("episode", 0))
    prefix = f"{phase}/" if isinstance(phase, str) else ""
    skip = {"step", "episode", "phase", "seed"}
    out = {}
    for key, value in record.items():
        if key in skip or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[metric_name(prefix + key)] = float(value)
    return int(step) if isinstance(step, int) and not isinstance(step, bool) else 0, out


def flat_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as ``a.b.c: value`` strings (lists as YAML), each at most PARAM_CHARS."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat_params(value, name + ".")
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[metric_name(name)] = text if len(text) <= PARAM_CHARS else text[:497] + "..."
    return out


def sample_rows(turns: Sequence[Any], label: str) -> list[list[str]]:
    """Rows (where, round, agent, text) of one episode's turns, for a tracker's text view."""
    return [[label, str(t.round + 1), t.agent, t.text[:SAMPLE_TURN_CHARS]] for t in turns]


class _Tracker:
    name = ""

    def log(self, step: int, values: dict[str, float]) -> None:
        raise NotImplementedError

    def samples(self, step: int, rows: list[list[str]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TensorBoard(_Tracker):
    name = "tensorboard"

    def __init__(self, folder: RunFolder, config_text: str, resumed_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: a resumed run drops what was logged after its checkpoint
        self.writer = SummaryWriter(
            str(folder.path / "tensorboard"),
            purge_step=None if resumed_step is None else resumed_step + 1,
        )
        if resumed_step is None:
            self.writer.add_text("config", _code(config_text), 0)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def samples(self, step: int, rows: list[list[str]]) -> None:
        parts = [f"**{w}, round {r}, {a}:**\n\n{_code(t)}" for w, r, a, t in rows]
        self.writer.add_text("transcripts", "\n\n".join(parts), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _WandB(_Tracker):
    name = "wandb"

    def __init__(self, config: RunConfig, folder: RunFolder, resolved: dict, run_id: str | None):
        os.environ.setdefault("WANDB_SILENT", "true")  # no banner between the progress lines
        import wandb

        mode = os.environ.get("WANDB_MODE") or (
            "online" if os.environ.get("WANDB_API_KEY") else "offline"
        )
        self.wandb = wandb
        self.run = wandb.init(
            project=config.run.tracker_project,
            group=config.run.tracker_group,
            name=folder.path.name,
            dir=str(folder.path),
            config=resolved,
            mode=mode,
            id=run_id,
            resume="allow" if run_id else None,
            reinit="create_new",
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.id = self.run.id

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def samples(self, step: int, rows: list[list[str]]) -> None:
        table = self.wandb.Table(columns=["where", "round", "agent", "text"], data=rows)
        self.run.log({"transcripts": table}, step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow(_Tracker):
    name = "mlflow"

    def __init__(self, config: RunConfig, folder: RunFolder, resolved: dict, run_id: str | None):
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            # MLflow 3 keeps a local file store only when asked to: it is what works with no
            # server and no database here, and what `mlflow ui --backend-store-uri` reads
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            store = Path(config.run.output_dir).absolute() / "mlruns"
            uri = store.as_uri()
        self.uri = uri
        self.client = MlflowClient(uri)
        if run_id is None:
            project = config.run.tracker_project
            experiment = self.client.get_experiment_by_name(project)
            experiment_id = (
                experiment.experiment_id if experiment else self.client.create_experiment(project)
            )
            tags = {"marl.run_folder": str(folder.path.absolute())}
            if config.run.tracker_group:
                tags["marl.group"] = config.run.tracker_group
            run = self.client.create_run(experiment_id, run_name=folder.path.name, tags=tags)
            self.id = run.info.run_id
            params = list(flat_params(resolved).items())
            from mlflow.entities import Param

            for k in range(0, len(params), 100):  # MLflow takes 100 params per batch
                self.client.log_batch(self.id, params=[Param(n, v) for n, v in params[k : k + 100]])
            self.client.log_text(self.id, yaml.safe_dump(resolved, sort_keys=False), "config.yaml")
        else:
            self.id = run_id
            self.client.update_run(run_id, status="RUNNING")

    def log(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_name(k), v, now, step) for k, v in values.items()]
        for k in range(0, len(metrics), 1000):
            self.client.log_batch(self.id, metrics=metrics[k : k + 1000])

    def samples(self, step: int, rows: list[list[str]]) -> None:
        text = "\n\n".join(f"[{w}] round {r}, {a}:\n{t}" for w, r, a, t in rows)
        self.client.log_text(self.id, text, f"transcripts/step-{step:06d}.txt")

    def close(self) -> None:
        self.client.set_terminated(self.id)


class Trackers:
    """The trackers a run reports to; ``log`` and ``samples`` go to each that still works."""

    def __init__(self, trackers: list[_Tracker], folder: RunFolder):
        self.trackers = trackers
        self.folder = folder
        self.failed: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log(self, record: Mapping[str, Any]) -> None:
        step, values = scalars(record)
        if values:
            self._each("log", step, values)

    def samples(self, step: int, rows: list[list[str]]) -> None:
        if rows:
            self._each("samples", step, rows)

    def summary(self, summary: Mapping[str, Any], step: int = 0) -> None:
        """The numbers of a ``summary.json`` (nested keys joined with '/'), at ``step``."""
        values = {}
        for key, value in _flat_numbers(summary).items():
            values[metric_name("summary/" + key)] = value
        if values:
            self._each("log", step, values)

    def close(self) -> None:
        if self.log in self.folder.listeners:
            self.folder.listeners.remove(self.log)
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as err:  # the run's own files are complete: say it, go on
                print(
                    f"warning: tracker {tracker.name} did not close cleanly "
                    f"({type(err).__name__}: {err})",
                    file=sys.stderr,
                )
        self.trackers = []

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as err:  # a tracker's failure must not end the run
                self.trackers.remove(tracker)
                self.failed[tracker.name] = f"{type(err).__name__}: {err}"
                print(
                    f"warning: tracker {tracker.name} failed and is off for this run "
                    f"({type(err).__name__}: {err}); metrics.jsonl has every line",
                    file=sys.stderr,
                )
                with contextlib.suppress(Exception):
                    tracker.close()


def open_trackers(
    config: RunConfig,
    folder: RunFolder,
    resolved: dict[str, Any],
    resumed_step: int | None = None,
) -> Trackers:
    """Open ``run.report_to``'s trackers on ``folder`` and hook them to its metrics lines;
    ``resumed_step``: a resumed training run, continuing its tracker runs from that step."""
    names = config.run.report_to
    for name in names:
        if (why := tracker_problem(name)) is not None:
            raise TrackerError(f"run.report_to: {why}")
    ids_path = folder.path / IDS_FILE
    ids: dict[str, str] = {}
    if resumed_step is not None and ids_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(ids_path.read_text())
            ids = {k: v for k, v in loaded.items() if isinstance(v, str)}
    config_text = yaml.safe_dump(resolved, sort_keys=False)
    opened: list[_Tracker] = []
    try:
        for name in names:
            try:
                if name == "tensorboard":
                    opened.append(_TensorBoard(folder, config_text, resumed_step))
                elif name == "wandb":
                    opened.append(_WandB(config, folder, resolved, ids.get("wandb")))
                else:
                    opened.append(_MLflow(config, folder, resolved, ids.get("mlflow")))
            except Exception as err:  # a bad tracking URI, a store that is no folder, ...
                raise TrackerError(
                    f"run.report_to: cannot open {name}: {type(err).__name__}: {err}"
                ) from None
    except BaseException:
        for tracker in opened:
            with contextlib.suppress(Exception):
                tracker.close()
        raise
    new_ids = {t.name: t.id for t in opened if hasattr(t, "id")}
    if new_ids and new_ids != ids:
        write_atomic(ids_path, json.dumps(new_ids, indent=2) + "\n")
    trackers = Trackers(opened, folder)
    if opened:
        folder.listeners.append(trackers.log)
    return trackers


@contextlib.contextmanager
def tracking(config: RunConfig, folder: RunFolder, resolved: dict[str, Any]) -> Iterator[Trackers]:
    """``with tracking(...) as trackers:`` open for the block, closed after it."""
    trackers = open_trackers(config, folder, resolved)
    try:
        yield trackers
    finally:
        trackers.close()


def _flat_numbers(data: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= _flat_numbers(value, name + "/")
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            out[name] = float(value)
    return out


def _code(text: str) -> str:
    """Markdown code block (TensorBoard renders text entries as markdown)."""
    return "\n".join("    " + line for line in text.splitlines())
