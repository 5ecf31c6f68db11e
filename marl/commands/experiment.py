"""`marl experiment`: every arm x seed of an experiment file as a trial on Ray Tune.

```
runs/<name>-<YYYYmmdd-HHMMSS>/
  experiment.yaml        the experiment, its base config inlined: all --resume needs
  trials/<arm>-seed<k>/  one ordinary `marl train` run folder per trial
  tune/                  Ray Tune's own state (what Tuner.restore reads)
  summary.json           per arm, across seeds: curves, final scores, differences
  report.html            `marl report` of the experiment folder
```

Ray Tune schedules the trials (one function trial each, ``max_concurrent`` at once) on a
local Ray instance or a cluster (``resources.ray_address``). A trial reserves one
placement group: a bundle of ``cpus_per_trial`` CPUs (and ``gpus_per_trial``) for its
trainer, plus one bundle per rollout worker of its own config (``resources.workers``),
which Tune makes its child actors land in. Each trial trains in its run folder under that
folder's lock, the way `marl train --resume` does: a trial whose folder holds checkpoints
continues from the newest good one (metrics lines after it are dropped, so none is lost
or doubled), a finished one only reports its last line. That makes a trial safe to
start again whatever happened to the driver.

``--resume EXPDIR`` after any stop (Ctrl-C, a kill -9 of the driver, a lost machine)
restores Tune's state (``Tuner.restore``): finished trials are not run again, unfinished
and failed ones continue from their last checkpoint. A trial that fails is reported with
its error (Tune retries it ``max_failures`` times first); the others go on.

Every trial reports each step's metrics line to Tune (``tune.report``), which is what the
progress display shows (trials done, running, failed; each arm's latest held-out score).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from marl.assembly import resolve_python_path, resolved_config, validate_config
from marl.core.config import ConfigError
from marl.core.config_file import read_config_file
from marl.core.experiment import ExperimentConfig, parse_experiment, trial_mapping
from marl.core.runs import RunFolder, output_dir_problem, write_atomic

EXPERIMENT_FILE = "experiment.yaml"
TRIALS = "trials"
TUNE = "tune"
# what a trial reports to Tune each step: enough for the progress display
REPORTED = ("step", "tokens_total", "reward_mean", "eval/team", "eval/best_single")


@dataclass
class Trial:
    id: str  # <arm>-seed<k>: its folder's name and Tune's name for it
    arm: str
    seed: int
    folder: Path
    bundles: list[dict[str, float]]  # the trainer's, then one per rollout worker
    steps: int  # train.steps and train.max_tokens: when it is finished
    max_tokens: int | None = None

    def spec(self) -> dict[str, Any]:
        """What Tune hands the trial function (plain data: it crosses to a Ray worker)."""
        return {
            "id": self.id,
            "arm": self.arm,
            "seed": self.seed,
            "folder": str(self.folder),
            "bundles": self.bundles,
        }


@dataclass
class Experiment:
    """An experiment folder and the trials in it (made by ``create``, or read by ``load``)."""

    path: Path
    config: ExperimentConfig
    trials: list[Trial] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> Experiment:
        """The experiment of a folder ``create`` made; ``ConfigError`` if it is not one. The
        path is made absolute: Tune's storage layer reads a relative one as a bad URI."""
        path = Path(path).absolute()
        source = str(path / EXPERIMENT_FILE)
        if not (path / EXPERIMENT_FILE).is_file():
            raise ConfigError([("", f"{path} is not an experiment folder (no {EXPERIMENT_FILE})")])
        config = parse_experiment(read_config_file(path / EXPERIMENT_FILE), source)
        experiment = cls(path, config)
        for arm, seed in config.trials():
            folder = path / TRIALS / f"{arm}-seed{seed}"
            run_config = folder / RunFolder.CONFIG
            if not run_config.is_file():
                raise ConfigError([("", f"trial folder {folder} has no {RunFolder.CONFIG}")])
            trial_config = validate_config(read_config_file(run_config), str(run_config))
            experiment.trials.append(_trial(config, arm, seed, folder, trial_config))
        return experiment


