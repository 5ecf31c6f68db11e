"""Paired comparisons over tasks, with a bootstrap interval that says when it cannot be had.

Two sides (a team and a baseline) scored on the same tasks and seeds: the difference of
their means, and a percentile bootstrap interval that resamples tasks with replacement,
keeping each task's two scores together (the pairing removes the tasks' own difficulty
from the spread). The generator is seeded, so the same scores give the same interval.

Fewer than ``MIN_TASKS`` common tasks give no interval (``ci95`` None, ``why`` says so):
a bootstrap over 4 tasks is mostly the 4 tasks, and one where every difference is equal
collapses to a point that looks like certainty; so does any set of tasks where every
difference is the same (both sides scoring 0 everywhere, say), which gets no interval either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MIN_TASKS = 10
RESAMPLES = 2000


@dataclass(frozen=True)
class PairedGain:
    gain: float  # mean of a - mean of b, over the common tasks
    ci95: tuple[float, float] | None  # percentile bootstrap over tasks; None: see why
    tasks: int
    why: str | None = None  # why there is no interval

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "gain": self.gain,
            "gain_ci95": list(self.ci95) if self.ci95 is not None else None,
            "tasks": self.tasks,
        }
        if self.why is not None:
            out["gain_ci95_why"] = self.why
        return out


def paired_gain(
    a: Mapping[int, float],
    b: Mapping[int, float],
    *,
    resamples: int = RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
    min_tasks: int = MIN_TASKS,
) -> PairedGain:
    """``a`` against ``b``, each a score per task seed, on the seeds both have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("no task is common to both sides")
    diff = np.array([a[s] - b[s] for s in seeds], dtype=float)  # (T,)
    gain = float(diff.mean())
    if len(seeds) < min_tasks:
        why = f"{len(seeds)} tasks are too few for an interval (at least {min_tasks})"
        return PairedGain(gain, None, len(seeds), why)
    if np.all(diff == diff[0]):
        # every resample would give the same mean: an interval of zero width is no certainty,
        # it is two sides at a floor or ceiling (or copies of each other) on these tasks
        why = (
            f"all {len(seeds)} tasks give the same difference ({diff[0]:+g}): nothing to "
            "resample (both sides at a floor or a ceiling?)"
        )
        return PairedGain(gain, None, len(seeds), why)
    picks = np.random.default_rng(seed).integers(0, len(seeds), size=(resamples, len(seeds)))
    boot = diff[picks].mean(axis=1)  # (R,)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(boot, [tail, 1 - tail])
    return PairedGain(gain, (float(lo), float(hi)), len(seeds))
