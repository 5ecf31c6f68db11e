import random
import re
import string

import msgpack
import pettingzoo
import pytest
from pydantic import ValidationError

from agents.team import ScriptedPolicy
from marl.core.graph import GraphError, build_graph
from marl.rollouts.engine import run_episodes
from scenarios import SCENARIOS, make_env
from scenarios.referential_v0 import (
    COLOURS,
    MARK,
    SHAPES,
    SIZES,
    ReferentialEnv,
    ReferentialOptions,
    draw_objects,
    parse_choice,
)
from scenarios.testing import (
    check_pettingzoo_conformance,
    check_reset_continues_the_seeded_stream,
    check_same_seed_replays,
    junk_outputs,
    play,
)

TEAM = ("agent_0", "agent_1", "agent_2")


def candidates_shown(observation: str) -> list[str]:
    return [name.removesuffix(MARK) for name in re.findall(r"^\d+\. (.+)$", observation, re.M)]


# ------------------------------------------------------------ scripted teams (observations only)


def naming(agent: str, observation: str) -> str:
    """The speaker names the marked object; a listener picks the object it was told about."""
    marked = re.search(r"^\d+\. (.+)" + re.escape(MARK), observation, re.M)
    if marked:
        return f"The target is the {marked.group(1)}."
    # what it was told, or (alone) its own description: the quoted lines
    heard = "\n".join(line for line in observation.splitlines() if line.startswith("| "))
    named = [c for c in candidates_shown(observation) if c in heard]
    return f"I am sure. Answer: {named[0]}" if named else "Answer: 1"


def by_number(agent: str, observation: str) -> str:
    """The speaker gives the target's number in its list; listeners pick that number."""
    marked = re.search(r"^(\d+)\. .+" + re.escape(MARK), observation, re.M)
    if marked:
        return f"It is number {marked.group(1)}."
    told = re.search(r"number (\d+)", observation)
    return f"Answer: {told.group(1) if told else 1}"


def mute(agent: str, observation: str) -> str:
    """Never says anything useful: a blank message, then always the first candidate."""
    return "" if MARK in observation else "Answer: 1"


# ---------------------------------------------------------------- PettingZoo conformance


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReferentialEnv(["solo"]),
        lambda: ReferentialEnv(["solo"], rounds=3, candidates=6, attributes=3),
        lambda: ReferentialEnv(TEAM),
        lambda: ReferentialEnv(TEAM, build_graph(TEAM, "chain"), rounds=3, distractors="similar"),
    ],
    ids=["solo", "solo-3-rounds", "team", "chain"],
)
def test_passes_pettingzoo_parallel_api_and_seed_tests(make):
    check_pettingzoo_conformance(make)


def test_same_seed_and_actions_replay_the_whole_episode():
    actions = [{"agent_0": "the red one é"}, {"agent_1": "Answer: 2", "agent_2": "junk"}]
    check_same_seed_replays(lambda: ReferentialEnv(TEAM, candidates=8), lambda env: actions)


def test_reset_without_seed_continues_the_seeded_stream():
    env = ReferentialEnv(TEAM, candidates=8)
    check_reset_continues_the_seeded_stream(env, "agent_0")


def test_registered_with_pettingzoo_and_make_env():
    env = pettingzoo.make("parallel", "marl/referential-v0", candidates=5)
    assert isinstance(env, ReferentialEnv) and env.options.candidates == 5
    options = {"speaker": "agent_1", "distractors": "similar"}
    env = make_env("referential_v0", TEAM, build_graph(TEAM, "star", hub="agent_1"), options)
    assert env.options == ReferentialOptions(speaker="agent_1", distractors="similar")
    assert env.speaker == "agent_1" and env.listeners == ["agent_0", "agent_2"]
    assert SCENARIOS["referential_v0"].env is ReferentialEnv


# ---------------------------------------------------------------- observations and turns


