import string

import msgpack
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test
from pydantic import ValidationError

from marl.core.graph import GraphError, build_graph
from scenarios import SCENARIOS, make_env
from scenarios.arithmetic import Problem
from scenarios.debate_v0 import DebateEnv, DebateOptions, majority_answer
from scenarios.testing import (
    check_registered_with_pettingzoo,
    check_reset_continues_the_seeded_stream,
    check_same_seed_replays,
    junk_outputs,
)

TEAM = ("agent_0", "agent_1", "agent_2")
PROBLEM = Problem("What is the result of 2+3*4?", "2+3*4", 14)


def play(env, answers_by_round, seed=0):
    """Run one episode on PROBLEM with scripted completions; returns every step's results."""
    env.reset(seed=seed, options={"problem": PROBLEM})
    steps = []
    for answers in answers_by_round:
        steps.append(env.step(dict(zip(env.agents, answers, strict=True))))
    return steps


# ---------------------------------------------------------------- PettingZoo conformance


@pytest.mark.parametrize("agents", [("solo",), TEAM])
def test_passes_pettingzoo_parallel_api_test(agents):
    parallel_api_test(DebateEnv(agents, rounds=3), num_cycles=10)


@pytest.mark.parametrize("agents", [("solo",), TEAM])
def test_passes_pettingzoo_parallel_seed_test(agents):
    parallel_seed_test(lambda: DebateEnv(agents, rounds=3, task="du"))


def test_same_seed_and_actions_replay_the_whole_episode():
    actions = [
        {"agent_0": "Answer: 5", "agent_1": "x = 7", "agent_2": "junk é"},
        {"agent_0": "**5**", "agent_1": "Answer: 6", "agent_2": ""},
        {"agent_0": "5", "agent_1": "5", "agent_2": "the answer is 5"},
    ]

    check_same_seed_replays(
        lambda: DebateEnv(TEAM, rounds=3, task="du", reward="every_round"), lambda env: actions
    )


def test_reset_without_seed_continues_the_seeded_stream():
    env = DebateEnv(TEAM, task="du")
    check_reset_continues_the_seeded_stream(env, "agent_0")


def test_registered_with_pettingzoo():
    check_registered_with_pettingzoo("marl/debate-v0", DebateEnv, TEAM)


# ---------------------------------------------------------------- observations


def test_round_zero_asks_the_question_and_the_answer_format():
    env = DebateEnv(TEAM)
    observations, infos = env.reset(options={"problem": PROBLEM})
    for text in observations.values():
        assert PROBLEM.question in text
        assert "Answer: <integer>" in text
    assert infos == {a: {} for a in TEAM}


def test_messages_follow_the_chain_graph():
    chain = build_graph(["a", "b", "c"], preset="chain")
    env = DebateEnv(["a", "b", "c"], chain, rounds=2)
    observations = play(
        env, [["Answer: 111", "b thinks. Answer: 222", "Answer: 333"], ["1", "2", "3"]]
    )[0][0]
    assert "Your previous answer: 111" in observations["a"]
    assert "222" not in observations["a"] and "333" not in observations["a"]
    assert "[a] answer: 111" in observations["b"] and "333" not in observations["b"]
    assert "[b] answer: 222" in observations["c"] and "b thinks" in observations["c"]
    assert "111" not in observations["c"]
    final = play(env, [["1", "2", "3"], ["1", "2", "3"]])[-1][-1]["a"]["episode"]
    assert final["refused"] == 0
    assert final["messages"] == 4  # a and b send each round; c has no out-edge
    assert final["deliveries"] == 4


def test_a_single_agent_sees_its_own_previous_answer():
    env = DebateEnv(["solo"], rounds=2)
    observations = play(env, [["Answer: 13"], ["Answer: 14"]])[0][0]
    assert "Your previous answer: 13" in observations["solo"]
    assert "other agents" not in observations["solo"]
    assert PROBLEM.question in observations["solo"]


def test_unparsed_previous_answer_is_shown_as_none_found():
    env = DebateEnv(TEAM, rounds=2)
    observations = play(env, [["no idea", "Answer: 14", "Answer: 14"], ["", "", ""]])[0][0]
    assert "Your previous answer: none found" in observations["agent_0"]
    assert "[agent_0] answer: none found" in observations["agent_1"]


