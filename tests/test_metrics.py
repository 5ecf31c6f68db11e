"""Collaboration metrics on hand-built transcripts, against hand-computed values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analysis.metrics import (
    STATES,
    answer_dynamics,
    communication_cost,
    influence,
    scores_by_seed,
    singles_by_seed,
    team_gain,
    training_summary,
)

TARGET = 5


def turn(round: int, agent: str, answer: int | None, **extra: Any) -> dict[str, Any]:
    info = {"answer": answer, "correct": answer == TARGET, "parsed": answer is not None}
    return {"round": round, "agent": agent, "text": "", "token_ids": [], "info": info, **extra}


def message(sender: str, recipients: list[str], round: int, content: str = "") -> dict:
    return {
        "sender": sender,
        "recipients": recipients,
        "round": round,
        "channel": "message",
        "content": content,
        "meta": {},
    }


def record(turns: list, messages: list | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "index": 0,
        "seed": 0,
        "scenario": "debate_v0",
        "agents": ["a", "b", "c"],
        "phase": "team",
        "turns": turns,
        "rewards": [0.0, 0.0],
        "messages": messages or [],
        "metrics": {"score": 0.0},
        "return": 0.0,
        **fields,
    }


def debate() -> list[dict[str, Any]]:
    """Two episodes of three agents, target 5.

    episode 1: round 0: a=5 b=3 c=unparsed; round 1: a=5 b=5 c=4
    episode 2: round 0: a=2 b=2 c=5;        round 1: a=2 b=7 c=2
    """
    one = [turn(0, "a", 5), turn(0, "b", 3), turn(0, "c", None)]
    one += [turn(1, "a", 5), turn(1, "b", 5), turn(1, "c", 4)]
    one.append({"round": 1, "agent": "judge", "text": "", "token_ids": [], "info": {}})
    two = [turn(0, "a", 2), turn(0, "b", 2), turn(0, "c", 5)]
    two += [turn(1, "a", 2), turn(1, "b", 7), turn(1, "c", 2)]
    messages_one = [
        message("a", ["b", "c"], 0),
        message("a", ["b"], 0),  # a second message on the same edge in the same round
        message("b", ["a"], 0),
        message("a", ["b"], 1),  # the last round: nobody answers after it
    ]
    messages_two = [message("c", ["a", "b"], 0), message("a", ["b"], 0)]
    return [record(one, messages_one), record(two, messages_two, seed=1)]


# ------------------------------------------------------------------ team gain


def test_team_gain_uses_the_common_seeds_and_picks_the_best_mean() -> None:
    team = {0: 1.0, 1: 0.0, 2: 1.0, 3: 1.0}
    singles = {
        "a": {0: 1.0, 1: 0.0, 2: 0.0, 3: 0.0, 9: 1.0},  # seed 9: the team never played it
        "b": {0: 0.0, 1: 1.0, 2: 1.0, 3: 0.0},
    }
    gain = team_gain(team, singles, min_tasks=1)
    assert gain.tasks == 4
    assert gain.team == 0.75
    assert (gain.best_single_agent, gain.best_single) == ("b", 0.5)
    assert gain.mean_single == pytest.approx(0.375)
    assert gain.gain_vs_best == pytest.approx(0.25)
    assert gain.gain_vs_mean == pytest.approx(0.375)
    for lo, hi in (gain.ci_vs_best, gain.ci_vs_mean):
        assert -1 <= lo < hi <= 1
    assert gain.ci_vs_best[0] <= gain.gain_vs_best <= gain.ci_vs_best[1]
    assert team_gain(team, singles, min_tasks=1) == gain  # seeded: the same intervals again
    assert json.loads(json.dumps(gain.to_dict()))["ci_vs_best"] == list(gain.ci_vs_best)


def test_team_gain_resamples_tasks_in_pairs() -> None:
    # the team and the agent score the same on every task: every paired resample gives 0,
    # where resampling them independently would not
    same = {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0}
    gain = team_gain(same, {"a": dict(same)}, min_tasks=1)
    assert gain.gain_vs_best == 0.0 and gain.ci_vs_best == (0.0, 0.0)


def test_too_few_tasks_give_no_interval() -> None:
    """4 tasks where the team and the agent agree give no interval, not a certain-looking
    [+0.0, +0.0]; from 10 tasks on there is one."""
    same = {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0}
    gain = team_gain(same, {"a": dict(same)})
    assert gain.ci_vs_best is None and gain.ci_vs_mean is None and gain.tasks == 4
    many = {s: float(s % 2) for s in range(10)}
    assert team_gain(many, {"a": {s: 0.0 for s in range(10)}}).ci_vs_best is not None


def test_team_gain_interval_is_the_percentile_interval_of_resampled_means() -> None:
    # per-task gains 1 and 0: a resampled mean is 0, 0.5 or 1 with chance 1/4, 1/2, 1/4
    team, singles = {0: 1.0, 1: 0.0}, {"a": {0: 0.0, 1: 0.0}}
    assert team_gain(team, singles, min_tasks=1).ci_vs_best == (0.0, 1.0)  # 2.5%, 97.5%
    assert team_gain(team, singles, confidence=0.4, min_tasks=1).ci_vs_best == (0.5, 0.5)


def test_team_gain_tie_goes_to_the_first_agent_and_bad_input_is_refused() -> None:
    gain = team_gain({0: 1.0}, {"x": {0: 0.5}, "y": {0: 0.5}})
    assert gain.best_single_agent == "x"
    with pytest.raises(ValueError, match="no task seed is common"):
        team_gain({0: 1.0}, {"x": {1: 0.5}})
    with pytest.raises(ValueError, match="at least one single agent"):
        team_gain({0: 1.0}, {})
    with pytest.raises(ValueError, match="confidence"):
        team_gain({0: 1.0}, {"x": {0: 1.0}}, confidence=1.0)


def test_scores_by_seed_averages_a_phase_and_falls_back_to_the_return() -> None:
    records = [
        record([], seed=0, metrics={"score": 1.0}),
        record([], seed=0, metrics={"score": 0.0}),
        record([], seed=1, metrics={}, **{"return": 0.5}),
        record([], seed=2, phase="single:a", agents=["a"], metrics={"score": 1.0}),
        record([], seed=2, phase="single", agents=["b"], metrics={"score": 0.25}),
    ]
    assert scores_by_seed(records, "team") == {0: 0.5, 1: 0.5}
    assert singles_by_seed(records) == {"a": {2: 1.0}, "b": {2: 0.25}}


# ------------------------------------------------------------------ answer dynamics


def test_answer_dynamics_by_hand() -> None:
    d = answer_dynamics(debate())
    assert d.episodes == 2 and d.skipped_turns == 1  # the judge's turn has no answer
    assert d.answers == [6, 6]
    # modal holders / answering agents: r0 1/3 and 2/3, r1 2/3 and 2/3
    assert d.agreement == pytest.approx([0.5, 2 / 3])
    assert d.accuracy == pytest.approx([1 / 3, 1 / 3])
    assert d.transitions == {
        "wrong->right": 1,  # b in episode 1
        "right->wrong": 1,  # c in episode 2
        "wrong->wrong_other": 1,  # b in episode 2: 2 -> 7
        "unchanged_right": 1,  # a in episode 1
        "unchanged_wrong": 1,  # a in episode 2
        "none->right": 0,
        "none->wrong": 1,  # c in episode 1
        "right->none": 0,
        "wrong->none": 0,
        "none->none": 0,
    }
    assert d.unchanged == 2
    assert d.transitions_by_agent["b"]["wrong->right"] == 1
    assert d.transitions_by_agent["b"]["wrong->wrong_other"] == 1
    assert d.states == STATES == ("right", "wrong", "none")
    assert d.transition_matrices == {"0->1": [[1, 1, 0], [1, 2, 0], [0, 1, 0]]}
    # votes: ep1 r0 5 (a tie 5/3 goes to a, first in team order) right, ep1 r1 5 right,
    # ep2 r0 2 wrong, ep2 r1 2 wrong; wrong members under a right vote: b, c, then c
    assert d.majority_right_individual_wrong == 3
    assert d.majority_right_individual_wrong_rate == pytest.approx(3 / 6)
    assert d.individual_right_majority_wrong == 1  # c in episode 2, round 0
    assert d.individual_right_majority_wrong_rate == pytest.approx(1 / 6)
    json.dumps(d.to_dict())


def test_answer_dynamics_without_answers_is_empty() -> None:
    turns = [
        {"round": 0, "agent": "a", "text": "", "token_ids": [], "info": {"role": "speaker"}},
        {"round": 1, "agent": "b", "text": "", "token_ids": [], "info": {"choice": "red"}},
    ]
    d = answer_dynamics([record(turns, scenario="referential_v0")])
    assert d.episodes == 0 and d.skipped_turns == 2
    assert d.agreement == d.accuracy == d.answers == []
    assert set(d.transitions.values()) == {0} and d.transition_matrices == {}
    assert d.majority_right_individual_wrong_rate is None
    assert d.individual_right_majority_wrong_rate is None


# ------------------------------------------------------------------ influence


def test_influence_by_hand() -> None:
    configured = [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a"), ("b", "c")]
    inf = influence(debate(), configured)
    edges = {(e.sender, e.recipient): e for e in inf.edges}
    assert list(edges) == [("a", "b"), ("a", "c"), ("b", "a"), ("c", "a"), ("c", "b")]
    ab = edges[("a", "b")]
    # a told b 5 while b said 3, and b said 5 next: the one chance, taken (the repeat and
    # the last-round message add deliveries, not chances; episode 2 they agreed already)
    assert (ab.deliveries, ab.opportunities, ab.adoptions, ab.rate) == (4, 1, 1, 1.0)
    assert (edges[("a", "c")].opportunities, edges[("a", "c")].rate) == (0, None)  # c unparsed
    for quiet in [("b", "a"), ("c", "a"), ("c", "b")]:
        e = edges[quiet]
        assert (e.deliveries, e.opportunities, e.adoptions, e.rate) == (1, 1, 0, 0.0)
    assert inf.out_strength == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert inf.in_strength == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert inf.pagerank["a"] > inf.pagerank["b"] and inf.pagerank["a"] > inf.pagerank["c"]
    assert sum(inf.pagerank.values()) == pytest.approx(1.0)
    assert inf.configured_unused == [("b", "c")]
    assert inf.unconfigured_used == [("c", "b")]
    assert inf.jaccard == pytest.approx(4 / 6)
    graph = inf.graph()
    assert graph["a"]["b"]["weight"] == 1.0 and graph["a"]["b"]["adoptions"] == 1
    assert graph["a"]["c"]["weight"] == 0.0
    json.dumps(inf.to_dict())


def test_influence_without_answers_or_configured_graph() -> None:
    turns = [{"round": 0, "agent": "a", "text": "", "token_ids": [], "info": {}}]
    inf = influence([record(turns, [message("a", ["b"], 0)])])
    assert [(e.sender, e.recipient, e.deliveries, e.rate) for e in inf.edges] == [
        ("a", "b", 1, None)
    ]
    assert inf.pagerank == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert inf.configured_unused is None and inf.jaccard is None


# ------------------------------------------------------------------ cost


def test_communication_cost_by_hand() -> None:
    new = record(
        [
            turn(0, "a", 5, token_ids=[1, 2, 3], prompt_ids=[0] * 10),
            turn(0, "b", 5, token_ids=[1], prompt_ids=[0] * 4),
        ],
        [message("a", ["b", "c"], 0, "hello"), message("b", ["a"], 0, "hi")],
        metrics={"score": 1.0},
    )
    # an older record: prompt length as a count, no score in the metrics
    old = record([turn(0, "a", 5, token_ids=[1, 2], prompt_tokens=6)], metrics={})
    cost = communication_cost([new, old])
    assert cost.episodes == 2
    assert (cost.messages, cost.deliveries, cost.message_chars) == (1.0, 1.5, 3.5)
    assert (cost.completion_tokens, cost.prompt_tokens) == (3.0, 10.0)
    assert cost.score == 0.5
    assert cost.score_per_1k_tokens == pytest.approx(0.5 / 0.003)
    assert cost.per_agent["a"] == {
        "turns": 1.0,
        "completion_tokens": 2.5,
        "prompt_tokens": 8.0,
        "messages": 0.5,
        "message_chars": 2.5,
    }
    assert cost.per_agent["b"]["completion_tokens"] == 0.5
    assert [(e.sender, e.recipient, e.deliveries, e.chars) for e in cost.per_edge] == [
        ("a", "b", 0.5, 2.5),
        ("a", "c", 0.5, 2.5),
        ("b", "a", 0.5, 1.0),
    ]
    json.dumps(cost.to_dict())


def test_communication_cost_without_tokens_or_records() -> None:
    scripted = communication_cost([record([turn(0, "a", 5)], metrics={"score": 1.0})])
    assert scripted.completion_tokens == 0 and scripted.score_per_1k_tokens is None
    empty = communication_cost([])
    assert empty.episodes == 0 and empty.score is None and empty.per_edge == []


# ------------------------------------------------------------------ training


def step_line(step: int, reward: float, kl: float, **more: Any) -> dict[str, Any]:
    line = {
        "step": step,
        "tasks": [step],
        "reward_mean": reward,
        "reward_std": 0.5,
        "score_mean": reward,
        "advantage_abs_mean": reward / 2,
        "flat_group_fraction": 0.0,
        "tokens": 100,
        "seconds": 2.0,
        "reward_mean/a": reward,
        "reward_mean/b": reward,
    }
    for policy in ("a", "b"):
        line |= {f"{policy}/{k}": kl for k in ("loss", "kl", "grad_norm", "clipped", "lr")}
    return line | more


def test_training_summary_by_hand() -> None:
    lines = [
        {"step": 0, "eval/team": 0.25, "eval/single/a": 0.5, "eval/single/b": 0.25}
        | {"eval/best_single": 0.5, "eval/team_gain": -0.25},
        step_line(1, 0.5, 0.01),
        step_line(
            2,
            1.0,
            0.03,
            **{"eval/team": 0.75, "eval/single/a": 0.5, "eval/single/b": 0.5},
            **{"eval/best_single": 0.5, "eval/team_gain": 0.25},
        ),
    ]
    s = training_summary(lines)
    assert s["steps"] == [1, 2]
    assert s["reward_mean"] == [0.5, 1.0] and s["advantage_abs_mean"] == [0.25, 0.5]
    assert s["reward_by_agent"] == {"a": [0.5, 1.0], "b": [0.5, 1.0]}
    assert set(s["policies"]) == {"a", "b"}
    assert s["kl"] == {"a": [0.01, 0.03], "b": [0.01, 0.03]}
    assert s["eval"]["steps"] == [0, 2]
    assert s["eval"]["team"] == [0.25, 0.75]
    assert s["eval"]["singles"] == {"a": [0.5, 0.5], "b": [0.25, 0.5]}
    assert s["first_eval"]["step"] == 0 and s["last_eval"]["team"] == 0.75
    assert s["eval_change"] == pytest.approx(
        {"team": 0.5, "single/a": 0.0, "single/b": 0.25, "best_single": 0.0, "team_gain": 0.5}
    )
    json.dumps(s)


def test_training_summary_with_one_evaluation_has_no_change() -> None:
    s = training_summary([step_line(1, 0.5, 0.0, **{"eval/team": 0.5})])
    assert s["first_eval"] == s["last_eval"] == {"step": 1, "team": 0.5}
    assert s["eval_change"] is None and s["eval"]["singles"] == {}
    assert training_summary([])["eval"]["steps"] == []