def test_speaker_sees_the_target_marked_and_listeners_see_their_own_unmarked_orders():
    env = ReferentialEnv(TEAM, candidates=6)
    orders_differ = False
    for seed in range(20):
        observations, infos = env.reset(seed=seed)
        assert list(observations) == ["agent_0"] and env.agents == ["agent_0"]
        assert infos == {"agent_0": {}}
        speaker_view = observations["agent_0"]
        assert speaker_view.count(MARK) == 1 and f"{env.target}{MARK}" in speaker_view
        assert sorted(candidates_shown(speaker_view)) == sorted(env.candidates)
        observations, rewards, terminations, *_ = env.step({"agent_0": "hello"})
        assert env.agents == ["agent_1", "agent_2"]
        assert terminations == {"agent_0": True, "agent_1": False, "agent_2": False}
        assert rewards == dict.fromkeys(TEAM, 0.0)
        for listener in ("agent_1", "agent_2"):
            view = observations[listener]
            assert MARK not in view and "[round 1] agent_0:\n| hello" in view
            assert candidates_shown(view) == env.order(listener)
            assert sorted(env.order(listener)) == sorted(env.candidates)
        orders_differ |= env.order("agent_1") != env.order("agent_2")
    assert orders_differ


@pytest.mark.parametrize("team", [TEAM, ["solo"]])
def test_name_target_tells_only_the_speaker_the_name(team):
    """With `name_target` the speaker's prompt (alone or in a team) names the target in a
    sentence; the listeners' views never do, and the game draws the same objects."""
    plain, named = ReferentialEnv(team), ReferentialEnv(team, name_target=True)
    for seed in range(5):
        before = plain.reset(seed=seed)[0][team[0]]
        after = named.reset(seed=seed)[0][team[0]]
        sentence = f"The target is the {named.target}.\n"
        assert named.target == plain.target and sentence in after and sentence not in before
        assert after.replace(sentence, "") == before
        views = named.step({team[0]: "hello"})[0]
        assert all("The target is" not in view for view in views.values())


def test_listeners_relay_along_a_chain_and_never_back_to_the_speaker():
    chain = build_graph(["s", "a", "b"], "chain")
    chain.add_edge("a", "s")
    env = ReferentialEnv(["s", "a", "b"], chain, rounds=3)
    env.reset(seed=0)
    observations = env.step({"s": f"It is the {env.target}."})[0]
    assert env.target in observations["a"] and "received so far: none" in observations["b"]
    assert "also goes to: b" in observations["a"]
    observations = env.step({"a": f"Answer: {env.target}", "b": "Answer: 1"})[0]
    assert f"[round 2] a:\n| Answer: {env.target}" in observations["b"]
    infos = env.step({"a": f"Answer: {env.target}", "b": f"the {env.target}"})[-1]
    episode = infos["b"]["episode"]
    assert episode["score"] == 1.0 and episode["refused"] == 0
    assert episode["messages"] == 2  # s, then a; a never sends back to the departed s
    assert episode["solvable"] is True and episode["speaker_named_target"] is True


def test_a_lone_agent_describes_then_picks_beside_its_own_description():
    env = ReferentialEnv(["solo"], candidates=5)
    observations, _ = env.reset(seed=4)
    assert MARK in observations["solo"] and "playing alone" in observations["solo"]
    observations, _, terminations, *_ = env.step({"solo": "it is the odd one"})
    assert env.agents == ["solo"] and terminations == {"solo": False}
    assert MARK not in observations["solo"]
    assert "written when you could see it:\n| it is the odd one" in observations["solo"]
    infos = env.step({"solo": "Answer: 1"})[-1]
    assert infos["solo"]["episode"]["chance"] == pytest.approx(1 / 5)
    assert infos["solo"]["episode"]["messages"] == 0


JUNK = junk_outputs("Answer: 2")