def test_messages_carry_the_end_of_long_completions():
    env = DebateEnv(TEAM, rounds=2, message_chars=50)
    long = "reasoning " * 100 + "Answer: 14"
    observations = play(env, [[long, "Answer: 14", "Answer: 14"], ["", "", ""]])[0][0]
    received = observations["agent_1"].split("[agent_0] answer: 14\n| ")[1].split("\n")[0]
    assert received.endswith("Answer: 14") and received.startswith("...")
    assert len(received) == 50


JUNK = junk_outputs("Answer: 14")


@pytest.mark.parametrize("agents", [("solo",), TEAM])
def test_observations_stay_in_their_space_whatever_the_actions(agents):
    env = DebateEnv(agents, rounds=len(JUNK))
    for observations, *_ in play(env, [[junk] * len(agents) for junk in JUNK]):
        for agent, text in observations.items():
            assert env.observation_space(agent).contains(text), repr(text[:80])
    # transcripts show messages exactly as their recipients read them
    assert all(set(m.content) <= set(string.printable) for m in env.bus.log)


def test_observations_stay_in_their_space_whatever_the_injected_question():
    env = DebateEnv(TEAM, rounds=1)
    question = "Combien font 2+3×4 ? " * 500
    observations, _ = env.reset(options={"problem": Problem(question, "2+3*4", 14)})
    observations.update(env.step(dict.fromkeys(TEAM, "Answer: 14"))[0])
    for agent, text in observations.items():
        assert env.observation_space(agent).contains(text)


def test_huge_actions_are_read_from_their_end():
    env = DebateEnv(TEAM, rounds=1)
    infos = play(env, [["x" * 100_000 + "Answer: 14"] * 3])[0][-1]
    assert all(info["correct"] for info in infos.values())


# ---------------------------------------------------------------- rewards and metrics


def test_a_team_that_is_always_right_scores_one():
    env = DebateEnv(TEAM, rounds=2)
    steps = play(env, [["Answer: 14"] * 3] * 2)
    assert [s[1] for s in steps] == [dict.fromkeys(TEAM, 0.0), dict.fromkeys(TEAM, 1.0)]
    episode = steps[-1][-1]["agent_0"]["episode"]
    assert episode["team_correct_by_round"] == [True, True]
    assert episode["consensus"] == 1.0 and episode["target"] == 14


def test_a_team_that_is_always_wrong_scores_zero():
    env = DebateEnv(TEAM, rounds=2, reward="every_round")
    steps = play(env, [["Answer: 20"] * 3] * 2)
    assert all(reward == 0.0 for s in steps for reward in s[1].values())
    assert steps[-1][-1]["agent_1"]["episode"]["team_answer"] == 20


def test_every_round_reward_pays_each_rounds_majority():
    env = DebateEnv(TEAM, rounds=3, reward="every_round")
    rounds = [["Answer: 14"] * 3, ["Answer: 20"] * 3, ["14", "14", "20"]]
    assert [s[1]["agent_2"] for s in play(env, rounds)] == [1.0, 0.0, 1.0]


WEIGHTS = {"influence": 1.0, "corrective": 2.0, "agreeing": 0.25, "stubborn": 0.5, "following": 4.0}


def individual(step):
    return {a: info["individual_reward"] for a, info in step[-1].items()}


def test_maporl_pays_correcting_a_wrong_majority_and_penalises_following_it():
    env = DebateEnv(TEAM, rounds=2, reward="maporl", maporl=WEIGHTS)
    first, second = play(env, [["Answer: 20"] * 3, ["Answer: 14", "Answer: 20", "Answer: 20"]])
    assert individual(first) == dict.fromkeys(TEAM, 0.0)  # round 0: correctness alone
    # agent_0 corrects a wrong majority (+2); the others follow it (-4) and get half of
    # influence for their listeners (agent_0 right, the third one wrong)
    assert individual(second) == {"agent_0": 3.0, "agent_1": -3.5, "agent_2": -3.5}
    assert first[1] == dict.fromkeys(TEAM, 0.0) and second[1] == dict.fromkeys(TEAM, 0.0)


def test_maporl_pays_agreeing_with_and_penalises_resisting_a_right_majority():
    env = DebateEnv(TEAM, rounds=2, reward="maporl", maporl=WEIGHTS)
    first, second = play(env, [["Answer: 14"] * 3, ["Answer: 14", "Answer: 14", "Answer: 20"]])
    assert individual(first) == dict.fromkeys(TEAM, 1.0)
    assert individual(second) == {"agent_0": 1.75, "agent_1": 1.75, "agent_2": 0.5}
    assert second[1] == dict.fromkeys(TEAM, 1.0)  # the team reward stays 'final'


