"""HumanEval graded outside the program's process: right code passes, wrong code and every
trick to fake a pass score 0 on the tests it tries to fake.

The tricks come in classes (objects that compare equal to anything, builtins replaced,
frames rewritten, the result channel forged, the runner or its codec patched, fake output,
SystemExit, huge or endless values, arguments or helpers tampered with); each is tried on
problems whose expected values no constant answer matches, so any point it scored would be
a point the grader gave away.
"""

from __future__ import annotations

import pytest

from scenarios.coding_v0 import CodingEnv
from scenarios.grading import grade, grade_many
from scenarios.humaneval import load_problems, problem_by_id
from scenarios.sandbox import Sandbox, SandboxLimits


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(SandboxLimits(timeout_s=30))  # generous: 2 busy cores


def program(task_id: str, prelude: str, body: str) -> str:
    """The problem's context, ``prelude`` at module level, then the entry point as ``body``."""
    problem = problem_by_id(task_id)
    indented = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    return f"{problem.context}\n{prelude}\n{problem.signature}{indented}"


# ---------------------------------------------------------------- right and wrong code


def test_canonical_solutions_of_all_164_problems_pass(sandbox):
    problems = load_problems()
    results = grade_many(sandbox, [(p.canonical_program, p.tests) for p in problems])
    pairs = zip(problems, results, strict=True)
    failing = {p.task_id: r.detail for p, r in pairs if r.status != "ok"}
    assert failing == {}
    assert all(r.fraction == 1.0 and r.total >= 1 for r in results)
    assert sum(r.total for r in results) == 1133  # asserts about candidate, 'assert True' not


def test_return_none_fails_nearly_everything(sandbox):
    problems = load_problems()
    results = grade_many(sandbox, [(p.prompt + "    return None\n", p.tests) for p in problems])
    assert not any(r.status == "ok" for r in results)
    assert sum(r.passed for r in results) < 0.05 * sum(r.total for r in results)


CLOSE_AS_INT = (  # HumanEval/0 right, but 1 and 0 for True and False
    "return int(any(abs(a - b) < threshold for i, a in enumerate(numbers) "
    "for b in numbers[i + 1:]))"
)


@pytest.mark.parametrize(
    ("task_id", "body", "passed"),
    [
        ("HumanEval/53", "return x + y + 1", 0),  # off by one
        ("HumanEval/35", "return sorted(l)[-2]", 0),  # the wrong element
        ("HumanEval/2", "return number % 1.0 + 2e-6", 0),  # outside abs(...) < 1e-6
        # inside the tolerance of the two abs(...) < 1e-6 asserts, not `== 0.5` exactly
        ("HumanEval/2", "return number % 1.0 + 5e-7", 2),
        ("HumanEval/8", "import math\nreturn [sum(numbers), math.prod(numbers)]", 0),  # a list
        ("HumanEval/0", CLOSE_AS_INT, 7),  # 1 == True holds, as in the assert
        ("HumanEval/72", "return int(q == q[::-1] and sum(q) <= w)", 0),  # `is True` wants True
    ],
)
def test_known_wrong_solutions_fail_and_comparisons_keep_the_asserts_semantics(
    sandbox, task_id, body, passed
):
    result = grade(sandbox, program(task_id, "", body), problem_by_id(task_id).tests)
    assert result.passed == passed, result.detail


# ---------------------------------------------------------------- tricks

