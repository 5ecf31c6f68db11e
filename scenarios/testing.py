"""Checks for a scenario, yours or ours: ``check_scenario("my_game_v0")`` in one call.

Every built-in scenario's tests run these, and a scenario of your own passes them before
it is worth training on:

| check                              | what it asserts                                        |
| ---------------------------------- | ------------------------------------------------------ |
| contract                           | the class and a built env keep the contract (names,    |
|                                    | ``from_options``, ``max_rounds``, team, bus)           |
| ``check_pettingzoo_conformance``   | PettingZoo's ``parallel_api_test`` and seed test       |
| ``check_same_seed_replays``        | a seed replays the same episode; another seed differs  |
| ``check_junk_actions``             | any text (empty, huge, binary, control codes) is a     |
|                                    | move: no exception, observations in their space, the   |
|                                    | episode ends within ``max_rounds`` steps with          |
|                                    | ``infos[agent]["episode"]`` holding ``score`` and      |
|                                    | ``score_by_round``, one team reward per step           |
| single agent                       | the scenario plays with one agent and no edges (the    |
|                                    | single-agent baseline every task has)                  |

Each check raises ``AssertionError`` saying what broke. ``pytest`` is not needed: call
them from a script or a notebook as well as from a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import networkx as nx
import pettingzoo
from pettingzoo import ParallelEnv
from pettingzoo.test import parallel_api_test, parallel_seed_test

from marl.core.graph import build_graph
from scenarios import SCENARIOS, class_problems, make_env

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
    actions: Callable[[ParallelEnv], Iterable[dict[str, str]]],
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
    assert first == episode(7), "the same seed played the same moves gave another episode"
    assert first[0] != episode(8)[0], "seeds 7 and 8 dealt the same episode: reset ignores seed"
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


def check_junk_actions(env: ParallelEnv, outputs: Sequence[str], seed: int = 0) -> None:
    """Play one episode per output in ``outputs``, every agent writing it at every step:
    the env takes any text, keeps observations in their spaces, gives every live agent
    one team reward per step, ends within ``max_rounds`` steps and reports the episode."""
    name = env.metadata.get("name", type(env).__name__)
    for k, output in enumerate(outputs):
        shown = repr(output[:40]) + ("..." if len(output) > 40 else "")
        observations, _ = env.reset(seed=seed + k)
        _check_in_space(env, observations, f"{name} reset(seed={seed + k})")
        steps, infos = 0, {}
        while env.agents:
            steps += 1
            assert steps <= env.max_rounds, (
                f"{name}: still live after max_rounds={env.max_rounds} steps of {shown}"
            )
            observations, rewards, _, _, infos = env.step(dict.fromkeys(env.agents, output))
            _check_in_space(env, observations, f"{name} step {steps} of {shown}")
            values = {float(r) for r in rewards.values()}
            assert len(values) <= 1, f"{name}: one team reward per step, got {rewards}"
            assert all(math.isfinite(v) for v in values), f"{name}: reward {rewards}"
        episode = next(iter(infos.values()), {}).get("episode")
        assert isinstance(episode, Mapping), (
            f"{name}: the last step's infos need 'episode' (with score and score_by_round)"
        )
        score, by_round = episode.get("score"), episode.get("score_by_round")
        assert isinstance(score, int | float) and math.isfinite(score), (
            f"{name}: episode['score'] must be a number, got {score!r}"
        )
        assert isinstance(by_round, list) and by_round, (
            f"{name}: episode['score_by_round'] must be a list with a score per round"
        )


def _check_in_space(env: ParallelEnv, observations: Mapping[str, Any], where: str) -> None:
    for agent, observation in observations.items():
        assert env.observation_space(agent).contains(observation), (
            f"{where}: the observation of '{agent}' is outside its observation space"
        )


def check_scenario(
    name: str,
    agent_ids: Sequence[str] = ("agent_0", "agent_1"),
    options: Mapping[str, Any] | None = None,
    graph: nx.DiGraph | None = None,
) -> None:
    """Every check of this module on registered scenario ``name``, built for
    ``agent_ids`` on ``graph`` (default: complete) with ``options``, and for one agent
    alone. Raises ``AssertionError`` (or the scenario's own error) at the first failure."""
    assert name in SCENARIOS, f"'{name}' is not registered; known: {', '.join(SCENARIOS)}"
    scenario = SCENARIOS[name]
    problems = class_problems(scenario.env, scenario.options)
    assert not problems, f"{name}: {'; '.join(problems)}"

    def make() -> ParallelEnv:
        return make_env(name, agent_ids, graph, options)

    check_pettingzoo_conformance(make)
    junk = junk_outputs("Answer: 1")

    def junk_moves(env: ParallelEnv) -> Iterator[dict[str, str]]:
        while env.agents:  # read as each step is played: who is live changes
            yield dict.fromkeys(env.agents, junk[0])

    check_same_seed_replays(make, junk_moves)
    check_junk_actions(make(), junk)
    solo = make_env(name, agent_ids[:1], build_graph(list(agent_ids[:1]), "none"), options)
    check_junk_actions(solo, junk[:2])

