import itertools
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
from scenarios.relay_v0 import RelayEnv, RelayOptions, guess_chance
from scenarios.testing import (
    check_pettingzoo_conformance,
    check_reset_continues_the_seeded_stream,
    check_same_seed_replays,
    junk_outputs,
    play,
)

TEAM = ("agent_0", "agent_1", "agent_2")


# ------------------------------------------------------------ scripted teams (observations only)


def own_numbers(observation: str) -> list[int]:
    found = re.search(r"Your secret numbers?: ([0-9, ]+)", observation)
    return [int(n) for n in found.group(1).split(",")] if found else []


def known_numbers(observation: str) -> dict[str, int]:
    """Every number an agent knows of, keyed 'holder#k': its own and those it was told."""
    me = re.search(r"You are (\w+)", observation).group(1)
    known = {f"{me}#{k}": n for k, n in enumerate(own_numbers(observation))}
    for line in observation.splitlines():
        if line.startswith("| "):  # what it was told
            known |= {key: int(n) for key, n in re.findall(r"(\w+#\d+)=(\d+)", line)}
    return known


def relaying(agent: str, observation: str) -> str:
    """Passes on every number it knows with its holder; in the last round adds them up."""
    known = known_numbers(observation)
    if "(the last)" in observation:
        return f"Answer: {sum(known.values())}"
    return "; ".join(f"{key}={n}" for key, n in sorted(known.items()))


def silent(agent: str, observation: str) -> str:
    """Never talks; in the last round guesses its own numbers plus the most likely rest."""
    if "(the last)" not in observation:
        return ""
    mine = own_numbers(observation)
    total = int(re.search(r"the sum of all (\d+)", observation).group(1))
    digits = len(str(mine[0]))
    low, high = 10 ** (digits - 1), 10**digits - 1
    hidden = total - len(mine)
    return f"Answer: {sum(mine) + hidden * (low + high) // 2}"


# ---------------------------------------------------------------- PettingZoo conformance


@pytest.mark.parametrize(
    "make",
    [
        lambda: RelayEnv(["solo"]),
        lambda: RelayEnv(["solo"], numbers=3, rounds=3),
        lambda: RelayEnv(TEAM),
        lambda: RelayEnv(TEAM, build_graph(TEAM, "chain"), rounds=3, reporter="agent_2"),
    ],
    ids=["solo", "solo-3-numbers", "team", "chain-reporter"],
)
def test_passes_pettingzoo_parallel_api_and_seed_tests(make):
    check_pettingzoo_conformance(make)


def test_same_seed_and_actions_replay_the_whole_episode():
    actions = [
        {"agent_0": "I hold 12", "agent_1": "", "agent_2": "junk é" * 50},
        {"agent_0": "Answer: 5", "agent_1": "x", "agent_2": "Answer: 150"},
    ]
    check_same_seed_replays(lambda: RelayEnv(TEAM, digits=3), lambda env: actions)


def test_reset_without_seed_continues_the_seeded_stream():
    env = RelayEnv(TEAM, digits=4)
    check_reset_continues_the_seeded_stream(env, "agent_0")


def test_registered_with_pettingzoo_and_make_env():
    env = pettingzoo.make("parallel", "marl/relay-v0", rounds=3)
    assert isinstance(env, RelayEnv) and env.max_rounds == 3
    env = make_env("relay_v0", TEAM, build_graph(TEAM, "ring"), {"digits": 3, "numbers": 4})
    assert env.options == RelayOptions(digits=3, numbers=4)
    assert SCENARIOS["relay_v0"].env is RelayEnv


# ---------------------------------------------------------------- observations


def test_each_agent_sees_only_its_own_number():
    env = RelayEnv(TEAM)
    observations, _ = env.reset(seed=3, options={"numbers": [11, 22, 33]})
    assert "Your secret number: 11" in observations["agent_0"]
    for agent, mine in zip(TEAM, ("11", "22", "33"), strict=True):
        others = {"11", "22", "33"} - {mine}
        assert mine in observations[agent]
        assert not any(n in observations[agent] for n in others)
        assert (
            "round 1 of 2" in observations[agent]
            and "Write one short message" in observations[agent]
        )


def test_numbers_are_dealt_round_robin_and_one_agent_alone_sees_them_all():
    env = RelayEnv(TEAM, numbers=4)
    observations, _ = env.reset(options={"numbers": [11, 22, 33, 44]})
    assert "Your secret numbers: 11, 44" in observations["agent_0"]
    assert "Your secret number: 33" in observations["agent_2"]
    solo = RelayEnv(["solo"], numbers=3)
    observations, _ = solo.reset(options={"numbers": [11, 22, 33]})
    assert "Your secret numbers: 11, 22, 33" in observations["solo"]
    assert "playing alone" in observations["solo"]
    assert play(solo, relaying, seed=0)["solo"]["episode"]["score"] == 1.0


