"""Asserts become cases: what recording finds in a check, and how each case is judged.

The shipped HumanEval cases must be exactly what recording gives today; toy checks show each
recognised assert form judged as Python would have judged the assert, the replay of the
forms that are not recognised, and what a tester's own asserts can and cannot do.
"""

from __future__ import annotations

import ast
import collections
import json

import pytest

import scenarios.humaneval as humaneval
from scenarios.grading import Check, grade, record_suites, suite_from_check
from scenarios.humaneval import CASE_FILE, load_problems, problem_by_id, record_case_file
from scenarios.sandbox import Sandbox, SandboxLimits


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(SandboxLimits(timeout_s=30))


def test_the_shipped_cases_are_what_recording_gives_today(sandbox):
    assert record_case_file(sandbox) == CASE_FILE.read_text()


def test_every_check_statement_is_one_test_and_only_one_loop_is_replayed():
    problems = load_problems()
    assert sum(p.tests.total for p in problems) == 1133
    replayed = {p.task_id: sorted(p.tests.replayed) for p in problems if p.tests.replayed}
    assert replayed == {"HumanEval/32": [4]}  # math.fabs(poly(coeffs, solution)) < 1e-4
    ops = collections.Counter(c.expect.op for p in problems for c in p.tests.cases if c.expect)
    assert ops == {"==": 1393, "falsy": 18, "truthy": 12, "is": 6, "abs<": 5}
    tuples = problem_by_id("HumanEval/33").tests.cases  # tuple(candidate(...)) == tuple(...)
    assert all(c.expect.view == (("tuple", None),) for c in tuples)
    seeded = problem_by_id("HumanEval/53").tests.cases  # random inputs, fixed by the seed
    assert len(seeded) == 105 and seeded[5].args == (864, 394)


def test_loading_refuses_cases_recorded_from_another_dataset(tmp_path, monkeypatch):
    shipped = json.loads(CASE_FILE.read_text())
    shipped["dataset_sha256"] = "0" * 64
    other = tmp_path / "cases.json"
    other.write_text(json.dumps(shipped))
    monkeypatch.setattr(humaneval, "CASE_FILE", other)
    humaneval.load_problems.cache_clear()
    try:
        with pytest.raises(ValueError, match="record it again"):
            humaneval.load_problems()
    finally:
        monkeypatch.undo()
        humaneval.load_problems.cache_clear()


FORMS = """
def check(candidate):
    assert candidate(1) == 2
    assert 2 == candidate(1)
    assert candidate(1) != 3
    assert candidate(1) < 3 and True
    assert candidate(1) in [2, 4]
    assert candidate(1) is not None
    assert abs(candidate(1) - 2.0000001) < 1e-6
    assert math.isclose(candidate(1), 2.0, rel_tol=1e-9)
    assert candidate(1)
    assert not candidate(-1)
    assert tuple(candidate(1, pair=True)) == (2, 2)
    assert len(candidate(1, pair=True)) == 2
    assert round(candidate(1), 1) == 2
    assert candidate(1, pair=True) == [2, 2]
    for x in range(3):
        if x > 0:
            assert candidate(x) == helper(x)
"""


def test_each_recognised_form_is_recorded_as_a_case():
    check = Check.from_check_module("import math\n" + FORMS, "inc")
    assert check.total == 15
    # `candidate(1) < 3 and True` is no recognised form: that statement alone is replayed
    assert check.replayed == {3} and check.statements[3][0] == "assert candidate(1) < 3 and True"
    assert [bool(specs) for specs in check.specs] == [i != 3 for i in range(15)]
    assert "__marl_case__" in check.recorded[0] and "candidate" not in check.recorded[0]


