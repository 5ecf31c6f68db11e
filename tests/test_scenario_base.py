"""What every scenario gets from ``scenarios.base``: options, step bookkeeping, the contract."""

import pytest
from pydantic import ValidationError

from scenarios import SCENARIOS, make_env
from scenarios.base import episode_metrics, team_reward
from scenarios.coding_v0 import CodingEnv
from scenarios.debate_v0 import DebateEnv
from scenarios.referential_v0 import ReferentialEnv
from scenarios.relay_v0 import RelayEnv, RelayOptions
from scenarios.wordmath_v0 import WordMathEnv

ENVS = [DebateEnv, WordMathEnv, RelayEnv, ReferentialEnv, CodingEnv]
NAMES = [env.metadata["name"] for env in ENVS]


def play_debate(rounds: int) -> list[tuple]:
    """One episode of two debaters who always answer right: each step's result."""
    env = DebateEnv(["a", "b"], rounds=rounds, task="easy")
    env.reset(seed=0)
    right = f"Answer: {env.problem.answer}"
    results = []
    while env.agents:
        results.append(env.step(dict.fromkeys(env.agents, right)))
    return results


def test_team_reward_is_the_reward_every_agent_got():
    *_, (_, rewards, *_) = play_debate(rounds=2)
    assert rewards == {"a": 1.0, "b": 1.0}
    assert team_reward(rewards) == 1.0
    assert team_reward({"a": 1}) == 1.0 and isinstance(team_reward({"a": 1}), float)


def test_team_reward_of_a_step_without_agents_is_zero():
    assert team_reward({}) == 0.0


def test_episode_metrics_are_a_copy_of_the_last_steps_episode_info():
    first, last = play_debate(rounds=2)
    infos = last[4]
    metrics = episode_metrics(infos)
    assert metrics == infos["a"]["episode"] == infos["b"]["episode"]
    assert metrics["score"] == 1.0 and metrics["score_by_round"] == [1.0, 1.0]
    metrics["score"] = 0.0
    assert infos["a"]["episode"]["score"] == 1.0
    assert episode_metrics(first[4]) == {}  # not the last step
    assert episode_metrics({}) == {}


@pytest.mark.parametrize("env_class", ENVS, ids=NAMES)
def test_every_step_follows_the_contract(env_class):
    """One team reward for the step's agents, never truncated, those who leave terminate,
    and ``episode`` in every info exactly at the last step."""
    team = ["helper", "main"] if env_class is CodingEnv else ["a", "b"]
    env = env_class(team, rounds=2)
    env.reset(seed=3)
    steps = 0
    while env.agents:
        observations, rewards, terminations, truncations, infos = env.step(
            dict.fromkeys(env.agents, "Answer: 1")
        )
        steps += 1
        assert set(rewards) == set(terminations) == set(truncations) == set(observations)
        assert set(infos) == set(observations)
        assert len(set(rewards.values())) == 1
        assert not any(truncations.values())
        assert terminations == {a: a not in env.agents for a in observations}
        over = not env.agents
        assert all(("episode" in info) == over for info in infos.values())
    assert steps == env.max_rounds
    assert {"score", "score_by_round"} <= set(episode_metrics(infos))


@pytest.mark.parametrize("env_class", ENVS, ids=NAMES)
def test_an_unknown_option_is_an_error_naming_it(env_class):
    with pytest.raises(ValidationError, match="colour"):
        env_class(colour="red")
    with pytest.raises(ValidationError, match="colour"):
        make_env(env_class.metadata["name"], env_class().possible_agents, options={"colour": 1})


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("debate_v0", {"rounds": 0}, "rounds"),
        ("relay_v0", {"rounds": 1}, "rounds"),
        ("referential_v0", {"rounds": 1}, "rounds"),
        ("coding_v0", {"rounds": 11}, "rounds"),
        ("relay_v0", {"message_chars": 19}, "message_chars"),
        ("coding_v0", {"message_chars": 99}, "message_chars"),
        ("coding_v0", {"message_chars": 8001}, "message_chars"),
    ],
)
def test_rounds_and_message_chars_keep_each_scenarios_bounds(name, options, field):
    with pytest.raises(ValidationError, match=field):
        make_env(name, SCENARIOS[name].env().possible_agents, options=options)


def test_keyword_options_win_over_the_options_given():
    env = RelayEnv(["a", "b"], options={"digits": 3, "numbers": 4}, digits=1)
    assert env.options == RelayOptions(digits=1, numbers=4)
    given = RelayOptions(rounds=3)
    assert RelayEnv(["a", "b"], options=given).options == given
    assert RelayEnv(["a", "b"], options=given, reporter="b").options == RelayOptions(
        rounds=3, reporter="b"
    )


@pytest.mark.parametrize("env_class", ENVS, ids=NAMES)
def test_from_options_builds_what_the_keywords_build(env_class):
    team = list(env_class().possible_agents)
    env = env_class.from_options(team, None, {"rounds": 2, "message_chars": 150})
    assert isinstance(env, env_class)
    assert env.options == env_class(team, rounds=2, message_chars=150).options
    assert env.bus.max_content_chars == 150


@pytest.mark.parametrize("env_class", ENVS, ids=NAMES)
def test_every_option_is_documented_where_declared(env_class):
    properties = env_class.options_model.model_json_schema()["properties"]
    assert {"rounds", "message_chars"} <= set(properties)
    assert all(field.get("description") for field in properties.values())