def test_messages_follow_the_chain_graph_one_hop_per_round():
    chain = build_graph(["a", "b", "c"], preset="chain")
    env = RelayEnv(["a", "b", "c"], chain, rounds=3)
    env.reset(options={"numbers": [11, 22, 33]})
    observations = env.step({"a": "a#0=11", "b": "b#0=22", "c": "c#0=33"})[0]
    assert "[round 1] a:\n| a#0=11" in observations["b"]
    assert "[round 1] b:\n| b#0=22" in observations["c"] and "11" not in observations["c"]
    assert "[round 1]" not in observations["a"]  # nobody talks to a
    observations = env.step({"a": "", "b": "a#0=11; b#0=22", "c": "hi"})[0]
    assert "[round 2] b:\n| a#0=11; b#0=22" in observations["c"]
    assert "(the last)" in observations["c"] and "Answer: <integer>" in observations["c"]
    episode = env.step({"a": "1", "b": "2", "c": "Answer: 66"})[-1]["c"]["episode"]
    assert episode["refused"] == 0 and episode["messages"] == 3  # a's blank sends nothing
    assert episode["answers"] == {"a": 1, "b": 2, "c": 66}
    assert episode["agents_correct"] == pytest.approx(1 / 3) and episode["score"] == 0.0


def test_observation_of_a_two_agent_game():
    env = RelayEnv(["alice", "bob"])
    observations, _ = env.reset(options={"numbers": [42, 17]})
    assert observations["alice"] == (
        "Relay game, round 1 of 2.\n"
        "You are alice, on a team with bob.\n"
        "The team has 2 secret numbers; each agent sees only its own.\n"
        "In the last round, every agent must give the sum of all 2.\n"
        "Your secret number: 42\n"
        "Messages you received: none.\n"
        "Write one short message to bob with every secret number you know and whose it is, "
        'like "alice: 42".'
    )
    observations = env.step({"alice": "alice: 42", "bob": "Bob here: my number is 17."})[0]
    assert observations["alice"] == (
        "Relay game, round 2 of 2 (the last).\n"
        "You are alice, on a team with bob.\n"
        "The team has 2 secret numbers; each agent sees only its own.\n"
        "In the last round, every agent must give the sum of all 2.\n"
        "Your secret number: 42\n"
        "Messages you received:\n"
        "[round 1] bob:\n"
        "| Bob here: my number is 17.\n"
        "Question: what is the sum of all 2 secret numbers (yours and those in the messages)? "
        "Think step by step, then finish with a line `Answer: <integer>`."
    )
    assert "[round 1] alice:\n| alice: 42" in observations["bob"]


JUNK = junk_outputs("Answer: 14")


@pytest.mark.parametrize("agents", [("solo",), TEAM])
def test_observations_stay_in_their_space_whatever_the_actions(agents):
    env = RelayEnv(agents, rounds=len(JUNK), message_chars=4000)
    observations, _ = env.reset(seed=0)
    for junk in JUNK:
        for agent, text in observations.items():
            assert env.observation_space(agent).contains(text), repr(text[:80])
        observations, *_, infos = env.step(dict.fromkeys(env.agents, junk))
    assert all(env.observation_space(a).contains(t) for a, t in observations.items())
    assert infos[agents[0]]["answer"] == 14  # the end of a huge answer is read
    assert all(set(m.content) <= set(string.printable) for m in env.bus.log)


def test_unparsed_answers_are_wrong_and_counted():
    env = RelayEnv(TEAM)
    env.reset(options={"numbers": [1, 2, 3]})
    env.step(dict.fromkeys(TEAM, ""))
    *_, infos = env.step({"agent_0": "no idea", "agent_1": "Answer: 6", "agent_2": "6"})
    assert infos["agent_0"]["parsed"] is False and infos["agent_0"]["correct"] is False
    assert infos["agent_1"]["individual_reward"] == 1.0
    assert infos["agent_0"]["episode"]["parse_failures"] == 1
    assert infos["agent_0"]["episode"]["messages"] == 0


# ---------------------------------------------------------------- rewards and chance


@pytest.mark.parametrize(
    ("agents", "preset", "rounds", "reporter"),
    [
        (("solo",), "none", 2, None),
        (TEAM, "complete", 2, None),
        (TEAM, "ring", 3, None),
        (TEAM, "chain", 3, "agent_2"),  # only the chain's end can hear every number
    ],
)
def test_a_team_that_relays_everything_always_succeeds(agents, preset, rounds, reporter):
    graph = build_graph(agents, preset)
    env = RelayEnv(agents, graph, rounds=rounds, digits=3, reporter=reporter)
    for seed in range(30):
        infos = play(env, relaying, seed)
        episode = infos[agents[-1]]["episode"]
        assert episode["score"] == 1.0 and episode["solvable"] is True
        assert episode["score_by_round"] == [0.0] * (rounds - 1) + [1.0]
        assert infos[agents[-1]]["correct"]


def test_a_chain_too_short_for_the_rounds_is_unsolvable_even_for_a_perfect_team():
    env = RelayEnv(TEAM, build_graph(TEAM, "chain"), rounds=2)
    scores = [play(env, relaying, seed)["agent_0"]["episode"] for seed in range(20)]
    assert all(e["solvable"] is False and e["score"] == 0.0 for e in scores)
    # ... unless only the last agent, which hears everyone in time, must report
    env = RelayEnv(TEAM, build_graph(TEAM, "chain"), rounds=3, reporter="agent_2")
    assert all(play(env, relaying, seed)["agent_0"]["episode"]["score"] for seed in range(20))