ALWAYS_EQUAL = """
class AlwaysEqual:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    __le__ = __gt__ = __ge__ = __lt__
    def __bool__(self): return True
    def __sub__(self, other): return self
    __rsub__ = __sub__
    def __abs__(self): return 0.0
    def __float__(self): return 0.0
    def __hash__(self): return 0
"""
SLY_INT = """
class Sly(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __sub__(self, other): return Sly(0)
    __rsub__ = __sub__
    def __abs__(self): return 0
    __hash__ = int.__hash__
"""
TRUTHY_EQ = """
class Truthy:
    def __bool__(self): return True
class Vague:
    def __eq__(self, other): return Truthy()  # `==` need not return a bool
    __ne__ = __lt__ = __gt__ = __eq__
    def __sub__(self, other): return self
    def __abs__(self): return self
"""
BUILTINS = """
import builtins
_compile = builtins.compile
builtins.compile = lambda source, filename, mode, *a, **k: _compile("pass", filename, mode)
builtins.exec = lambda *a, **k: None
builtins.AssertionError = type("Never", (Exception,), {})
builtins.isinstance = lambda *a: True
builtins.abs = lambda x: 0
"""
FRAMES = """
import sys
def rewrite():
    frame = sys._getframe()
    while frame is not None:
        for name, value in list(frame.f_locals.items()):
            if isinstance(value, dict) and "statements" in value:  # a job of tests to run
                value["statements"] = [["pass", True] for _ in value["statements"]]
            if isinstance(value, list) and name in ("results", "outcomes", "calls"):
                value[:] = [True] * len(value)
        for name in ("failure", "ok"):
            if name in frame.f_locals:
                frame.f_locals[name] = True
        frame = frame.f_back
rewrite()
"""
FORGED = """
import os, sys
def forge():
    frame = sys._getframe()
    while frame.f_back is not None and not {"job", "calls"} & set(frame.f_locals):
        frame = frame.f_back  # up to the runner's frame
    found = frame.f_locals
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "result" not in target:
            continue
        if isinstance(found.get("job"), dict):  # a runner reading a verdict: all passed
            tests = sum(1 for _, is_test in found["job"]["statements"] if is_test)
            data = ('{"status": "ok", "results": [%s], "detail": ""}'
                    % ", ".join(["true"] * tests)).encode()
        else:  # a runner that reads values: claim every call returned True
            calls = len(found.get("calls", ()))
            outcome = b"\\x92\\x00\\xc4\\x01\\xc3"  # [0, the bytes of True]
            data = b"\\x93\\xa4done\\xa0\\xdc" + calls.to_bytes(2, "big") + outcome * calls
        os.pwrite(int(fd), data, 0)
    os._exit(0)
forge()
"""
PATCHED_RUNNER = """
import json, json.encoder, sys
frame = sys._getframe(1)
job = frame.f_locals.get("job")
if isinstance(job, dict):  # a runner that writes its verdict with json: forge the verdict
    tests = sum(1 for _, is_test in job["statements"] if is_test)
    verdict = '{"status": "ok", "results": [%s], "detail": ""}' % ", ".join(["true"] * tests)
    json.encoder.JSONEncoder.encode = lambda self, o: verdict
import __main__  # the runner itself: its encoder now sends True for whatever is returned
__main__.encode_value = lambda value, limits: b"\\xc3"
try:
    import msgpack
    msgpack.packb = lambda *a, **k: b"\\xc3"
except ImportError:
    pass
"""
FAKE_OUTPUT = """
print('{"status": "ok", "results": [true, true, true, true, true, true, true], "detail": ""}')
print("test 1: ok\\ntest 2: ok\\npassed 7 of 7")
"""
TRICKS = {
    "always-equal object": (ALWAYS_EQUAL, "return AlwaysEqual()"),
    "int subclass with __eq__": (SLY_INT, "return Sly(0)"),
    "__eq__ returning a truthy object": (TRUTHY_EQ, "return Vague()"),
    "builtins replaced": (BUILTINS, "return None"),
    "frames rewritten": (FRAMES, "rewrite()\nreturn None"),
    "result channel forged, then os._exit(0)": (FORGED, "return None"),
    "json, msgpack and the runner patched": (PATCHED_RUNNER, "return None"),
    "fake results printed": (FAKE_OUTPUT, "print('ok: all tests passed')\nreturn None"),
    "SystemExit": ("", "raise SystemExit(0)"),
    "KeyboardInterrupt": ("", "raise KeyboardInterrupt"),
    "os._exit inside the call": ("import os", "os._exit(0)"),
    "a huge value": ("", "return 'x' * (64 << 20)"),
    "an endlessly nested value": ("", "x = []\nx.append(x)\nreturn x"),
    "a deeply nested value": ("", "x = 1.0\nfor _ in range(10 ** 5):\n    x = [x]\nreturn x"),
}