@pytest.mark.parametrize(
    ("program", "passed"),
    [
        ("def inc(x, pair=False):\n    return [x + 1] * 2 if pair else x + 1\n", 15),
        # 2.0 == 2 holds, as in the asserts
        ("def inc(x, pair=False):\n    return [x + 1.0] * 2 if pair else x + 1.0\n", 15),
        # a tuple passes tuple(...) == (2, 2), not == [2, 2]
        ("def inc(x, pair=False):\n    return (x + 1,) * 2 if pair else x + 1\n", 14),
        ("def inc(x, pair=False):\n    return None\n", 2),  # `!= 3`, `not candidate(-1)`
        ("def inc(x, pair=False):\n    return x + 2\n", 2),  # `is not None`, truth
    ],
)
def test_recognised_forms_are_judged_as_the_asserts_would(sandbox, program, passed):
    context = "import math\n\ndef helper(x):\n    return x + 1\n"
    suite = suite_from_check(sandbox, "import math\n" + FORMS, "inc", context=context)
    result = grade(sandbox, context + program, suite)
    assert result.passed == passed, result.detail


def test_a_check_that_uses_the_candidates_results_is_replayed_on_them(sandbox):
    source = (
        "def check(candidate):\n"
        "    assert candidate(2) == 4\n"
        "    for x in [1, 2, 3]:\n"
        "        y = candidate(x)\n"
        "        assert y * y == x ** 4\n"
        "    total = candidate(3)\n"
        "    assert candidate(3) + total == 18\n"
    )
    reference = "def square(x):\n    return x * x\n"
    suite = suite_from_check(sandbox, source, "square", reference=reference)
    assert suite.total == 3 and suite.replayed == frozenset({1, 3})
    assert grade(sandbox, reference, suite).passed == 3
    cheat = "def square(x):\n    return -x * x\n"  # right under y * y, wrong under == 4
    assert grade(sandbox, cheat, suite).passed == 1
    sly = "class Y(int):\n    def __mul__(self, o):\n        return 0\n" + (
        "def square(x):\n    return Y(x * x)\n"
    )
    assert grade(sandbox, sly, suite).passed == 0  # not plain data, never replayed


def test_a_replayed_check_whose_calls_depend_on_results_fails_when_they_change(sandbox):
    source = (
        "def check(candidate):\n"
        "    x = 1\n"
        "    for _ in range(3):\n"
        "        x = candidate(x)\n"
        "        assert x > 0\n"
    )
    reference = "def grow(x):\n    return x + 1\n"
    suite = suite_from_check(sandbox, source, "grow", reference=reference)
    assert grade(sandbox, reference, suite).passed == 1
    result = grade(sandbox, "def grow(x):\n    return x + 2\n", suite)
    assert result.passed == 0 and "other arguments" in result.detail


def test_a_reference_that_fails_its_own_check_is_refused(sandbox):
    with pytest.raises(ValueError, match="the reference fails"):
        suite_from_check(
            sandbox,
            "def check(candidate):\n    assert candidate(1) == 3\n",
            "inc",
            reference="def inc(x):\n    return x + 1\n",
        )


def suite_of_asserts(sandbox, code: str):
    check = Check.from_asserts(ast.parse(code).body, "inc", max_tests=20)
    return None if check is None else record_suites(sandbox, [(check, "", None)])[0]


def test_a_testers_asserts_call_the_entry_point_by_name(sandbox):
    code = (
        "import math\n"
        "def inc(x):\n    return 0\n"  # its own solution: left out
        "assert inc(1) == 2\n"
        "assert True\n"  # calls nothing: not a test
        "assert inc(undefined) == 1\n"  # raises by itself: a test no program passes
        "assert isinstance(inc(1), int)\n"  # not a recognised form: replayed
    )
    suite = suite_of_asserts(sandbox, code)
    assert suite.total == 3 and suite.replayed == frozenset({4})
    assert "def inc" not in "".join(source for source, _ in suite.statements)
    result = grade(sandbox, "def inc(x):\n    return x + 1\n", suite)
    assert result.passed == 2 and "NameError" in result.detail
    assert suite_of_asserts(sandbox, "assert True\n") is None


def test_a_hostile_tester_spoils_only_its_own_suite(sandbox):
    forged = (  # the runner writes its result with pack_into: now it writes garbage
        "import __main__\n"
        "__main__.pack_into = lambda out, value: out.extend(b'\\xc1')\n"
        "assert inc(1) == 2\n"
    )
    assert suite_of_asserts(sandbox, forged) is None  # a record that does not decode
    looping = "while True:\n    pass\nassert inc(1) == 2\n"
    assert suite_of_asserts(Sandbox(SandboxLimits(timeout_s=1)), looping) is None