@pytest.mark.parametrize("agents", [("solo",), TEAM])
def test_observations_stay_in_their_space_whatever_the_actions(agents):
    env = ReferentialEnv(agents, build_graph(agents, "ring"), rounds=len(JUNK), message_chars=4000)
    observations, _ = env.reset(seed=0)
    for junk in JUNK:
        for agent, text in observations.items():
            assert env.observation_space(agent).contains(text), repr(text[:80])
        observations, *_, infos = env.step(dict.fromkeys(env.agents, junk))
    assert all(env.observation_space(a).contains(t) for a, t in observations.items())
    listener = env.listeners[0]
    assert infos[listener]["choice"] == env.order(listener)[1]  # the end of a huge answer
    assert all(set(m.content) <= set(string.printable) for m in env.bus.log)


# ---------------------------------------------------------------- rewards and chance


@pytest.mark.parametrize(
    ("agents", "preset", "rounds"),
    [(("solo",), "none", 2), (TEAM, "complete", 2), (TEAM, "chain", 3), (TEAM[:2], "ring", 4)],
)
def test_a_team_that_names_the_target_always_succeeds(agents, preset, rounds):
    env = ReferentialEnv(agents, build_graph(agents, preset), rounds=rounds, candidates=8)
    for seed in range(30):
        infos = play(env, naming, seed)
        episode = infos[env.listeners[-1]]["episode"]
        assert episode["score"] == 1.0 and episode["listeners_correct"] == 1.0
        assert episode["score_by_round"][0] == 0.0 and episode["score_by_round"][-1] == 1.0
        assert all(info["individual_reward"] == 1.0 for info in infos.values())


def test_similar_distractors_need_every_attribute_and_still_succeed_when_named():
    env = ReferentialEnv(TEAM, candidates=6, attributes=3, distractors="similar")
    for seed in range(20):
        assert play(env, naming, seed)["agent_1"]["episode"]["score"] == 1.0
        target = env.target.split()
        assert len(target) == 3 and target[0] in SIZES and target[1] in COLOURS
        assert target[2] in SHAPES
        for other in env.candidates:
            if other != env.target:
                assert sum(a != b for a, b in zip(other.split(), target, strict=True)) == 1


@pytest.mark.parametrize(
    ("agents", "policy", "candidates"),
    [
        (TEAM[:2], mute, 4),  # one listener: 1/4
        (TEAM, mute, 3),  # two listeners: (1/3)^2
        (TEAM[:2], by_number, 4),  # a number means nothing in another's shuffled list
        (("solo",), mute, 4),  # alone with an empty description
    ],
    ids=["mute-1-listener", "mute-2-listeners", "numbers-only", "mute-alone"],
)
def test_a_team_that_does_not_describe_scores_at_chance_level(agents, policy, candidates):
    env = ReferentialEnv(agents, candidates=candidates)
    episodes = 2000
    results = [play(env, policy, seed)[env.listeners[0]]["episode"] for seed in range(episodes)]
    chance = (1 / candidates) ** len(env.listeners)
    assert results[0]["chance"] == pytest.approx(chance)
    rate = sum(e["score"] for e in results) / episodes
    assert abs(rate - chance) < 0.045  # over 4.5 standard errors; describing scores 1.0


def test_unparsed_picks_are_wrong_and_counted():
    env = ReferentialEnv(TEAM, rounds=3)
    env.reset(seed=0)
    env.step({"agent_0": ""})
    env.step({"agent_1": "no idea", "agent_2": "Answer: 9"})
    *_, infos = env.step({"agent_1": "", "agent_2": "Answer: 2"})
    assert infos["agent_1"]["parsed"] is False and infos["agent_1"]["choice"] is None
    assert infos["agent_2"]["choice"] == env.order("agent_2")[1]
    assert infos["agent_1"]["episode"]["parse_failures"] == 3
    assert msgpack.unpackb(msgpack.packb(infos)) == infos