@pytest.mark.parametrize("task_id", ["HumanEval/2", "HumanEval/35"])
@pytest.mark.parametrize("trick", list(TRICKS))
def test_every_trick_scores_zero(sandbox, trick, task_id):
    prelude, body = TRICKS[trick]
    result = grade(sandbox, program(task_id, prelude, body), problem_by_id(task_id).tests)
    assert result.passed == 0, (trick, result)
    assert result.status != "ok"


@pytest.mark.parametrize("trick", ["always-equal object", "__eq__ returning a truthy object"])
def test_objects_do_not_pass_truth_tests_either(sandbox, trick):
    prelude, body = TRICKS[trick]  # HumanEval/56: `assert candidate(...)`, `assert not ...`
    suite = problem_by_id("HumanEval/56").tests
    result = grade(sandbox, program("HumanEval/56", prelude, body), suite)
    assert result.passed == 0, result


def test_a_forged_result_that_would_exhaust_a_decoder_is_refused(sandbox):
    forge = (
        "import os\n"
        "for fd in os.listdir('/proc/self/fd'):\n"
        "    try:\n"
        "        if 'result' in os.readlink(f'/proc/self/fd/{fd}'):\n"
        "            os.pwrite(int(fd), b'\\x91' * 100000 + b'\\xdd\\xff\\xff\\xff\\xff', 0)\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    result = grade(sandbox, forge, problem_by_id("HumanEval/35").tests)
    assert (result.status, result.passed) == ("crash", 0)
    assert "malformed result" in result.detail


# ---------------------------------------------------------------- arguments and helpers


@pytest.mark.parametrize(
    ("task_id", "prelude", "body"),
    [
        # the check draws its inputs from `random`: patched, they would all be 0
        ("HumanEval/53", "import random\nrandom.randint = lambda a, b: 0", "return 0"),
        # the check encodes its inputs with the prompt's helper: redefined, it does nothing
        ("HumanEval/38", "def encode_cyclic(s):\n    return s", "return s"),
        ("HumanEval/50", "def encode_shift(s):\n    return s", "return s"),
        # the check judges a root with the prompt's `poly`: redefined, any number is a root
        ("HumanEval/32", "def poly(xs, x):\n    return 0.0", "return 0.0"),
    ],
)
def test_a_program_cannot_change_its_inputs_or_the_helpers_that_judge_it(
    sandbox, task_id, prelude, body
):
    suite = problem_by_id(task_id).tests
    result = grade(sandbox, program(task_id, prelude, body), suite)
    loops = [i for i, (source, is_test) in enumerate(suite.statements) if source.startswith("for")]
    assert loops and result.passed < suite.total, result  # the loop tests fail
    assert result.passed == 0 or task_id == "HumanEval/53", result


# ---------------------------------------------------------------- through the env


def test_an_always_equal_object_earns_no_reward_through_coding_v0():
    env = CodingEnv(["solo"])
    env.reset(options={"task_id": "HumanEval/0"})
    reply = "```python\n" + program("HumanEval/0", ALWAYS_EQUAL, "return AlwaysEqual()") + "```"
    _, rewards, *_, infos = env.step({"solo": reply})
    episode = infos["solo"]["episode"]
    assert rewards["solo"] == 0.0 and episode["score"] == 0.0
    assert (episode["status"], episode["passed"]) == ("failed", 0)
    assert "not plain data" in episode["detail"]
    assert episode["isolation"] == env.sandbox.isolation