def read_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """An experiment file, overridden (``--set``) and checked, its base config inlined, and
    every trial's config validated, so that a mistake in any arm is found before Ray
    starts; ``ConfigError`` names the arm and the field."""
    path = Path(path)
    data = read_config_file(path, overrides)
    config = parse_experiment(data, str(path))
    base = config.base
    base_dir = path.parent
    if isinstance(base, str):
        base_path = (path.parent / base).expanduser()
        base = read_config_file(base_path)
        base_dir = base_path.parent
        for name in ("graph",):  # a relative graph file is relative to the base file
            graph = base.get(name)
            if isinstance(graph, dict) and isinstance(graph.get("file"), str):
                graph["file"] = str((base_dir / graph["file"]).absolute())
    base = resolve_python_path(base, base_dir)  # the user's modules beside the base file
    config = config.model_copy(update={"base": base})
    if (where := output_dir_problem(config.output_dir)) is not None:
        raise ConfigError([("output_dir", where)], str(path))
    for arm, seed in [(arm, config.seeds[0]) for arm in config.arms]:  # one seed is enough
        trial = trial_mapping(base, config, arm, seed, config.output_dir)
        try:
            checked = validate_config(trial, f"arm {arm} of {path}", base_dir=base_dir)
        except ConfigError as err:
            raise ConfigError(
                err.problems, f"{path}, arm {arm} (base + set + its overrides)"
            ) from None
        if checked.train is None:
            raise ConfigError([("base", "the base config needs a train: section")], str(path))
    return config


def create(config: ExperimentConfig) -> Experiment:
    """A new experiment folder with every trial's run folder and resolved config in it."""
    folder = RunFolder.create(config.output_dir, config.name)
    path = folder.path.absolute()
    trials_dir = path / TRIALS
    trials_dir.mkdir()
    saved = config.model_dump(mode="json")
    write_atomic(path / EXPERIMENT_FILE, yaml.safe_dump(saved, sort_keys=False))
    experiment = Experiment(path, config)
    for arm, seed in config.trials():
        data = trial_mapping(config.base, config, arm, seed, str(trials_dir))
        trial_config = validate_config(data, f"arm {arm}")
        trial_folder = RunFolder(trials_dir / f"{arm}-seed{seed}")
        trial_folder.path.mkdir()
        trial_folder.write_config(resolved_config(trial_config))
        experiment.trials.append(_trial(config, arm, seed, trial_folder.path, trial_config))
    return experiment


def _trial(config: ExperimentConfig, arm: str, seed: int, folder: Path, trial_config) -> Trial:
    r = config.resources
    trainer = {"CPU": float(r.cpus_per_trial)}
    if r.gpus_per_trial:
        trainer["GPU"] = r.gpus_per_trial
    own = trial_config.resources
    worker = {"CPU": float(own.cpus_per_worker)}
    if own.gpus_per_worker:
        worker["GPU"] = own.gpus_per_worker
    bundles = [trainer] + [worker] * own.workers
    train = trial_config.train
    return Trial(f"{arm}-seed{seed}", arm, seed, folder, bundles, train.steps, train.max_tokens)


# ---------------------------------------------------------------- inside a trial (a Ray worker)


def run_trial(params: Mapping[str, Any]) -> None:
    """Tune's function trainable: train one trial's run folder to its end (``resources``
    of the driver decide where it runs; see the module docstring for restarts)."""
    import torch
    from ray import tune

    from marl.commands.train import resume_training
    from marl.core.runlock import RunLock

    spec = params["trial"]
    torch.set_num_threads(max(1, int(spec["bundles"][0]["CPU"])))
    folder = Path(spec["folder"])
    with RunLock(folder):
        training, _ = resume_training(folder)
        try:
            if training.finished:  # finished before the driver could record it
                tune.report(_reported(_last_line(folder), training))
                return
            training.run(on_step=lambda record: tune.report(_reported(record, training)))
        finally:
            training.close()