def test_maporl_credits_only_the_agents_that_heard_the_speaker():
    chain = build_graph(["a", "b", "c"], preset="chain")  # a -> b -> c
    env = DebateEnv(["a", "b", "c"], chain, rounds=2, reward="maporl", maporl=WEIGHTS)
    steps = play(env, [["Answer: 20"] * 3, ["Answer: 20", "Answer: 14", "Answer: 14"]])
    # a heard nobody (no incentive), b listened to it and is right now: +1 influence;
    # b and c each corrected the wrong answer they heard (+2); c has no listener
    assert individual(steps[-1]) == {"a": 1.0, "b": 4.0, "c": 3.0}


def test_maporl_weights_are_validated_naming_the_field():
    with pytest.raises(ValidationError, match=r"maporl\.influence"):
        make_env("debate_v0", TEAM, options={"reward": "maporl", "maporl": {"influence": -1}})
    with pytest.raises(ValidationError, match=r"maporl\.persuasive"):
        make_env("wordmath_v0", TEAM, options={"reward": "maporl", "maporl": {"persuasive": 1}})
    assert make_env("wordmath_v0", TEAM, options={"reward": "maporl"}).options.reward == "maporl"


def test_two_right_against_one_wrong_is_a_right_team():
    env = DebateEnv(TEAM, rounds=1)
    _, rewards, terminations, truncations, infos = play(env, [["14", "Answer: 14", "20"]])[0]
    assert rewards == dict.fromkeys(TEAM, 1.0)
    assert terminations == dict.fromkeys(TEAM, True) and truncations == dict.fromkeys(TEAM, False)
    assert [infos[a]["correct"] for a in TEAM] == [True, True, False]
    assert infos["agent_0"]["episode"]["consensus"] == pytest.approx(2 / 3)
    assert env.agents == []


@pytest.mark.parametrize(
    ("answers", "team_answer", "reward"),
    [
        (["14", "20", "junk"], 14, 1.0),  # tie 14/20: agent_0 answered first
        (["20", "14", "junk"], 20, 0.0),
    ],
)
def test_a_tie_goes_to_the_answer_given_first_in_team_order(answers, team_answer, reward):
    env = DebateEnv(TEAM, rounds=1)
    _, rewards, *_, infos = play(env, [answers])[0]
    assert infos["agent_2"]["episode"]["team_answer"] == team_answer
    assert rewards["agent_2"] == reward


def test_unparsed_answers_count_as_failures_and_never_win():
    env = DebateEnv(TEAM, rounds=2)
    steps = play(env, [["junk", "no idea", "Answer: 14"], ["", "?", "..."]])
    round_0, round_1 = steps[0][-1], steps[1][-1]
    assert round_0["agent_0"] == {
        "answer": None,
        "correct": False,
        "parsed": False,
        "round": 0,
        "individual_reward": 0.0,
    }
    assert round_0["agent_2"]["correct"] is True
    episode = round_1["agent_0"]["episode"]
    assert episode["parse_failures"] == 5
    assert episode["team_correct_by_round"] == [True, False]
    assert episode["team_answer"] is None and episode["consensus"] == 0.0
    assert steps[-1][1]["agent_0"] == 0.0


def test_majority_answer():
    assert majority_answer([None, 3, 5, 5]) == 5
    assert majority_answer([3, 5, None]) == 3
    assert majority_answer([None, None]) is None


def test_infos_are_msgpack_friendly():
    env = DebateEnv(TEAM, rounds=2)
    *_, infos = play(env, [["Answer: 14", "junk", "-3"], ["1", "2", "3"]])[-1]
    assert msgpack.unpackb(msgpack.packb(infos)) == infos


# ---------------------------------------------------------------- lifecycle and options