def test_rollout_engine_plays_speaker_then_listeners():
    make = lambda: ReferentialEnv(TEAM)  # noqa: E731
    episodes = run_episodes(make, ScriptedPolicy(naming), [0, 1, 2])
    for episode in episodes:
        assert episode.rewards == [0.0, 1.0] and episode.metrics["score"] == 1.0
        assert [(t.round, t.agent) for t in episode.turns] == [
            (0, "agent_0"),
            (1, "agent_1"),
            (1, "agent_2"),
        ]


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("Answer: 2", 1),
        ("answer: red circle", 1),
        ("**Answer:** #4", 3),
        ("The answer is the red square.", 3),
        ("Answer: number 1", 0),
        ("The target is the Red  Circle.", 1),  # a name anywhere, any case or spacing
        ("1. blue square 2. red circle. The answer is 2", 1),  # the marker wins
        ("It must be blue square, not red square", 3),  # the last name mentioned
        ("I pick 3", 2),  # the last number in range
        ("Answer: 7", None),  # out of range
        ("Answer: 0", None),
        ("red", None),  # not a whole candidate
        ("", None),
        ("x" * 100_000, None),
        ("x" * 100_000 + "Answer: blue square", 0),
        ("🤖 Answer: 3 ١٢", 2),
    ],
)
def test_parse_choice(text, index):
    assert parse_choice(text, ["blue square", "red circle", "green star", "red square"]) == index


def test_draw_objects_is_seeded_and_distinct():
    a = draw_objects(random.Random(3), 10, 3, "random")
    assert a == draw_objects(random.Random(3), 10, 3, "random")
    target, candidates = a
    assert len(set(candidates)) == 10 and target in candidates


# ---------------------------------------------------------------- lifecycle and options


def test_step_outside_an_episode_or_with_missing_actions_fails_loudly():
    env = ReferentialEnv(TEAM)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"agent_0": "1"})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="one action per live agent"):
        env.step({"agent_1": "1"})
    with pytest.raises(TypeError, match="agent_0"):
        env.step({"agent_0": 3})


def test_render_shows_target_message_and_picks():
    env = ReferentialEnv(TEAM, render_mode="ansi")
    env.reset(seed=0)
    env.step({"agent_0": "the one"})
    env.step({"agent_1": f"Answer: {env.target}", "agent_2": ""})
    text = env.render()
    assert f"target {env.target}" in text and "agent_0 (speaker): the one" in text
    assert f"agent_1: {env.target}" in text and "agent_2: -" in text


def test_speaker_must_be_a_team_agent_except_for_a_lone_agent():
    with pytest.raises(ValueError, match="speaker 'zed' is not a team agent"):
        ReferentialEnv(TEAM, speaker="zed")
    solo = ReferentialEnv(["solo"], speaker="zed")
    assert solo.speaker == "solo" and solo.listeners == ["solo"]
    with pytest.raises(GraphError, match="graph nodes"):
        ReferentialEnv(TEAM, build_graph(["agent_0", "agent_1"]))


def test_a_speaker_without_a_path_to_a_listener_makes_the_game_unsolvable():
    graph = build_graph(TEAM, "chain")
    assert ReferentialEnv(TEAM, graph, rounds=2).solvable is False
    assert ReferentialEnv(TEAM, graph, rounds=3).solvable is True
    infos = play(ReferentialEnv(TEAM, graph, rounds=2), naming, seed=0)
    assert infos["agent_2"]["episode"]["solvable"] is False


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rounds": 1}, "rounds"),
        ({"candidates": 1}, "candidates"),
        ({"candidates": 11}, "candidates"),
        ({"attributes": 4}, "attributes"),
        ({"distractors": "hard"}, "distractors"),
        ({"speaker": ""}, "speaker"),
        ({"message_chars": 5}, "message_chars"),
        ({"listeners": 2}, "listeners"),
    ],
)
def test_make_env_rejects_bad_options_naming_the_field(options, field):
    with pytest.raises(ValidationError) as error:
        make_env("referential_v0", TEAM, options=options)
    assert field in str(error.value)
