"""Checks every scenario's tests run the same way: PettingZoo conformance, seeding, playing.

Each takes a factory or an env built by the calling test, asserts, and returns what the
test may want to check further.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pettingzoo
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

Policy = Callable[[str, str], str]  # (agent, observation) -> completion


def junk_outputs(answer: str) -> list[str]:
    """Model output of every bad shape, two of them ending in a valid ``answer`` line."""
    return [
        "",
        "日本語の答え: ١٢ 🤖" * 200,
        bytes(range(256)).decode("latin-1") * 50,
        f"{answer} " + "\x00\x1b[31m" * 1000,
        "7" * 100_000,
        "x" * 100_000 + answer,
    ]


def check_pettingzoo_conformance(make: Callable[[], ParallelEnv]) -> None:
    """PettingZoo's parallel API test and seed test on envs from ``make``."""
    parallel_api_test(make(), num_cycles=10)
    parallel_seed_test(make)


def check_same_seed_replays(
    make: Callable[[], ParallelEnv],
    actions: Callable[[ParallelEnv], Sequence[dict[str, str]]],
) -> list[Any]:
    """Seed 7 twice gives the same trace (reset, then every step); seed 8 another reset.

    ``actions(env)``, called after the reset, gives each step's actions. Returns seed 7's
    trace: ``[reset result, step result, ...]``.
    """

    def episode(seed: int) -> list[Any]:
        env = make()
        trace: list[Any] = [env.reset(seed=seed)]
        trace += [env.step(step_actions) for step_actions in actions(env)]
        return trace

    first = episode(7)
    assert first == episode(7)
    assert first[0] != episode(8)[0]  # the seed chooses what is dealt
    return first


def check_reset_continues_the_seeded_stream(env: ParallelEnv, agent: str) -> None:
    """A ``reset()`` without a seed draws the next episode of the last seed's stream."""
    first = env.reset(seed=1)[0][agent]
    second = env.reset()[0][agent]
    assert first != second
    assert env.reset(seed=1)[0][agent] == first
    assert env.reset()[0][agent] == second


def check_registered_with_pettingzoo(env_id: str, env_class: type, team: Sequence[str]) -> None:
    """``pettingzoo.make`` builds ``env_class`` for its default ``team``, which then plays."""
    env = pettingzoo.make("parallel", env_id, rounds=1)
    assert isinstance(env, env_class)
    assert env.possible_agents == list(team)
    observations, _ = env.reset(seed=0)
    assert set(observations) == set(team)


def play(env: ParallelEnv, policy: Policy, seed: int) -> dict[str, dict[str, Any]]:
    """One episode with ``policy(agent, observation) -> completion``; the last step's infos."""
    observations, _ = env.reset(seed=seed)
    while env.agents:
        actions = {a: policy(a, observations[a]) for a in env.agents}
        observations, *_, infos = env.step(actions)
    return infos
