"""The rollout engine: steps many episodes at once, one policy call per round.

Every live agent of every live episode is gathered into one list of ``ActRequest``s per
round, handed to the policy in chunks of ``batch_size`` (so one backend call serves many
agents and episodes), and the completions are stepped back into their environments. What
each agent saw and produced (token ids, logprobs), the team rewards, the messages the bus
carried and the scenario's episode metrics are recorded as ``Episode``s for transcripts,
scoring and training.

Request seeds come from ``(episode seed, agent id, round)`` only, so an agent's sample in
an episode does not depend on batch size, chunking or on which other agents are present:
the single-agent baseline reproduces that agent's first-round answer in the team exactly.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv

from agents.team import ActRequest, Policy


def request_seed(episode_seed: int, agent_id: str, round: int, sample: int = 0) -> int:
    """A sampling seed from the task seed, the agent, the round and the sample index only.

    ``sample`` tells apart the G rollouts of one task in a training group (and training
    steps revisiting a task); plain simulation uses sample 0.
    """
    entropy = [episode_seed, zlib.crc32(agent_id.encode()), round, sample]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass(slots=True)
class Turn:
    """One agent's action in one round of one episode."""

    round: int
    agent: str
    observation: str
    text: str
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    reward: float
    info: dict[str, Any]


@dataclass(slots=True)
class Episode:
    index: int
    seed: int  # the task seed: episodes of one training group share it
    sample: int  # which rollout of that task (sampling seeds differ per sample)
    scenario: str
    agents: list[str]
    turns: list[Turn] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)  # team reward per round
    messages: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # the scenario's infos["episode"]

    @property
    def team_return(self) -> float:
        return float(sum(self.rewards))

    @property
    def completion_tokens(self) -> int:
        return sum(len(t.token_ids) for t in self.turns)

    @property
    def prompt_tokens(self) -> int:
        return sum(len(t.prompt_ids) for t in self.turns)

    def to_record(self) -> dict[str, Any]:
        """A msgpack-friendly dict (one transcript frame)."""
        record = asdict(self)
        record["return"] = self.team_return
        return record


def run_episodes(
    make_env: Callable[[], ParallelEnv],
    policy: Policy,
    seeds: Sequence[int],
    *,
    samples: Sequence[int] | None = None,
    batch_size: int = 32,
    on_turns: Callable[[int], None] | None = None,
) -> list[Episode]:
    """Play one episode per seed, all in lockstep; ``on_turns(n)`` reports finished turns.

    ``samples[k]`` is episode k's sample index (default 0): the same task seed with another
    sample index is another rollout of the same task.
    """
    samples = list(samples) if samples is not None else [0] * len(seeds)
    envs = [make_env() for _ in seeds]
    observations = []
    episodes = []
    for index, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
        obs, _ = env.reset(seed=seed)
        observations.append(obs)
        episodes.append(
            Episode(index, seed, samples[index], env.metadata["name"], list(env.possible_agents))
        )
    live = [i for i, env in enumerate(envs) if env.agents]
    round = 0
    while live:
        slots = [(i, agent) for i in live for agent in envs[i].agents]
        requests = [
            ActRequest(
                agent, observations[i][agent], request_seed(seeds[i], agent, round, samples[i])
            )
            for i, agent in slots
        ]
        completions = []
        for start in range(0, len(requests), batch_size):
            completions += policy.act(requests[start : start + batch_size])
            if on_turns:
                on_turns(len(requests[start : start + batch_size]))
        actions: dict[int, dict[str, str]] = {i: {} for i in live}
        for (i, agent), completion in zip(slots, completions, strict=True):
            actions[i][agent] = completion.text
        by_slot = dict(zip(slots, zip(requests, completions, strict=True), strict=True))
        for i in live:
            env, episode = envs[i], episodes[i]
            obs, rewards, _terminations, _truncations, infos = env.step(actions[i])
            team_reward = float(next(iter(rewards.values()))) if rewards else 0.0
            episode.rewards.append(team_reward)
            for agent in actions[i]:
                request, completion = by_slot[(i, agent)]
                episode.turns.append(
                    Turn(
                        round=round,
                        agent=agent,
                        observation=request.observation,
                        text=completion.text,
                        prompt_ids=completion.prompt_token_ids,
                        token_ids=completion.token_ids,
                        logprobs=completion.logprobs,
                        finish_reason=completion.finish_reason,
                        reward=float(rewards.get(agent, 0.0)),
                        info={k: v for k, v in infos.get(agent, {}).items() if k != "episode"},
                    )
                )
            observations[i] = obs
            if not env.agents:
                last = next(iter(infos.values()), {})
                episode.metrics = dict(last.get("episode", {}))
                episode.messages = [m.to_dict() for m in env.bus.log]
                env.close()
        live = [i for i in live if envs[i].agents]
        round += 1
    return episodes
