"""The rollout engine: lockstep episodes, batched policy calls, recorded episodes."""

from __future__ import annotations

import re

from agents.team import ActRequest, ScriptedPolicy
from marl.core.graph import build_graph
from marl.rollouts.engine import request_seed, run_episodes
from scenarios.arithmetic import evaluate
from scenarios.debate_v0 import DebateEnv

AGENTS = ["a", "b", "c"]


def solver(agent_id: str, observation: str) -> str:
    """Answers correctly, except agent c which always says 0 in the first round."""
    question = re.search(r"What is the result of ([0-9+*-]+)\?", observation).group(1)
    if agent_id == "c" and "previous answer" not in observation:
        return "Answer: 0"
    return f"It is {evaluate(question)}.\nAnswer: {evaluate(question)}"


def make_env() -> DebateEnv:
    return DebateEnv(agent_ids=AGENTS, graph=build_graph(AGENTS), rounds=2, task="easy")


class CountingPolicy(ScriptedPolicy):
    def __init__(self, answer):
        super().__init__(answer)
        self.calls: list[list[ActRequest]] = []

    def act(self, requests):
        self.calls.append(list(requests))
        return super().act(requests)


def test_episodes_record_turns_rewards_messages_and_metrics() -> None:
    episodes = run_episodes(make_env, ScriptedPolicy(solver), seeds=[1, 2, 3])
    assert [e.seed for e in episodes] == [1, 2, 3]
    for e in episodes:
        assert len(e.turns) == 2 * len(AGENTS)
        assert e.rewards == [0.0, 1.0]  # reward="final": paid at the last round
        assert e.metrics["score_by_round"] == [1.0, 1.0]  # 2 of 3 right is a right majority
        assert e.metrics["consensus"] == 1.0  # c changed its mind in round 2
        assert len(e.messages) == 2 * len(AGENTS)
        assert all(m["sender"] != r for m in e.messages for r in m["recipients"])
        c_round2 = next(t for t in e.turns if t.agent == "c" and t.round == 1)
        assert "[a] answer:" in c_round2.observation


def test_one_policy_call_per_round_across_episodes() -> None:
    policy = CountingPolicy(solver)
    run_episodes(make_env, policy, seeds=range(5), batch_size=64)
    assert [len(call) for call in policy.calls] == [15, 15]
    chunked = CountingPolicy(solver)
    run_episodes(make_env, chunked, seeds=range(5), batch_size=4)
    assert [len(call) for call in chunked.calls] == [4, 4, 4, 3] * 2


def test_request_seeds_depend_on_episode_agent_round_only() -> None:
    assert request_seed(1, "a", 0) == request_seed(1, "a", 0)
    seeds = {request_seed(e, a, r) for e in range(3) for a in AGENTS for r in range(2)}
    assert len(seeds) == 18
    policy = CountingPolicy(solver)
    run_episodes(make_env, policy, seeds=[7])
    assert policy.calls[0][0].seed == request_seed(7, "a", 0)


def test_tiny_model_episodes_do_not_depend_on_batching(tiny_backend) -> None:
    from agents.backend import Sampling
    from agents.team import LLMAgent, Team

    sampling = Sampling(temperature=1.0, max_new_tokens=6)
    team = Team(
        [LLMAgent(a, "solver", "You are {id}.", "tiny-random", sampling) for a in AGENTS],
        {"tiny-random": tiny_backend},
    )
    whole = run_episodes(make_env, team, seeds=[0, 1], batch_size=64)
    split = run_episodes(make_env, team, seeds=[0, 1], batch_size=1)
    assert [t.token_ids for e in whole for t in e.turns] == [
        t.token_ids for e in split for t in e.turns
    ]
    turn = whole[0].turns[0]
    assert len(turn.token_ids) == len(turn.logprobs) > 0
    assert len(turn.prompt_ids) > 0
