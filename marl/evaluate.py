"""`marl eval`: the team against each of its agents alone, on the same tasks and seeds.

The team plays ``run.episodes`` tasks; then every agent plays the single-agent version of
the same tasks alone (phase ``single:<id>``), with the same task and sampling seeds. Each
phase goes through ``marl.simulate.play`` and into one run folder like `marl simulate`'s;
``summary.json`` adds the comparison: each agent's score alone, the best and the mean
single score, and the team gain over both.

Splits (``--split``), fixed by seed so train and test tasks never meet:

| split   | task seeds                                   | scenario option      |
| ------- | -------------------------------------------- | -------------------- |
| none    | ``run.seed + k``, as `marl simulate` plays   | as configured        |
| `train` | ``run.seed + k``, all below 1,000,000        | `split: train`       |
| `test`  | ``1,000,000 + run.seed + k``                 | `split: test`        |

``k`` runs over ``run.episodes``. The option column applies to scenarios with a fixed
data set and a ``split`` option (coding_v0: a fixed 124/40 cut of HumanEval). Scenarios
without one generate their tasks from the seed (debate_v0, wordmath_v0, relay_v0,
referential_v0), so the seed range is the split; the summary says which applied. The test
seeds are the ones `marl train` evaluates on (its training tasks use seeds below
1,000,000), so `marl eval --split test` scores a team on the trainer's held-out tasks.

Left out: evaluating trained checkpoints (this evaluates the config's models as they are).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from agents.team import Policy
from marl.config import ConfigError, RunConfig
from marl.runs import RunFolder
from marl.simulate import play, record_phase

TEST_SEED_OFFSET = 1_000_000
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")


def gain_summary(team_score: float, singles: Mapping[str, float]) -> dict[str, Any]:
    """The team against its members alone: best single (first in team order on a tie),
    mean single, team minus best single, team minus mean single."""
    best = max(singles, key=singles.__getitem__)  # max keeps the first of equal scores
    mean = sum(singles.values()) / len(singles)
    return {
        "singles": dict(singles),
        "best_single": {"id": best, "score": singles[best]},
        "mean_single": mean,
        "team_gain": team_score - singles[best],
        "team_gain_vs_mean": team_score - mean,
    }


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
    has_option = "split" in type(config.scenario_options()).model_fields
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


def evaluate(
    config: RunConfig,
    policy: Policy,
    split: Split | None = None,
    on_turns: Callable[[int], None] | None = None,
) -> tuple[RunFolder, dict[str, Any]]:
    """Play the team, then each agent alone, on the same seeds; write and return the run folder."""
    seeds = split_seeds(config, split)
    config, split_info = split_config(config, split)
    folder = RunFolder.create(config.run.output_dir, config.name)
    folder.write_config(config.resolved())
    ids = config.team.ids
    phases = []
    for name, agent_ids in [("team", ids)] + [(f"single:{a}", [a]) for a in ids]:
        phase = play(config, policy, agent_ids, name, on_turns, seeds=seeds)
        record_phase(folder, phase)
        phases.append(phase)
    summary = {
        "name": config.name,
        "scenario": config.scenario.name,
        "run_folder": str(folder.path),
        "split": split_info,
        "seeds": seeds,
        "phases": {p.name: p.summary() for p in phases},
    }
    singles = {a: summary["phases"][f"single:{a}"]["score"] for a in ids}
    summary |= gain_summary(summary["phases"]["team"]["score"], singles)
    folder.write_summary(summary)
    return folder, summary
