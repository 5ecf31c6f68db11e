"""Which tasks a run plays: task seeds and the split of a scenario's data.

| split   | task seeds                                   | scenario option      |
| ------- | -------------------------------------------- | -------------------- |
| none    | ``run.seed + k``, as `marl simulate` plays   | as configured        |
| `train` | ``run.seed + k``, all below 1,000,000        | `split: train`       |
| `test`  | ``1,000,000 + run.seed + k``                 | `split: test`        |

``k`` runs over ``run.episodes``. The option column applies to scenarios with a fixed
data set and a ``split`` option (coding_v0: a fixed 124/40 cut of HumanEval). Scenarios
without one generate their tasks from the seed (debate_v0, wordmath_v0, relay_v0,
referential_v0), so the seed range is the split. `marl train` draws its training tasks
below 1,000,000 (``train_seeds``) and evaluates on the test seeds (``eval_config``), so
`marl eval --split test` scores a team on the trainer's held-out tasks.
"""

from __future__ import annotations

from typing import Any, Literal

from marl.assembly import scenario_options
from marl.core.config import ConfigError, RunConfig

TEST_SEED_OFFSET = 1_000_000
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")


def split_seeds(config: RunConfig, split: Split | None) -> list[int]:
    """The task seeds of ``split`` (see the table above); train seeds stay below the test range."""
    first = config.run.seed + (TEST_SEED_OFFSET if split == "test" else 0)
    seeds = list(range(first, first + config.run.episodes))
    if split == "train" and seeds[-1] >= TEST_SEED_OFFSET:
        raise ConfigError(
            [
                (
                    "run.seed",
                    f"the train split uses seeds below {TEST_SEED_OFFSET:,}; run.seed + "
                    f"run.episodes = {seeds[-1] + 1:,} reaches into the test seeds",
                )
            ]
        )
    return seeds


def split_config(config: RunConfig, split: Split | None) -> tuple[RunConfig, dict[str, Any] | None]:
    """The config with the scenario's ``split`` option set when it has one, and what was done."""
    if split is None:
        return config, None
    has_option = "split" in type(scenario_options(config)).model_fields
    if has_option:
        config = config.model_copy(deep=True)
        config.scenario.options = {**config.scenario.options, "split": split}
        how = f"scenario option split={split}, and seeds of the {split} range"
    else:
        how = (
            f"{config.scenario.name} has no split option: its tasks are generated from the "
            f"seed, so the {split} split is its seed range"
        )
    return config, {"name": split, "scenario_option": has_option, "how": how}


def train_seeds(config: RunConfig, step: int) -> list[int]:
    """The training tasks of ``step`` (0-based): fixed by the run seed and the step, and
    always below the held-out seed range."""
    per_step = config.train.tasks_per_step
    first = config.run.seed * 7919 + step * per_step
    return [(first + k) % TEST_SEED_OFFSET for k in range(per_step)]


def eval_config(config: RunConfig) -> RunConfig:
    """The config the held-out evaluation of `marl train` plays: test split,
    ``train.eval_episodes`` tasks."""
    config = config.model_copy(deep=True)
    config.run.episodes = config.train.eval_episodes
    return split_config(config, "test")[0]
