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

Training groups (``collect_groups``, by `train.joint` and `train.multi_turn`): G whole
episodes per task (``run_episodes``, grouped by ``marl.trainers.magrpo.groups_from_episodes``),
a tree that branches G ways from every history (``run_tree``), or every one of the G^N
combinations of the agents' G samples in a single-turn scenario (``run_cross``). The
scenario is read through the contract's two helpers, ``scenarios.base.team_reward`` and
``scenarios.base.episode_metrics``.
"""

from __future__ import annotations

import copy
import itertools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pettingzoo import ParallelEnv

from agents.backend import Completion
from agents.team import ActRequest, Policy
from marl.core.config import TrainConfig
from marl.rollouts.records import Episode, Group, JointRollout, Turn
from marl.trainers.magrpo import groups_from_episodes
from scenarios.base import episode_metrics, team_reward


def request_seed(episode_seed: int, agent_id: str, round: int, sample: int = 0) -> int:
    """A sampling seed from the task seed, the agent, the round and the sample index only.

    ``sample`` tells apart the G rollouts of one task in a training group (and training
    steps revisiting a task); plain simulation uses sample 0.
    """
    entropy = [episode_seed, zlib.crc32(agent_id.encode()), round, sample]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def act_in_chunks(
    policy: Policy,
    requests: Sequence[ActRequest],
    batch_size: int,
    on_turns: Callable[[int], None] | None = None,
) -> list[Completion]:
    """The policy's completions for ``requests``, at most ``batch_size`` per call."""
    completions: list[Completion] = []
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        completions += policy.act(chunk)
        if on_turns:
            on_turns(len(chunk))
    return completions


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
        completions = act_in_chunks(policy, requests, batch_size, on_turns)
        actions: dict[int, dict[str, str]] = {i: {} for i in live}
        for (i, agent), completion in zip(slots, completions, strict=True):
            actions[i][agent] = completion.text
        by_slot = dict(zip(slots, zip(requests, completions, strict=True), strict=True))
        for i in live:
            env, episode = envs[i], episodes[i]
            obs, rewards, _terminations, _truncations, infos = env.step(actions[i])
            episode.rewards.append(team_reward(rewards))
            for agent in actions[i]:
                request, completion = by_slot[(i, agent)]
                episode.turns.append(_turn(round, agent, request, completion, rewards, infos))
            observations[i] = obs
            if not env.agents:
                episode.metrics = episode_metrics(infos)
                episode.messages = [m.to_dict() for m in env.bus.log]
                env.close()
        live = [i for i in live if envs[i].agents]
        round += 1
    return episodes


# ------------------------------------------------------------------ training groups


def agent_rewards(turns: Sequence[Turn], team_reward: float, individual: bool) -> dict[str, float]:
    """What each agent learns from at one round: the shared team reward or its own."""
    if not individual:
        return {t.agent: team_reward for t in turns}
    return {t.agent: float(t.info["individual_reward"]) for t in turns}


@dataclass
class _Node:
    env: ParallelEnv
    observations: dict[str, str]
    seed: int
    path: tuple[int, ...]
    parent: JointRollout | None


def branch_sample(sample_base: int, path: Sequence[int]) -> int:
    """A sample index for a node of a rollout tree, unique per (base, path)."""
    return int(np.random.SeedSequence([sample_base, len(path), *path]).generate_state(1)[0])


def run_tree(
    make_env: Callable[[], ParallelEnv],
    policy: Policy,
    seeds: Sequence[int],
    branching: int,
    *,
    gamma: float = 1.0,
    individual: bool = False,
    sample_base: int = 0,
    batch_size: int = 32,
) -> list[Group]:
    """`tree` mode: from every history, G joint actions; each child env is a copy stepped once.

    Costs G^T joint actions per task for T rounds. Returns every node's group with
    R = r + gamma * mean(R of the children), the reference MAGRPO's tree returns.
    """
    frontier = []
    for seed in seeds:
        env = make_env()
        observations, _ = env.reset(seed=seed)
        frontier.append(_Node(env, observations, seed, (), None))
    groups: list[Group] = []
    joint_reward: dict[int, float] = {}  # id(rollout) -> the joint reward of its step
    round = 0
    while frontier:
        slots = [
            (node, g, agent)
            for node in frontier
            for g in range(branching)
            for agent in node.env.agents
        ]
        requests = [
            ActRequest(
                agent,
                node.observations[agent],
                request_seed(node.seed, agent, round, branch_sample(sample_base, (*node.path, g))),
            )
            for node, g, agent in slots
        ]
        completions = act_in_chunks(policy, requests, batch_size)
        chosen = {
            (id(node), g, agent): (r, c)
            for (node, g, agent), r, c in zip(slots, requests, completions, strict=True)
        }
        next_frontier = []
        for node in frontier:
            group = Group(node.seed, round, [])
            for g in range(branching):
                env = copy.deepcopy(node.env)
                picked = {a: chosen[(id(node), g, a)] for a in node.env.agents}
                obs, rewards, _, _, infos = env.step({a: c.text for a, (_, c) in picked.items()})
                turns = [_turn(round, a, r, c, rewards, infos) for a, (r, c) in picked.items()]
                team = team_reward(rewards)
                rollout = JointRollout(turns, agent_rewards(turns, team, individual))
                joint_reward[id(rollout)] = team
                group.rollouts.append(rollout)
                if env.agents:
                    next_frontier.append(_Node(env, obs, node.seed, (*node.path, g), rollout))
                else:
                    rollout.metrics = episode_metrics(infos)
                    rollout.messages = [m.to_dict() for m in env.bus.log]
            if node.parent is not None:
                node.parent.child = group
            groups.append(group)
        frontier = next_frontier
        round += 1
    # Team value of every node, bottom up: what an agent that has left the episode (a
    # referential speaker after round 1) still earns from the team's later rewards.
    team_return: dict[int, float] = {}
    for group in reversed(groups):  # children were appended after their parents
        for rollout in group.rollouts:
            below = rollout.child.rollouts if rollout.child else []
            n = max(len(below), 1)
            team_future = sum(team_return[id(c)] for c in below) / n
            team_return[id(rollout)] = joint_reward[id(rollout)] + gamma * team_future
            for agent, reward in rollout.rewards.items():
                future = team_future
                if individual:  # igrpo: its own later rewards (none once it has left)
                    future = sum(c.returns.get(agent, 0.0) for c in below) / n
                rollout.returns[agent] = reward + gamma * future
    return groups