def test_step_outside_an_episode_or_with_missing_actions_fails_loudly():
    env = DebateEnv(TEAM, rounds=1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(dict.fromkeys(TEAM, "1"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="one action per live agent"):
        env.step({"agent_0": "1"})
    with pytest.raises(TypeError, match="agent_1"):
        env.step({"agent_0": "1", "agent_1": 14, "agent_2": "1"})


def test_render_shows_the_round_and_answers():
    env = DebateEnv(TEAM, rounds=2, render_mode="ansi")
    play(env, [["Answer: 14", "Answer: 9", ""]])
    text = env.render()
    assert "round 1/2" in text and "2+3*4" in text
    assert "agent_1: 9" in text and "agent_2: none found" in text


def test_graph_must_cover_exactly_the_team():
    with pytest.raises(GraphError, match="graph nodes"):
        DebateEnv(TEAM, build_graph(["agent_0", "agent_1"]))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rounds": 0}, "rounds"),
        ({"rounds": 11}, "rounds"),
        ({"reward": "sometimes"}, "reward"),
        ({"message_chars": 5}, "message_chars"),
        ({"task": "hardest"}, "task"),
        ({"task": {"operands": 9}}, "task.operands"),
        ({"turns": 2}, "turns"),
    ],
)
def test_make_env_rejects_bad_options_naming_the_field(options, field):
    with pytest.raises(ValidationError) as error:
        make_env("debate_v0", TEAM, options=options)
    assert field in str(error.value)


def test_make_env_builds_from_config_options():
    env = make_env("debate_v0", TEAM, build_graph(TEAM, "star"), {"rounds": 3, "task": "du"})
    assert env.options == DebateOptions(rounds=3, task="du")
    assert env.graph.has_edge("agent_0", "agent_2") and not env.graph.has_edge("agent_1", "agent_2")
    assert "debate_v0" in SCENARIOS and SCENARIOS["debate_v0"].env is DebateEnv
    with pytest.raises(ValueError, match=r"known: .*debate_v0"):
        make_env("chess", TEAM)


# ---------------------------------------------------------------- judge and peer display

JUDGED = ("agent_0", "agent_1", "agent_2", "judge")


def judged_env(rounds=2, **options):
    graph = build_graph(JUDGED, "star", hub="judge")
    graph.add_edges_from([("agent_0", "agent_1"), ("agent_1", "agent_0")])
    return DebateEnv(JUDGED, graph, rounds=rounds, judge="judge", **options)


@pytest.mark.parametrize("agents", [("judge",), JUDGED])
def test_passes_pettingzoo_tests_with_a_judge(agents):
    def make():
        graph = build_graph(agents, "star", hub="judge")
        return DebateEnv(agents, graph, rounds=2, judge="judge", peer_display="anonymous")

    parallel_api_test(make(), num_cycles=10)
    parallel_seed_test(make)


def test_the_judge_joins_after_the_debate_and_decides_the_team_answer():
    env = judged_env(rounds=2)
    observations, _ = env.reset(seed=0, options={"problem": PROBLEM})
    assert env.agents == ["agent_0", "agent_1", "agent_2"] and env.max_rounds == 3
    assert "judge" not in observations
    env.step({"agent_0": "Answer: 20", "agent_1": "Answer: 20", "agent_2": "Answer: 14"})
    observations, rewards, terminations, truncations, infos = env.step(
        {"agent_0": "I say 20", "agent_1": "Answer: 20", "agent_2": "so Answer: 14"}
    )
    assert env.agents == ["judge"]
    assert terminations == {"agent_0": True, "agent_1": True, "agent_2": True, "judge": False}
    assert rewards == dict.fromkeys(JUDGED, 0.0) and infos["judge"] == {}
    assert truncations == dict.fromkeys(JUDGED, False)
    view = observations["judge"]
    assert PROBLEM.question in view and "You are the judge" in view
    assert "[agent_0] answer: 20\n| I say 20" in view and "[agent_2] answer: 14" in view
    _, rewards, terminations, _, infos = env.step({"judge": "Answer: 14"})
    assert rewards == {"judge": 1.0} and terminations == {"judge": True} and env.agents == []
    episode = infos["judge"]["episode"]
    assert episode["team_answer"] == 14 and episode["score"] == 1.0  # against the majority
    assert episode["majority_answer"] == 20 and episode["majority_correct"] is False
    assert episode["score_by_round"] == [0.0, 0.0, 1.0]
    assert episode["consensus"] == pytest.approx(1 / 3)
    # debaters reach the judge only in the last debate round: 3 sends to it, 2 + 2 between
    assert episode["deliveries"] == 2 + 2 + 3 and episode["refused"] == 0
    assert msgpack.unpackb(msgpack.packb(infos)) == infos


