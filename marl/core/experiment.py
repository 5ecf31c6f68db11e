"""The experiment file schema: a base run config, named arms of overrides, and seeds.

```yaml
name: referential_algorithms
base: ../magrpo_referential.yaml   # a run config file (relative to this file), or a mapping
set: {train.max_tokens: 20000}     # overrides every arm gets
arms:                              # name: overrides, as `--set key.path=value` takes them
  magrpo: {}
  igrpo: {train.algorithm: igrpo}
  shared: {train.policy: shared}
  grpo: {train.algorithm: grpo}
seeds: [0, 1, 2]                   # every arm runs once per seed (run.seed)
compare: [magrpo - igrpo]          # differences the report gives with intervals
resources: {cpus_per_trial: 1}     # Ray Tune: what a trial reserves, where it runs
```

Every arm x seed is a trial: the base config with ``set``, then the arm's overrides, then
``run.seed``: an ordinary ``marl train`` run (``marl.commands.experiment`` runs them).
``run.seed`` and ``run.output_dir`` belong to the experiment and cannot be overridden. This
module knows the shape of the file and builds each trial's config mapping; whether that
mapping is a valid run config is the run config schema's and the assembly layer's call.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from marl.core.config import _ID_PATTERN, ConfigError, StrictModel, describe_errors
from marl.core.config_file import set_path

RESERVED = ("run.seed", "run.output_dir")  # the experiment's own: seeds and trial folders
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]+))*$")


class ExperimentResources(StrictModel):
    """Where the trials run and what each reserves (a trial's own rollout workers,
    ``resources.workers`` of its config, are reserved with it, in one placement group)."""

    ray_address: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="join a running Ray cluster ('auto', or 'host:6379'); none: start a "
        "local instance with `cpus` CPUs",
    )
    cpus: int | None = Field(
        None, ge=1, le=100_000, description="CPUs of a local Ray instance (default: all)"
    )
    cpus_per_trial: int = Field(
        1, ge=1, le=1024, description="CPUs each trial's trainer reserves, and its threads"
    )
    gpus_per_trial: float = Field(0.0, ge=0.0, le=64.0, description="GPUs each trainer reserves")
    max_concurrent: int | None = Field(
        None, ge=1, le=100_000, description="trials at once (default: as resources allow)"
    )
    max_failures: int = Field(
        0,
        ge=0,
        le=100,
        description="times a failed trial is retried (from its last checkpoint) before it "
        "counts as failed",
    )
    object_store_mb: int | None = Field(
        None, ge=64, le=1_000_000, description="object store of a local Ray instance, MB"
    )


class ExperimentConfig(StrictModel):
    name: str = Field(
        "experiment",
        pattern=_ID_PATTERN,
        description="experiment folders are named <name>-<date>-<time>",
    )
    base: str | dict[str, Any] = Field(
        description="the run config every trial starts from: a file (relative to the "
        "experiment file) or an inline mapping; it needs a train: section"
    )
    set: dict[str, Any] = Field(
        default_factory=dict, description="overrides applied to every arm (key.path: value)"
    )
    arms: dict[str, dict[str, Any]] = Field(
        min_length=1, max_length=64, description="arm name: its overrides (key.path: value)"
    )
    seeds: list[int] = Field(
        min_length=1, max_length=100, description="run.seed of each trial of every arm"
    )
    compare: list[str] | None = Field(
        None,
        max_length=100,
        description="'a - b' pairs of arms whose differences the report gives; default: "
        "the first arm minus each other",
    )
    output_dir: str = Field("runs", description="parent folder of experiment folders")
    resources: ExperimentResources = Field(
        default_factory=ExperimentResources, description="where the trials run (below)"
    )

    @field_validator("arms")
    @classmethod
    def _arm_names(cls, arms: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, overrides in arms.items():
            if not re.fullmatch(_ID_PATTERN, name) or len(name) > 40:
                raise ValueError(
                    f"arm name {name!r}: letters, digits, '_' and '-', starting with a letter, "
                    "at most 40 characters"
                )
            _check_overrides(overrides, f"arm {name}")
        return arms

    @field_validator("set")
    @classmethod
    def _common(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        _check_overrides(overrides, "set")
        return overrides

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"a seed is given twice: {seeds}")
        if any(not 0 <= s <= 2**31 - 1 for s in seeds):
            raise ValueError("seeds are integers from 0 to 2**31 - 1")
        return seeds

    @model_validator(mode="after")
    def _pairs(self) -> ExperimentConfig:
        for pair in self.compare or []:
            a, b = parse_pair(pair)
            for arm in (a, b):
                if arm not in self.arms:
                    raise ValueError(f"compare: {arm!r} is not an arm; arms: {list(self.arms)}")
        return self

    def pairs(self) -> list[tuple[str, str]]:
        """The differences to report, as (a, b): a minus b."""
        if self.compare is not None:
            return [parse_pair(p) for p in self.compare]
        first, *others = list(self.arms)
        return [(first, other) for other in others]

    def trials(self) -> list[tuple[str, int]]:
        """(arm, seed) of every trial, seed by seed (every arm of the first seed first), so
        an experiment cut short still compares its arms."""
        return [(arm, seed) for seed in self.seeds for arm in self.arms]


def parse_pair(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(" - ")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"compare: {text!r} is not 'arm_a - arm_b'")
    return parts[0], parts[1]


def _check_overrides(overrides: dict[str, Any], where: str) -> None:
    for key in overrides:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"{where}: {key!r} is not a key path like train.lr")
        if key in RESERVED or any(key.startswith(r + ".") for r in RESERVED):
            raise ValueError(f"{where}: {key} is the experiment's own (seeds, trial folders)")
        if key == "run" or key == "train":
            raise ValueError(f"{where}: override fields one by one ({key}.<field>: value)")


def parse_experiment(data: Any, source: str) -> ExperimentConfig:
    """An ``ExperimentConfig`` from a mapping, or a ``ConfigError`` naming every bad field."""
    if not isinstance(data, dict):
        raise ConfigError([("", "the top level must be a mapping of keys to values")], source)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, ExperimentConfig), source) from None


def trial_mapping(
    base: dict[str, Any], experiment: ExperimentConfig, arm: str, seed: int, trials_dir: str
) -> dict[str, Any]:
    """The run config mapping of one trial: base, ``set``, the arm's overrides, the seed.
    A path that does not fit the base (a list index past its end) is a ``ConfigError``."""
    data = copy.deepcopy(base)
    where = f"arms.{arm}"
    for key, value in experiment.set.items():
        set_path(data, key, copy.deepcopy(value), "set")
    for key, value in experiment.arms[arm].items():
        set_path(data, key, copy.deepcopy(value), where)
    run = data.setdefault("run", {})
    if not isinstance(run, dict):
        raise ConfigError([("run", "must be a mapping")], where)
    run["seed"] = seed
    run["output_dir"] = trials_dir
    run.setdefault("tracker_group", experiment.name)
    data["name"] = arm
    return data