def _reported(record: Mapping[str, Any], training: Any) -> dict[str, Any]:
    return {**{k: record[k] for k in REPORTED if k in record}, "finished": training.finished}


def _last_line(folder: Path) -> dict[str, Any]:
    import json

    lines = (folder / RunFolder.METRICS).read_text().splitlines()
    return json.loads(lines[-1]) if lines else {}


# ---------------------------------------------------------------- the driver


@dataclass
class TrialState:
    arm: str
    status: str = "pending"  # pending, running, done, failed
    step: int = 0
    eval_team: float | None = None
    error: str | None = None


class ExperimentProgress:
    """What the trials are doing, from Tune's callbacks: ``on_change`` is called with it
    after every event (the CLI redraws its table)."""

    def __init__(self, experiment: Experiment, on_change: Callable[[ExperimentProgress], None]):
        self.trials = {t.id: TrialState(t.arm) for t in experiment.trials}
        self.on_change = on_change
        self.started = time.monotonic()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(("done", "running", "failed", "pending"), 0)
        for state in self.trials.values():
            out[state.status] += 1
        return out

    def latest_by_arm(self) -> dict[str, float | None]:
        """Each arm's latest held-out score, averaged over its trials that have one."""
        out: dict[str, list[float]] = {}
        for state in self.trials.values():
            out.setdefault(state.arm, [])
            if state.eval_team is not None:
                out[state.arm].append(state.eval_team)
        return {a: (sum(v) / len(v) if v else None) for a, v in out.items()}

    def callback(self) -> Any:
        return _callback_class()(self)

    def _set(self, trial: Any, **changes: Any) -> None:
        state = self.trials.get(trial.config["trial"]["id"])
        if state is None:
            return
        for key, value in changes.items():
            setattr(state, key, value)
        self.on_change(self)


def _callback_class() -> type:
    """Tune's ``Callback`` feeding an ``ExperimentProgress`` (made on first use: ray.tune
    loads only when an experiment runs). Tune pickles its run config, callbacks included:
    the progress (a live display) stays out of the pickle."""
    from ray.tune import Callback

    class ProgressCallback(Callback):
        def __init__(self, progress: ExperimentProgress | None):
            self.progress = progress

        def __getstate__(self) -> dict[str, Any]:
            return {"progress": None}

        def _set(self, trial: Any, **changes: Any) -> None:
            if self.progress is not None:
                self.progress._set(trial, **changes)

        def on_trial_start(self, iteration, trials, trial, **info):
            self._set(trial, status="running")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            changes: dict[str, Any] = {"status": "running"}
            if isinstance(result.get("step"), int):
                changes["step"] = result["step"]
            if isinstance(result.get("eval/team"), int | float):
                changes["eval_team"] = float(result["eval/team"])
            self._set(trial, **changes)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._set(trial, status="done")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._set(trial, status="failed", error=_error_text(trial))

    return ProgressCallback


