"""Rollouts played in this process: on the transformers backend, or on vLLM engines.

Both play through the same engine (``marl.rollouts.engine``) with a ``Policy`` (a
``Team``); they differ in where the weights live. ``TransformersRollouts`` generates with
the trainer's own modules, so an optimiser step is seen by the next rollout with nothing
to copy. ``VLLMRollouts`` generates on vLLM engines, which hold a copy: after an update its
``VLLMPolicies`` mirror is synced (adapters or full weights, see ``agents.vllm_backend``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from agents.team import MutedAgents, Policy, Team
from agents.vllm_backend import VLLMPolicies
from marl.core.config import TrainConfig
from marl.rollouts.engine import collect_groups, run_episodes
from marl.rollouts.interface import EnvMaker
from marl.rollouts.records import Episode, Group


class InProcessRollouts:
    """The play of both in-process implementations: ``policy`` acts, ``batch_size``
    prompts per backend call at most."""

    def __init__(self, policy: Policy, batch_size: int, version: int | None = None):
        self.policy = policy
        self.batch_size = batch_size
        self.version = version

    def episodes(
        self,
        make_env: EnvMaker,
        seeds: Sequence[int],
        *,
        samples: Sequence[int] | None = None,
        muted: Collection[str] = (),
        on_turns: Callable[[int], None] | None = None,
    ) -> list[Episode]:
        policy = MutedAgents(self.policy, muted) if muted else self.policy
        return run_episodes(
            make_env,
            policy,
            seeds,
            samples=samples,
            batch_size=self.batch_size,
            on_turns=on_turns,
        )

    def groups(
        self, make_env: EnvMaker, seeds: Sequence[int], step: int, train: TrainConfig
    ) -> list[Group]:
        groups = collect_groups(make_env, self.policy, train, seeds, step, self.batch_size)
        for group in groups:
            group.policy_version = self.version
        return groups

    def load_weights(self, version: int) -> None:
        self.version = version

    def step_report(self, groups: Sequence[Group], expected_version: int) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


class TransformersRollouts(InProcessRollouts):
    """On transformers backends that hold the trainer's own modules (``Policies.team``), or
    the config's models as they are (``marl.assembly.build_team``): new weights need no copy."""


class VLLMRollouts(InProcessRollouts):
    """On vLLM engines: a ``VLLMPolicies`` mirror of the trainer's policies, synced by
    ``load_weights``; or, to play a config's models as they are, a ``Team`` of
    ``VLLMBackend``s."""

    def __init__(
        self, engines: VLLMPolicies | Team, batch_size: int, version: int | None = None
    ):
        self.mirror = engines if isinstance(engines, VLLMPolicies) else None
        self.team = engines.team if isinstance(engines, VLLMPolicies) else engines
        super().__init__(self.team, batch_size, version)

    def load_weights(self, version: int) -> None:
        if version == self.version:
            return
        if self.mirror is None:
            raise RuntimeError("these vLLM rollouts play fixed models; no policies to sync")
        self.mirror.sync()
        self.version = version

    def close(self) -> None:
        """Stop the engines' processes (safe to call twice)."""
        for backend in self.team.backends.values():
            backend.close()
        self.team.backends.clear()