def run_cross(
    make_env: Callable[[], ParallelEnv],
    policy: Policy,
    seeds: Sequence[int],
    group_size: int,
    *,
    individual: bool = False,
    sample_base: int = 0,
    batch_size: int = 32,
) -> list[Group]:
    """`cross` joint mode (single turn): each agent samples G completions and every one of the
    G^N combinations is played; an agent's completion is scored by the mean team reward of the
    combinations it took part in. Rollout g of a group is the joint action of every agent's
    g-th completion: its turns, metrics and bus log are those of that combination, (g, ..., g);
    its rewards and returns are each completion's mean over the product."""
    groups = []
    for seed in seeds:
        env = make_env()
        observations, _ = env.reset(seed=seed)
        agents = list(env.agents)
        requests = [
            ActRequest(a, observations[a], request_seed(seed, a, 0, sample_base + g))
            for g in range(group_size)
            for a in agents
        ]
        completions = act_in_chunks(policy, requests, batch_size)
        picked = {
            (g, a): (requests[g * len(agents) + i], completions[g * len(agents) + i])
            for g in range(group_size)
            for i, a in enumerate(agents)
        }
        totals = {(g, a): 0.0 for g in range(group_size) for a in agents}
        own: dict[int, JointRollout] = {}  # g -> the combination (g, ..., g), as it was played
        for combo in itertools.product(range(group_size), repeat=len(agents)):
            branch = copy.deepcopy(env)
            _, rewards, _, _, infos = branch.step(
                {a: picked[(g, a)][1].text for g, a in zip(combo, agents, strict=True)}
            )
            if branch.agents:
                raise ValueError("joint mode 'cross' needs a single-turn scenario (rounds: 1)")
            step_turns = [
                _turn(0, a, *picked[(g, a)], rewards, infos)
                for g, a in zip(combo, agents, strict=True)
            ]
            shares = agent_rewards(step_turns, team_reward(rewards), individual)
            for g, a in zip(combo, agents, strict=True):
                totals[(g, a)] += shares[a]
            if len(set(combo)) == 1:
                own[combo[0]] = JointRollout(
                    step_turns,
                    {},
                    metrics=episode_metrics(infos),
                    messages=[m.to_dict() for m in branch.bus.log],
                )
        share = group_size ** (len(agents) - 1)  # combinations each completion took part in
        for g, rollout in own.items():
            rollout.rewards = {a: totals[(g, a)] / share for a in agents}
            rollout.returns = dict(rollout.rewards)
        groups.append(Group(seed, 0, [own[g] for g in range(group_size)]))
    return groups


def _turn(
    round: int, agent: str, request: ActRequest, completion: Completion, rewards: dict, infos: dict
) -> Turn:
    return Turn(
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


def collect_groups(
    make_env: Callable[[], ParallelEnv],
    policy: Policy,
    train: TrainConfig,
    seeds: Sequence[int],
    step: int,
    batch_size: int,
) -> list[Group]:
    """Step ``step``'s training groups on ``seeds``, by the configured joint / multi-turn
    mode. Sampling seeds depend on the task, the step and the sample only, so any split of
    ``seeds`` (across Ray workers) plays the same rollouts."""
    individual = train.algorithm == "igrpo"
    base = step * train.group_size
    if train.joint == "cross":
        return run_cross(
            make_env,
            policy,
            seeds,
            train.group_size,
            individual=individual,
            sample_base=base,
            batch_size=batch_size,
        )
    if train.multi_turn == "tree":
        return run_tree(
            make_env,
            policy,
            seeds,
            train.group_size,
            gamma=train.gamma,
            individual=individual,
            sample_base=step,
            batch_size=batch_size,
        )
    episodes = run_episodes(
        make_env,
        policy,
        [s for s in seeds for _ in range(train.group_size)],
        samples=[base + g for _ in seeds for g in range(train.group_size)],
        batch_size=batch_size,
    )
    return groups_from_episodes(episodes, train.gamma, individual)
