"""Who plays the rollouts: one interface, whatever the engine behind it.

The training loop and evaluation hold a ``Rollouts`` and never ask which one it is.
Implementations: ``TransformersRollouts`` and ``VLLMRollouts`` (``marl.rollouts.local``,
in this process) and ``RayRollouts`` (``marl.rollouts.ray_workers``, on Ray actors); a
new engine (an HTTP server, a GPU pool) is one more class. ``marl.assembly.build_rollouts``
picks one from the config's ``resources``.

What every implementation guarantees:

* the same seeds give the same episodes and groups, however the work is split or batched
  (sampling seeds come from the task, agent, round and sample only: ``engine.request_seed``);
* episodes and groups come back in the order of ``seeds``;
* ``load_weights(v)`` makes every later call play with the trainer's policies as they are
  now, under version ``v`` (the training step), recorded on every group it plays; a call
  with the version already loaded costs nothing;
* ``close()`` stops whatever it started (engines, actors); calling it twice is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from pettingzoo import ParallelEnv

from marl.core.config import TrainConfig
from marl.rollouts.records import Episode, Group

EnvMaker = Callable[[], ParallelEnv]  # a fresh env of the scenario for the agents that play


class Rollouts(Protocol):
    version: int | None  # the weights it plays with (a training step); None: as built

    def episodes(
        self,
        make_env: EnvMaker,
        seeds: Sequence[int],
        *,
        samples: Sequence[int] | None = None,
        muted: Collection[str] = (),
        on_turns: Callable[[int], None] | None = None,
    ) -> list[Episode]:
        """One episode per seed; ``samples[k]`` (default 0) is episode k's sample index, so
        one task played again with another index is another independent draw. ``muted``
        agents take their turns with an empty completion (`marl eval --ablate`);
        ``on_turns(n)`` is told of finished agent turns."""
        ...

    def groups(
        self, make_env: EnvMaker, seeds: Sequence[int], step: int, train: TrainConfig
    ) -> list[Group]:
        """Training step ``step``'s groups of ``seeds``, by ``train``'s joint and multi-turn
        modes (``engine.collect_groups``)."""
        ...

    def load_weights(self, version: int) -> None: ...

    def step_report(self, groups: Sequence[Group], expected_version: int) -> dict[str, Any]:
        """What this implementation adds to a training step's metrics line (Ray: workers
        replaced, weights reloaded, stale groups); in this process: nothing."""
        ...

    def close(self) -> None: ...