def test_a_silent_team_scores_at_chance_level():
    # One hidden one-digit number: the best blind guess is right 1 time in 9.
    env = RelayEnv(["a", "b"], digits=1, reporter="b")
    episodes = 3000
    wins = sum(play(env, silent, seed)["a"]["episode"]["score"] for seed in range(episodes))
    chance = guess_chance(1, 1)
    assert chance == pytest.approx(1 / 9)
    assert abs(wins / episodes - chance) < 0.03  # 5 standard errors; a talking team gets 1.0
    assert play(env, silent, 0)["a"]["episode"]["chance"] == pytest.approx(chance)


def test_a_silent_team_with_default_numbers_almost_never_succeeds():
    env = RelayEnv(TEAM)  # two digits, everybody must be right
    episodes = 1000
    wins = sum(play(env, silent, seed)["agent_0"]["episode"]["score"] for seed in range(episodes))
    assert wins / episodes <= 0.01
    assert play(env, silent, 0)["agent_0"]["episode"]["chance"] == pytest.approx(guess_chance(2, 2))


@pytest.mark.parametrize(("hidden", "digits"), [(0, 2), (1, 1), (2, 1), (3, 1), (1, 2), (2, 2)])
def test_guess_chance_is_the_most_likely_sum(hidden, digits):
    values = range(10 ** (digits - 1), 10**digits)
    counts: dict[int, int] = {}
    for draw in itertools.product(values, repeat=hidden):
        counts[sum(draw)] = counts.get(sum(draw), 0) + 1
    assert guess_chance(hidden, digits) == pytest.approx(
        max(counts.values()) / len(values) ** hidden
    )


def test_rewards_are_paid_at_the_last_step_to_every_agent():
    env = RelayEnv(TEAM)
    env.reset(options={"numbers": [10, 20, 30]})
    _, rewards, terminations, truncations, infos = env.step(dict.fromkeys(TEAM, "hi"))
    assert rewards == dict.fromkeys(TEAM, 0.0) and terminations == dict.fromkeys(TEAM, False)
    assert "episode" not in infos["agent_0"] and infos["agent_0"]["message_chars"] == 2
    _, rewards, terminations, truncations, infos = env.step(dict.fromkeys(TEAM, "Answer: 60"))
    assert rewards == dict.fromkeys(TEAM, 1.0) and terminations == dict.fromkeys(TEAM, True)
    assert truncations == dict.fromkeys(TEAM, False) and env.agents == []
    assert msgpack.unpackb(msgpack.packb(infos)) == infos


def test_rollout_engine_plays_the_relay():
    env = RelayEnv(TEAM, build_graph(TEAM, "ring"), rounds=3)
    (episode,) = run_episodes(lambda: env, ScriptedPolicy(relaying), [5])
    assert episode.rewards == [0.0, 0.0, 1.0] and episode.metrics["score"] == 1.0
    assert len(episode.turns) == 9 and len(episode.messages) == 6


# ---------------------------------------------------------------- lifecycle and options


def test_step_outside_an_episode_or_with_missing_actions_fails_loudly():
    env = RelayEnv(TEAM)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(dict.fromkeys(TEAM, "1"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="one action per live agent"):
        env.step({"agent_0": "1"})
    with pytest.raises(TypeError, match="agent_1"):
        env.step({"agent_0": "1", "agent_1": 14, "agent_2": "1"})
    with pytest.raises(ValueError, match="3 ints"):
        env.reset(options={"numbers": [1, 2]})


def test_render_shows_holdings_and_answers():
    env = RelayEnv(TEAM, render_mode="ansi")
    env.reset(options={"numbers": [10, 20, 30]})
    env.step(dict.fromkeys(TEAM, ""))
    env.step({"agent_0": "Answer: 60", "agent_1": "", "agent_2": "59"})
    text = env.render()
    assert "target 60" in text and "agent_0: holds 10  answer 60" in text
    assert "agent_1: holds 20  answer none found" in text


def test_reporter_must_be_a_team_agent_except_for_a_lone_agent():
    with pytest.raises(ValueError, match="reporter 'zed' is not a team agent"):
        RelayEnv(TEAM, reporter="zed")
    assert RelayEnv(["solo"], reporter="zed").counted == ["solo"]  # the single-agent baseline
    with pytest.raises(GraphError, match="graph nodes"):
        RelayEnv(TEAM, build_graph(["agent_0", "agent_1"]))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rounds": 1}, "rounds"),
        ({"digits": 0}, "digits"),
        ({"digits": 5}, "digits"),
        ({"numbers": 0}, "numbers"),
        ({"reporter": ""}, "reporter"),
        ({"message_chars": 5}, "message_chars"),
        ({"target": "max"}, "target"),
    ],
)
def test_make_env_rejects_bad_options_naming_the_field(options, field):
    with pytest.raises(ValidationError) as error:
        make_env("relay_v0", TEAM, options=options)
    assert field in str(error.value)
