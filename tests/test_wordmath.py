import ast
import operator
import random
from fractions import Fraction

import pettingzoo
import pytest
from pydantic import ValidationError

from marl.assembly import validate_config
from marl.core.config import ConfigError
from marl.core.graph import build_graph
from scenarios import SCENARIOS, make_env
from scenarios.debate_v0 import DebateEnv
from scenarios.testing import (
    check_pettingzoo_conformance,
    check_reset_continues_the_seeded_stream,
)
from scenarios.wordmath_v0 import WordMathEnv, WordMathOptions
from scenarios.wordproblems import TEMPLATES, WordProblemSpec, sample_word_problem

TEAM = ("agent_0", "agent_1", "agent_2")
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def exact_value(expression: str) -> Fraction:
    """Evaluate an expression of + - * / and parentheses exactly; count its operations."""

    def value(node: ast.expr) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp):
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Div):
                return left / right
            return OPERATORS[type(node.op)](left, right)
        raise ValueError(f"unexpected {ast.dump(node)} in {expression!r}")

    return value(ast.parse(expression, mode="eval").body)


def operations(expression: str) -> int:
    return sum(isinstance(n, ast.BinOp) for n in ast.walk(ast.parse(expression, mode="eval")))


# ---------------------------------------------------------------- the generator


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("steps", [1, 2, 3])
def test_every_template_gives_a_checkable_positive_integer_answer(template, steps):
    rng = random.Random(f"{template}-{steps}")
    spec = WordProblemSpec(steps=[steps], templates=[template])
    for _ in range(200):
        problem = sample_word_problem(spec, rng)
        value = exact_value(problem.expression)
        assert value.denominator == 1 and value == problem.answer > 0, problem
        assert operations(problem.expression) == steps, problem
        assert problem.question.endswith("?") and str(problem.answer) != problem.question
        assert problem.question.isascii()


def test_twelve_templates_and_levels_change_the_problems():
    assert len(TEMPLATES) >= 12
    rng, spec = random.Random(0), WordProblemSpec.preset("mixed")
    problems = [sample_word_problem(spec, rng) for _ in range(200)]
    assert {operations(p.expression) for p in problems} == {1, 2, 3}
    assert len({p.question.split()[0] for p in problems}) > 12  # names and story openings vary


def test_the_same_seed_gives_the_same_problem():
    spec = WordProblemSpec.preset("three_step")
    first = [sample_word_problem(spec, random.Random(5)) for _ in range(2)]
    assert first[0] == first[1]
    assert sample_word_problem(spec, random.Random(6)) != first[0]


@pytest.mark.parametrize(
    ("task", "field", "message"),
    [
        ("hardest", "task", "unknown word problem preset 'hardest'"),
        ({"steps": [4]}, "task.steps", "Input should be 1, 2 or 3"),
        ({"steps": []}, "task.steps", "at least 1 item"),
        ({"templates": ["pirates"]}, "task.templates", "unknown templates ['pirates']"),
        ({"levels": [1]}, "task.levels", "Extra inputs are not permitted"),
    ],
)
def test_bad_tasks_are_refused_naming_the_field(task, field, message):
    with pytest.raises(ValidationError) as error:
        WordMathOptions(task=task)
    assert field in str(error.value) and message in str(error.value)


# ---------------------------------------------------------------- the scenario


@pytest.mark.parametrize("agents", [("solo",), TEAM])
def test_passes_pettingzoo_parallel_api_and_seed_tests(agents):
    check_pettingzoo_conformance(lambda: WordMathEnv(agents, rounds=2, task="mixed"))


def test_is_the_debate_protocol_on_word_problems():
    env = WordMathEnv(TEAM, rounds=2)
    assert isinstance(env, DebateEnv) and env.metadata["name"] == "wordmath_v0"
    assert DebateEnv.metadata["name"] == "debate_v0"
    assert env.options.task == WordProblemSpec.preset("two_step")
    observations, _ = env.reset(seed=3)
    assert env.problem.question in observations["agent_0"]
    assert "Answer: <integer>" in observations["agent_0"]
    assert operations(env.problem.expression) == 2


def test_a_team_that_is_always_right_scores_one_and_wrong_scores_zero():
    env = WordMathEnv(TEAM, rounds=2, task="mixed")
    for seed in range(20):
        env.reset(seed=seed)
        right = dict.fromkeys(TEAM, f"Answer: {env.problem.answer}")
        env.step(right)
        *_, infos = env.step(right)
        assert infos["agent_0"]["episode"]["score"] == 1.0
        env.reset(seed=seed)
        wrong = dict.fromkeys(TEAM, f"Answer: {env.problem.answer + 1}")
        env.step(wrong)
        _, rewards, *_ = env.step(wrong)
        assert rewards == dict.fromkeys(TEAM, 0.0)


def test_same_seed_replays_and_reset_continues_the_stream():
    env = WordMathEnv(TEAM, task="mixed")
    check_reset_continues_the_seeded_stream(env, "agent_0")


def test_registered_and_built_from_config_options_with_a_judge():
    env = pettingzoo.make("parallel", "marl/wordmath-v0", rounds=1)
    assert isinstance(env, WordMathEnv)
    graph = build_graph(TEAM, "star", hub="agent_2")
    options = {"task": {"steps": [1], "templates": ["ages"]}, "judge": "agent_2"}
    env = make_env("wordmath_v0", TEAM, graph, options)
    assert env.judge == "agent_2" and env.max_rounds == 3
    env.reset(seed=0)
    assert "years old" in env.problem.question
    assert SCENARIOS["wordmath_v0"].env is WordMathEnv


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rounds": 0}, "rounds"),
        ({"task": "du"}, "task"),  # an arithmetic preset is not a word-problem level
        ({"peer_display": "hidden"}, "peer_display"),
        ({"operands": 2}, "operands"),
    ],
)
def test_make_env_rejects_bad_options_naming_the_field(options, field):
    with pytest.raises(ValidationError) as error:
        make_env("wordmath_v0", TEAM, options=options)
    assert field in str(error.value)


def test_a_config_with_an_unknown_option_names_it():
    config = {
        "scenario": {"name": "wordmath_v0", "options": {"task": "one_step", "level": 2}},
        "team": {"agents": [{"id": "a"}, {"id": "b"}]},
    }
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert "scenario.options.level: unknown key 'level'" in str(error.value)