def test_a_wrong_judge_loses_even_when_the_majority_is_right():
    env = judged_env(rounds=1, reward="every_round")
    env.reset(options={"problem": PROBLEM})
    _, rewards, *_ = env.step(dict.fromkeys(JUDGED[:3], "Answer: 14"))
    assert rewards == dict.fromkeys(JUDGED, 1.0)  # every_round pays the debaters' majority
    _, rewards, *_, infos = env.step({"judge": "no idea"})
    assert rewards == {"judge": 0.0}
    episode = infos["judge"]["episode"]
    assert episode["score"] == 0.0 and episode["majority_correct"] is True
    assert episode["parse_failures"] == 1 and episode["team_answer"] is None


def test_rollout_engine_plays_the_debaters_then_the_judge():
    from agents.team import ScriptedPolicy
    from marl.rollouts.engine import run_episodes

    policy = ScriptedPolicy(lambda agent, observation: "Answer: 7")
    (episode,) = run_episodes(lambda: judged_env(rounds=2), policy, [3])
    assert [(t.round, t.agent) for t in episode.turns][-2:] == [(1, "agent_2"), (2, "judge")]
    assert len(episode.turns) == 3 * 2 + 1 and len(episode.rewards) == 3
    assert "majority_correct" in episode.metrics


def test_the_judge_must_hear_every_debater_and_be_on_the_team():
    graph = build_graph(JUDGED, "star", hub="judge")
    graph.remove_edge("agent_1", "judge")
    with pytest.raises(GraphError, match="missing edges: agent_1->judge"):
        DebateEnv(JUDGED, graph, judge="judge")
    with pytest.raises(ValueError, match="judge 'zed' is not a team agent"):
        DebateEnv(TEAM, judge="zed")
    with pytest.raises(GraphError, match="agent_0->judge"):
        make_env("debate_v0", JUDGED, build_graph(JUDGED, "chain"), {"judge": "judge"})


def test_one_agent_alone_ignores_the_judge_option():
    for solo in ("judge", "agent_0"):
        env = DebateEnv([solo], judge="judge", rounds=2)
        assert env.judge is None and env.max_rounds == 2
        steps = play(env, [["Answer: 14"], ["Answer: 14"]])
        assert steps[-1][-1][solo]["episode"]["score"] == 1.0


def test_anonymous_peers_are_numbered_in_a_fresh_order_each_observation():
    env = DebateEnv(TEAM, rounds=2, peer_display="anonymous")
    answers = [["Answer: 11", "Answer: 12", "Answer: 13"], ["", "", ""]]
    first_shown = set()
    for seed in range(20):
        view = play(env, answers, seed=seed)[0][0]["agent_0"]
        assert "agent_1" not in view and "agent_2" not in view
        assert "[Agent 1] answer: " in view and "[Agent 2] answer: " in view
        assert "Your previous answer: 11" in view
        first_shown.add(view.split("[Agent 1] answer: ")[1][:2])
    assert first_shown == {"12", "13"}  # the order is shuffled, not fixed
    again = [play(env, answers, seed=5)[0][0]["agent_0"] for _ in range(2)]
    assert again[0] == again[1]  # and seeded


def test_max_neighbours_shown_limits_the_answers_a_debater_reads():
    agents = ("a", "b", "c", "d")
    env = DebateEnv(agents, rounds=2, max_neighbours_shown=2)
    answers = [["Answer: 1", "Answer: 2", "Answer: 3", "Answer: 4"], [""] * 4]
    subsets = set()
    for seed in range(20):
        view = play(env, answers, seed=seed)[0][0]["a"]
        shown = [line for line in view.splitlines() if line.startswith("[")]
        assert len(shown) == 2 and all(line[1] in "bcd" for line in shown)
        assert shown == sorted(shown)  # attributed: in team order
        subsets.add(tuple(line[1] for line in shown))
    assert len(subsets) == 3  # every pair of the three neighbours turns up


def test_the_judge_reads_every_debater_whatever_max_neighbours_shown():
    env = judged_env(rounds=1, max_neighbours_shown=1)
    env.reset(options={"problem": PROBLEM})
    observations = env.step({"agent_0": "1", "agent_1": "2", "agent_2": "3"})[0]
    assert observations["judge"].count("] answer: ") == 3


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"judge": ""}, "judge"),
        ({"peer_display": "hidden"}, "peer_display"),
        ({"max_neighbours_shown": 0}, "max_neighbours_shown"),
    ],
)
def test_make_env_rejects_bad_judge_and_display_options(options, field):
    with pytest.raises(ValidationError) as error:
        make_env("debate_v0", TEAM, options=options)
    assert field in str(error.value)