def _error_text(trial: Any) -> str:
    """The last line of a failed trial's error (Tune keeps the whole traceback on disk)."""
    path = getattr(trial, "error_file", None) or ""
    text = ""
    if path and os.path.isfile(path):
        text = Path(path).read_text(errors="replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else "failed (no error text)"


def run_experiment(
    experiment: Experiment,
    resume: bool,
    on_change: Callable[[ExperimentProgress], None] = lambda p: None,
) -> ExperimentProgress:
    """Run (or, with ``resume``, restore and finish) every trial of ``experiment`` on Ray
    Tune; returns the final state of each trial, failures with their error."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(len(experiment.trials)))
    from ray import tune

    started_ray = _connect(experiment.config)
    try:
        progress = ExperimentProgress(experiment, on_change)
        _check_fits(experiment)
        for trial in experiment.trials:  # finished before: say so at once
            if finished(trial):
                progress.trials[trial.id].status = "done"
        bundles = {t.id: t.bundles for t in experiment.trials}
        trainable = tune.with_resources(
            run_trial,
            lambda spec: tune.PlacementGroupFactory(bundles[spec["trial"]["id"]]),
        )
        storage = experiment.path / TUNE
        r = experiment.config.resources
        if resume and tune.Tuner.can_restore(str(storage)):
            tuner = tune.Tuner.restore(
                str(storage),
                trainable=trainable,
                resume_unfinished=True,
                resume_errored=True,
                restart_errored=False,
            )
            _add_callback(tuner, progress.callback())
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search([t.spec() for t in experiment.trials])},
                tune_config=tune.TuneConfig(
                    num_samples=1,
                    max_concurrent_trials=r.max_concurrent,
                    reuse_actors=False,
                    trial_name_creator=lambda t: t.config["trial"]["id"],
                    trial_dirname_creator=lambda t: t.config["trial"]["id"],
                ),
                run_config=tune.RunConfig(
                    name=TUNE,
                    storage_path=str(experiment.path),
                    failure_config=tune.FailureConfig(max_failures=r.max_failures),
                    callbacks=[progress.callback()],
                    verbose=0,
                ),
            )
        on_change(progress)
        results = tuner.fit()
        for result in results:
            trial_id = (result.config or {}).get("trial", {}).get("id")
            state = progress.trials.get(trial_id)
            if state is None:
                continue
            if result.error is not None:
                state.status = "failed"
                state.error = state.error or _short_error(result.error)
            elif state.status != "failed":
                state.status = "done"
        on_change(progress)
        return progress
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _add_callback(tuner: Any, callback: Any) -> None:
    """A restored Tuner keeps the callbacks of its run config only if they pickled; the
    progress display is this process's, so it is set again."""
    internal = getattr(tuner, "_local_tuner", None)
    run_config = getattr(internal, "_run_config", None) if internal is not None else None
    if run_config is not None:
        run_config.callbacks = [callback]


def _short_error(error: BaseException) -> str:
    cause = error
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    text = str(cause).strip().splitlines()
    return (text[-1] if text else type(cause).__name__)[:500]


def finished(trial: Trial) -> bool:
    """Whether a trial's last metrics line is at its end (``train.steps`` or
    ``train.max_tokens``); the trial itself decides from its checkpoint when it starts."""
    import json

    try:
        lines = (trial.folder / RunFolder.METRICS).read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}
        step, tokens = int(last.get("step", 0)), int(last.get("tokens_total", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    return step >= trial.steps or (trial.max_tokens is not None and tokens >= trial.max_tokens)


def _check_fits(experiment: Experiment) -> None:
    """A trial that reserves more than the whole cluster would wait for ever: say so."""
    import ray

    have = float(ray.cluster_resources().get("CPU", 0.0))
    need = max(sum(b.get("CPU", 0.0) for b in t.bundles) for t in experiment.trials)
    if need > have:
        raise ConfigError(
            [
                (
                    "resources.cpus_per_trial",
                    f"a trial reserves {need:g} CPUs (its trainer and its own rollout "
                    f"workers) but the Ray cluster has {have:g}; lower cpus_per_trial or the "
                    "base config's resources.workers, or raise resources.cpus",
                )
            ]
        )


def _connect(config: ExperimentConfig) -> bool:
    """Join the cluster or start a local Ray instance; whether this call started it."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")
    r = config.resources
    common = {"log_to_driver": False, "logging_level": logging.WARNING}
    if r.ray_address:
        ray.init(address=r.ray_address, **common)
    else:
        store = r.object_store_mb
        ray.init(
            num_cpus=r.cpus or os.cpu_count() or 1,
            num_gpus=None,
            include_dashboard=False,
            object_store_memory=store * 1024 * 1024 if store else None,
            **common,
        )
    return True


