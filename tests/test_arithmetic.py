import random
import re

import pytest
from pydantic import ValidationError

from scenarios.arithmetic import PRESETS, ArithmeticSpec, evaluate, sample_problem


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("7", 7),
        ("2+3*4", 14),
        ("2*3+4", 10),
        ("10-2*3", 4),
        ("1-2-3", -4),  # left to right, not 1-(2-3)
        ("2*3*4-5", 19),
        ("12+34*56+78-90*11", 1004),  # 12 + 1904 + 78 - 990
        ("0*99+5", 5),
    ],
)
def test_evaluate_uses_normal_precedence(expression, value):
    assert evaluate(expression) == value


@pytest.mark.parametrize("bad", ["", "2+", "+2", "2/3", "2**3", "(2+3)", "__import__('os')"])
def test_evaluate_rejects_anything_but_flat_integer_expressions(bad):
    with pytest.raises(ValueError):
        evaluate(bad)


def test_du_preset_has_the_du_et_al_form_and_a_hand_computed_answer():
    spec = ArithmeticSpec.preset("du")
    for seed in range(20):
        problem = sample_problem(spec, random.Random(seed))
        match = re.fullmatch(r"(\d\d)\+(\d\d)\*(\d\d)\+(\d\d)-(\d\d)\*(\d\d)", problem.expression)
        assert match, problem.expression
        a, b, c, d, e, f = map(int, match.groups())
        assert problem.answer == a + b * c + d - e * f
        assert problem.expression in problem.question


@pytest.mark.parametrize(
    ("preset", "form"),
    [("easy", r"\d\+\d"), ("sums", r"\d\+\d\+\d"), ("medium", r"[1-9]\d\+[1-9]\d")],
)
def test_presets_draw_their_documented_form(preset, form):
    spec = ArithmeticSpec.preset(preset)
    for seed in range(20):
        assert re.fullmatch(form, sample_problem(spec, random.Random(seed)).expression)


def test_du_is_listed_last_as_the_hardest_preset():
    assert list(PRESETS)[-1] == "du"
    with pytest.raises(ValueError, match="known: easy, sums, medium, du"):
        ArithmeticSpec.preset("impossible")


def test_same_seed_same_problem_and_different_seeds_differ():
    spec = ArithmeticSpec.preset("du")
    assert sample_problem(spec, random.Random(5)) == sample_problem(spec, random.Random(5))
    expressions = {sample_problem(spec, random.Random(seed)).expression for seed in range(10)}
    assert len(expressions) == 10


def test_random_operators_come_from_the_spec():
    spec = ArithmeticSpec(operands=5, digits=1, operators=["-", "*"])
    seen = set()
    for seed in range(30):
        problem = sample_problem(spec, random.Random(seed))
        ops = set(re.findall(r"[+*-]", problem.expression))
        assert ops <= {"-", "*"}
        seen |= ops
        assert problem.answer == evaluate(problem.expression)
    assert seen == {"-", "*"}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"operands": 1}, "operands"),
        ({"digits": 5}, "digits"),
        ({"operators": []}, "operators"),
        ({"operators": ["/"]}, "operators"),
        ({"operands": 3, "pattern": "+*+"}, "pattern"),
        ({"operands": 8, "digits": 3, "operators": ["*"]}, "64 bits"),
        ({"digit": 2}, "digit"),
    ],
)
def test_bad_specs_are_rejected_with_the_reason(fields, named):
    with pytest.raises(ValidationError, match=named):
        ArithmeticSpec(**fields)


def test_largest_allowed_products_fit_in_int64():
    spec = ArithmeticSpec(operands=8, digits=2, operators=["*"])
    problem = sample_problem(spec, random.Random(0))
    assert abs(problem.answer) < 2**63
