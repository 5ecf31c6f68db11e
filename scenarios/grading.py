"""Scoring a program against assert-style tests, with the verdict decided outside its process.

A HumanEval ``check(candidate)`` (or a tester's asserts) is turned once into **cases**: the
arguments of every call it makes to the candidate, and for each call how the returned value
is judged (an ``Expect``: ``== 3``, ``is True``, ``abs(value - 0.33) < 1e-6``, ...).
``grade(sandbox, program, suite)`` then runs the program in the sandbox, which only calls
its entry point on each case's arguments and sends back what it returned as plain data
(``scenarios.plain_data``); this process judges each value. The program never sees an
expected value, and nothing it builds (an object whose ``__eq__`` is always true, a forged
result, a patched ``json``) reaches the comparison: only decoded builtins do.

### The protocol

1. **Recording** (once per suite; shipped for HumanEval, see ``scenarios.humaneval``): the
   check's statements run in a sandbox beside the reference solution, each assert of a
   recognised form rewritten to record its case: the arguments (snapshot before the call)
   and the operands on the assert's other side, evaluated there (loop variables, helper
   functions, ``random`` seeded with 0). The reference's own results are recorded too, and
   must pass every case as this module judges it (a self-test of the extraction).
2. **The candidate's run**: the program, then one call per case, each on arguments decoded
   afresh, so a call that mutates its input does not change the next one.
3. **Judging**, here, with Python's own semantics on builtins: ``==`` is ``==`` (``1 ==
   1.0`` and ``True == 1`` hold, as in the assert; a tuple is not a list), a tolerance is
   the assert's own. A test (one top-level statement of ``check``) passes when every case
   it holds passes; a call that raised, timed out or returned anything but plain data fails.
4. **Replay**, for a test whose asserts are not of a recognised form (HumanEval/32 checks
   ``math.fabs(poly(coeffs, solution)) < 1e-4`` on a value kept in a variable): its
   verdict comes from a second sandboxed run of the check's own statements in which the
   candidate is a stand-in returning the values the program returned, as plain data. Only
   the check's code and those values are in that run, never the program's code. A
   statement that calls the stand-in with other arguments than recorded fails.

Recognised asserts (``V`` is the call wrapped in none or more of ``abs bool float int len
list round set frozenset sorted str tuple``, e.g. ``tuple(candidate(x))``):

| assert                                                   | judged as                   |
| -------------------------------------------------------- | --------------------------- |
| ``V``, ``not V``                                         | truth of the value          |
| ``V op E`` or ``E op V``, op: ``== != < <= > >= in``,    | the comparison              |
| ``not in``; ``is``/``is not`` with None, True or False   |                             |
| ``abs(V - E) < T`` (or ``<=``, ``math.fabs``, ``E - V``, | the distance, bound ``T``   |
| ``T > abs(...)``)                                        |                             |
| ``math.isclose(V, E, rel_tol=.., abs_tol=..)``           | ``math.isclose``            |

### What is and is not guaranteed

* Guaranteed: a program scores a test only by returning, for each of the test's calls,
  plain data that passes the comparison the original assert would have made on it. The
  comparison runs in this process on builtin objects the program did not make.
* Returned values must be plain data (``None``, ``bool``, ``int``, ``float``, ``str``,
  ``bytes``, ``list``, ``tuple``, ``dict``, ``set``, ``frozenset``, exactly these types,
  within ``plain_data.ValueLimits``). An iterator, a ``numpy`` scalar or a ``namedtuple``
  fails where the original assert might have passed it.
* Not guaranteed: that a program cannot find the answers elsewhere. Under bwrap the
  dataset is not in its file system; under ``rlimits-only`` it may be readable.
* A tester's asserts are recorded without a reference (the stand-in returns ``None``) and
  in a sandbox of their own: a tester can only mislead its own feedback, never the
  reward. The view and operator names are taken to be the builtins.
"""

from __future__ import annotations

import ast
import math
import operator
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from scenarios.plain_data import DEFAULT_VALUE_LIMITS, PlainDataError, decode
from scenarios.sandbox import MAX_CALLS, Execution, Isolation, Returned, Sandbox, shorten

Status = Literal["ok", "failed", "syntax_error", "timeout", "memory", "output_limit", "crash"]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]

VIEWS = {
    "abs": abs, "bool": bool, "float": float, "int": int, "len": len, "list": list,
    "round": round, "set": set, "frozenset": frozenset, "sorted": sorted, "str": str,
    "tuple": tuple,
}  # fmt: skip
COMPARISONS = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge, "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b, "is": operator.is_, "is not": operator.is_not,
}  # fmt: skip
DISTANCES = {"abs<", "abs<=", "fabs<", "fabs<="}
_AST_OPS = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
}  # fmt: skip
_LIMITS = [
    DEFAULT_VALUE_LIMITS.max_bytes,
    DEFAULT_VALUE_LIMITS.max_items,
    DEFAULT_VALUE_LIMITS.max_depth,
    DEFAULT_VALUE_LIMITS.max_int_digits,
]
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


# ---------------------------------------------------------------- cases and suites


@dataclass(frozen=True, slots=True)
class Expect:
    """How one returned value passes: ``op(view(value), expected)`` as the assert wrote it."""

    op: str  # "truthy", "falsy", a key of COMPARISONS, one of DISTANCES, or "isclose"
    expected: Any = None  # the other operand
    view: tuple[tuple[str, int | None], ...] = ()  # builtins applied first, innermost first
    output_right: bool = False  # the value is the right operand: ``expected op value``
    tolerances: tuple[Any, ...] = ()  # distances: (bound,); isclose: (rel_tol, abs_tol)

    def passes(self, value: Any) -> bool:
        """The assert's verdict on ``value``, plain data decoded by the caller."""
        try:
            for name, argument in self.view:
                value = VIEWS[name](value) if argument is None else VIEWS[name](value, argument)
            if self.op == "truthy":
                return bool(value)
            if self.op == "falsy":
                return not value
            if self.op in DISTANCES:
                (bound,) = self.tolerances
                distance = (math.fabs if self.op[0] == "f" else abs)(value - self.expected)
                return bool(distance < bound if self.op.endswith("<") else distance <= bound)
            if self.op == "isclose":
                rel_tol, abs_tol = self.tolerances
                return math.isclose(value, self.expected, rel_tol=rel_tol, abs_tol=abs_tol)
            left, right = (self.expected, value) if self.output_right else (value, self.expected)
            return bool(COMPARISONS[self.op](left, right))
        except (ArithmeticError, TypeError, ValueError, RecursionError):
            return False  # where the assert itself would have raised


@dataclass(frozen=True, slots=True)
class Case:
    """One call the check makes to the candidate, and how its value is judged."""

    statement: int  # index of the check statement making the call
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    expect: Expect | None  # None: made by a replayed or setup statement


@dataclass(frozen=True, slots=True)
class TestSuite:
    """The tests of one entry point: statements in order, the calls they make, how judged.

    ``statements[i]`` is ``(source, is_test)``; each test is one statement. A test passes
    when every case it holds passes its ``Expect``, or, for the statements in
    ``replayed``, when the replay of the statements on the returned values passes it.
    """

    entry_point: str
    candidate: str  # the name the statements call the entry point by
    context: str  # code the statements need (the prompt's helpers), for the replay
    preamble: str  # module-level code of the test module
    statements: tuple[tuple[str, bool], ...]
    cases: tuple[Case, ...]
    replayed: frozenset[int] = frozenset()
    broken: Mapping[int, str] = field(default_factory=dict)  # tests that raised by themselves

    __test__ = False  # not a pytest class

    @property
    def total(self) -> int:
        return sum(is_test for _, is_test in self.statements)

    @classmethod
    def of(
        cls,
        check: Check,
        context: str,
        cases: tuple[Case, ...],
        broken: Mapping[int, str] | None = None,
    ) -> TestSuite:
        """The suite of ``check``'s statements with its recorded ``cases``."""
        return cls(
            check.entry_point,
            check.candidate,
            context,
            check.preamble,
            check.statements,
            cases,
            check.replayed,
            broken or {},
        )


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """A program's score on a suite, and which sandbox scored it."""

    status: Status
    passed: int
    total: int
    detail: str  # short reason: the first failing test, the limit hit, the signal
    seconds: float  # wall clock of the runs, startup and cleanup included
    output: str  # the head of stdout and stderr, at most ``output_bytes``
    isolation: Isolation

    @property
    def fraction(self) -> float:
        """Fraction of tests passed; 0.0 for a run that did not finish."""
        return self.passed / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """msgpack-friendly summary (the output is left out)."""
        return {
            "status": self.status,
            "passed": self.passed,
            "total": self.total,
            "fraction": self.fraction,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
            "isolation": self.isolation,
        }


# ---------------------------------------------------------------- checks, before recording


@dataclass(frozen=True, slots=True)
class Check:
    """Assert statements about a function, parsed; ``record_suites`` finds their cases.

    ``recorded[i]`` is statement i as it runs while recording: a test whose asserts are all
    of a recognised form has them rewritten into ``__marl_case__(k, ...)`` (``specs[i][k]``
    says how), the others run as written.
    """

    entry_point: str
    candidate: str
    preamble: str
    statements: tuple[tuple[str, bool], ...]
    recorded: tuple[str, ...]
    specs: tuple[tuple[dict[str, Any], ...], ...]
    replayed: frozenset[int]

    @property
    def total(self) -> int:
        return sum(is_test for _, is_test in self.statements)

    @classmethod
    def from_check_module(cls, test_source: str, entry_point: str) -> Check:
        """A HumanEval-style module defining ``check(candidate)``; one test per statement."""
        module = ast.parse(test_source)
        checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
        if len(checks) != 1:
            raise ValueError("the test module must define exactly one function 'check'")
        (check,) = checks
        if [a.arg for a in check.args.args] != ["candidate"]:
            raise ValueError("'check' must take exactly one argument named 'candidate'")
        preamble = ast.unparse(ast.Module([n for n in module.body if n is not check], []))
        return cls._from_statements(entry_point, "candidate", preamble, check.body)

    @classmethod
    def from_asserts(
        cls, body: Sequence[ast.stmt], entry_point: str, max_tests: int
    ) -> Check | None:
        """Module-level asserts calling ``entry_point`` by name (and the setup around them).

        Function and class definitions without asserts are left out (a tester's own
        solution must not replace the program's), so are statements past ``max_tests``
        tests. None when there is no test.
        """
        kept: list[ast.stmt] = []
        for node in body:
            has_assert = any(isinstance(n, ast.Assert) for n in ast.walk(node))
            definition = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            if definition and not has_assert:
                continue
            kept.append(node)
            if sum(_is_test(s, entry_point) for s in kept) == max_tests:
                break
        check = cls._from_statements(entry_point, entry_point, "", kept)
        return check if check.total else None

    @classmethod
    def _from_statements(
        cls, entry_point: str, candidate: str, preamble: str, body: Sequence[ast.stmt]
    ) -> Check:
        statements, recorded, specs, replayed = [], [], [], set()
        tainted = False  # an earlier statement may have kept a result of the candidate
        for index, statement in enumerate(body):
            source = ast.unparse(statement)
            is_test = _is_test(statement, candidate)
            rewritten = _rewrite(statement, candidate) if is_test and not tainted else None
            statements.append((source, is_test))
            if rewritten is None:
                recorded.append(source)
                specs.append(())
                if _mentions(statement, candidate):
                    # a statement that may keep a result (in a variable, a loop) could pass
                    # it to later calls: what follows is replayed, not recorded as cases
                    binds = not isinstance(statement, ast.Assert) or any(
                        isinstance(n, ast.NamedExpr) for n in ast.walk(statement)
                    )
                    tainted = tainted or binds
                    if is_test:
                        replayed.add(index)
            else:
                recorded.append(rewritten[0])
                specs.append(rewritten[1])
        return cls(
            entry_point,
            candidate,
            preamble,
            tuple(statements),
            tuple(recorded),
            tuple(specs),
            frozenset(replayed),
        )


def _is_test(statement: ast.stmt, candidate: str) -> bool:
    """An assert about ``candidate`` (alone or inside a loop); ``assert True`` is not a test."""
    has_assert = any(isinstance(n, ast.Assert) for n in ast.walk(statement))
    return has_assert and _mentions(statement, candidate)


def _mentions(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def _rewrite(statement: ast.stmt, candidate: str) -> tuple[str, tuple[dict, ...]] | None:
    """The statement with every assert as a recorded case, or None if one is not of a
    recognised form (or the candidate is used anywhere else in it)."""
    specs: list[dict[str, Any]] = []

    class Rewriter(ast.NodeTransformer):
        def visit_Assert(self, node: ast.Assert) -> ast.AST:
            found = _match(node.test, candidate)
            if found is None:
                return node
            spec, call, values, values_first = found
            if any(isinstance(n, ast.NamedExpr) for v in [call, *values] for n in ast.walk(v)):
                return node  # a := inside would bind in the lambda, not around it
            specs.append(spec)
            keywords = ast.Dict(
                keys=[None if k.arg is None else ast.Constant(k.arg) for k in call.keywords],
                values=[k.value for k in call.keywords],
            )
            recorded = ast.Call(
                ast.Name("__marl_case__", ast.Load()),
                [
                    ast.Constant(len(specs) - 1),
                    ast.Constant(values_first),
                    _thunk(ast.Tuple(list(call.args), ast.Load())),
                    _thunk(keywords),
                    _thunk(ast.Tuple(list(values), ast.Load())),
                ],
                [],
            )
            return ast.copy_location(ast.Expr(recorded), node)

    import copy

    rewritten = Rewriter().visit(copy.deepcopy(statement))
    ast.fix_missing_locations(rewritten)
    if not specs or _mentions(rewritten, candidate):
        return None
    return ast.unparse(rewritten), tuple(specs)


def _thunk(body: ast.expr) -> ast.Lambda:
    arguments = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
    return ast.Lambda(arguments, body)


def _match(
    test: ast.expr, candidate: str
) -> tuple[dict[str, Any], ast.Call, list[ast.expr], bool] | None:
    """(spec, the candidate's call, the other operands, whether they come first) or None."""
    if hole := _hole(test, candidate):
        return {"op": "truthy", "view": hole[0]}, hole[1], [], False
    negated = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
    if negated and (hole := _hole(test.operand, candidate)):
        return {"op": "falsy", "view": hole[0]}, hole[1], [], False
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right, op = test.left, test.comparators[0], test.ops[0]
        below = ((left, right, (ast.Lt, ast.LtE)), (right, left, (ast.Gt, ast.GtE)))
        for distance, bound, ops in below:  # abs(V - E) < T, or T > abs(V - E)
            kind = _distance_kind(distance)
            if kind and isinstance(op, ops):
                a, b = distance.args[0].left, distance.args[0].right
                strict = isinstance(op, ast.Lt | ast.Gt)
                for side, other, first in ((a, b, False), (b, a, True)):
                    if hole := _hole(side, candidate):
                        spec = {"op": kind + ("<" if strict else "<="), "view": hole[0]}
                        return spec, hole[1], [other, bound], first
        name = _AST_OPS.get(type(op))
        for side, other, output_right in ((left, right, False), (right, left, True)):
            hole = _hole(side, candidate)
            if hole is None or name is None:
                continue
            singleton = isinstance(other, ast.Constant) and other.value in (None, True, False)
            if name in ("is", "is not") and not (singleton and type(other.value) is not int):
                return None  # identity with anything but a singleton means nothing in plain data
            spec = {"op": name, "view": hole[0], "right": output_right}
            return spec, hole[1], [other], output_right
    if (
        isinstance(test, ast.Call)
        and _is_named(test.func, "isclose")
        and len(test.args) == 2
        and all(k.arg in ("rel_tol", "abs_tol") for k in test.keywords)
    ):
        keywords = {k.arg: k.value for k in test.keywords}
        rel_tol = keywords.get("rel_tol", ast.Constant(1e-09))
        tolerances = [rel_tol, keywords.get("abs_tol", ast.Constant(0.0))]
        a, b = test.args
        for side, other, first in ((a, b, False), (b, a, True)):
            if hole := _hole(side, candidate):
                return {"op": "isclose", "view": hole[0]}, hole[1], [other, *tolerances], first
    return None


def _hole(node: ast.expr, candidate: str) -> tuple[list[list[Any]], ast.Call] | None:
    """(views innermost first, the call) when ``node`` is ``V(candidate(...))``."""
    views: list[list[Any]] = []
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id == candidate:
            return list(reversed(views)), node
        name, args = node.func.id, node.args
        if name not in VIEWS or node.keywords or not args or isinstance(args[0], ast.Starred):
            return None
        if len(args) == 1:
            views.append([name, None])
        elif (
            name == "round"
            and len(args) == 2
            and isinstance(args[1], ast.Constant)
            and type(args[1].value) is int
        ):
            views.append([name, args[1].value])
        else:
            return None
        node = args[0]
    return None


def _distance_kind(node: ast.expr) -> str | None:
    if not (isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords):
        return None
    if not (isinstance(node.args[0], ast.BinOp) and isinstance(node.args[0].op, ast.Sub)):
        return None
    if isinstance(node.func, ast.Name) and node.func.id == "abs":
        return "abs"
    return "fabs" if _is_named(node.func, "fabs") else None


def _is_named(func: ast.expr, name: str) -> bool:
    """``name`` or ``math.name``."""
    if isinstance(func, ast.Name):
        return func.id == name
    return (
        isinstance(func, ast.Attribute)
        and func.attr == name
        and isinstance(func.value, ast.Name)
        and func.value.id == "math"
    )


# ---------------------------------------------------------------- the sandboxed harness

# Runs in the sandbox beside the check's code (and, when recording, the reference), never
# beside a candidate: ``__marl_record__`` records the cases, ``__marl_replay__`` judges the
# replayed statements on returned values. It uses the runner's codec (``__main__``).
HARNESS = r"""
import __main__ as __marl_runner


def __marl_record__(statements, candidate, entry_point, has_reference, limits, max_calls):
    import random
    random.seed(0)
    namespace = globals()
    reference = namespace[entry_point] if has_reference else None
    encode, NotPlain, describe = (
        __marl_runner.encode_value, __marl_runner.NotPlain, __marl_runner.describe)
    calls, errors, where = [], [], [0]

    def snapshot(args, kwargs):
        if len(calls) >= max_calls:
            raise RuntimeError(f"the check makes more than {max_calls} calls")
        return encode((tuple(args), dict(kwargs)), limits)

    def outcome(args, kwargs):
        if reference is None:
            return None, [2, "no reference"]
        try:
            value = reference(*args, **kwargs)
        except Exception as error:
            return None, [1, describe(error)]
        try:
            return value, [0, encode(value, limits)]
        except NotPlain as reason:
            return value, [2, str(reason)]

    def stand_in(*args, **kwargs):
        call = snapshot(args, kwargs)
        value, result = outcome(args, kwargs)
        calls.append([where[0], -1, call, b"", result])
        return value

    def case(number, values_first, arguments, keywords, values):
        given = values() if values_first else None
        args, kwargs = arguments(), keywords()
        call = snapshot(args, kwargs)
        value, result = outcome(args, kwargs)
        given = given if values_first else values()
        calls.append([where[0], number, call, encode(tuple(given), limits), result])

    namespace[candidate] = stand_in
    namespace["__marl_case__"] = case
    for index, source in enumerate(statements):
        where[0] = index
        try:
            exec(compile(source, f"<test statement {index + 1}>", "exec"), namespace)
        except MemoryError:
            raise
        except BaseException as error:
            errors.append([index, describe(error)])
    return [calls, errors]


def __marl_replay__(statements, candidate, replayed, calls, limits):
    import random
    random.seed(0)
    namespace = globals()
    encode, describe = __marl_runner.encode_value, __marl_runner.describe
    by_statement = {}
    for statement, recorded, ok, value in calls:
        by_statement.setdefault(statement, []).append((recorded, ok, value))
    where = [0, 0]

    class Diverged(Exception):
        pass

    class CandidateFailed(Exception):
        pass

    def stand_in(*args, **kwargs):
        queue = by_statement.get(where[0], [])
        number = where[1]
        where[1] += 1
        if number >= len(queue):
            raise Diverged("the check made more calls than when its cases were recorded")
        recorded, ok, value = queue[number]
        if encode((tuple(args), dict(kwargs)), limits) != encode(recorded, limits):
            raise Diverged("the check called it with other arguments than when recorded")
        if not ok:
            raise CandidateFailed(value)
        return value

    namespace[candidate] = stand_in
    verdicts, replayed = [], set(replayed)
    for index, source in enumerate(statements):
        where[0], where[1] = index, 0
        try:
            exec(compile(source, f"<test statement {index + 1}>", "exec"), namespace)
            ok, detail = True, ""
        except MemoryError:
            raise
        except BaseException as error:
            ok, detail = False, describe(error)
        if index in replayed:
            verdicts.append([index, ok, detail])
    return verdicts
"""


# ---------------------------------------------------------------- recording


def record_suites(
    sandbox: Sandbox,
    checks: Sequence[tuple[Check, str, str | None]],
    workers: int | None = None,
) -> list[TestSuite | None]:
    """The suite of every ``(check, context, reference program)``, recorded in the sandbox.

    With a reference program (a HumanEval canonical solution) anything wrong raises
    ``ValueError``: the check must record cleanly and the reference pass every case.
    Without one (a tester's asserts) a recording that fails gives None, and a test that
    raised by itself while recorded is kept as ``broken`` (it fails for every program).
    """
    jobs = []
    for check, context, reference in checks:
        beside = reference if reference is not None else context
        program = "\n".join((HARNESS, beside, check.preamble))
        arguments = (
            list(check.recorded),
            check.candidate,
            check.entry_point,
            reference is not None,
            _LIMITS,
            MAX_CALLS,
        )
        jobs.append((program, "__marl_record__", [(arguments, {})]))
    executions = sandbox.execute_many(jobs, workers)
    return [
        _suite_from_record(check, context, reference is not None, execution)
        for (check, context, reference), execution in zip(checks, executions, strict=True)
    ]


def suite_from_check(
    sandbox: Sandbox,
    test_source: str,
    entry_point: str,
    context: str = "",
    reference: str | None = None,
) -> TestSuite:
    """The suite of one module defining ``check(candidate)`` (see ``record_suites``);
    ``ValueError`` if its cases cannot be recorded."""
    check = Check.from_check_module(test_source, entry_point)
    (suite,) = record_suites(sandbox, [(check, context, reference)])
    if suite is None:
        raise ValueError(f"the cases of the check of {entry_point} could not be recorded")
    return suite


def _suite_from_record(
    check: Check, context: str, has_reference: bool, execution: Execution
) -> TestSuite | None:
    try:
        if execution.status != "done" or execution.returned[0].error:
            reason = execution.returned[0].error if execution.returned else execution.detail
            raise ValueError(f"recording its cases ended with {execution.status}: {reason}")
        suite = _parse_record(check, context, execution.returned[0].value)
        if has_reference:
            _check_reference(check, suite, execution.returned[0].value)
        return suite
    except ValueError as error:
        if has_reference:
            raise ValueError(f"the check of {check.entry_point}: {error}") from None
        return None


def _parse_record(check: Check, context: str, record: Any) -> TestSuite:
    """The suite from what the harness returned; everything in it is validated."""
    if type(record) is not list or len(record) != 2:
        raise ValueError("malformed record")
    calls, errors = record
    if type(calls) is not list or type(errors) is not list:
        raise ValueError("malformed record")
    n = len(check.statements)
    cases = []
    for entry in calls:
        if type(entry) is not list or len(entry) != 5 or entry[0] not in range(n):
            raise ValueError("malformed call")
        statement, number, call, values, _ = entry
        try:
            args, kwargs = decode(call)
        except (PlainDataError, TypeError, ValueError) as error:
            raise ValueError(f"malformed arguments: {error}") from None
        if type(args) is not tuple or type(kwargs) is not dict:
            raise ValueError("malformed arguments")
        specs = check.specs[statement]
        if number == -1:
            expect = None
        elif type(number) is int and 0 <= number < len(specs):
            try:
                expect = _expect(specs[number], decode(values))
            except (PlainDataError, TypeError, ValueError) as error:
                raise ValueError(f"malformed case: {error}") from None
        else:
            raise ValueError("malformed case number")
        cases.append(Case(statement, args, kwargs, expect))
    broken = {}
    for entry in errors:
        if type(entry) is not list or len(entry) != 2 or type(entry[1]) is not str:
            raise ValueError("malformed error")
        index, reason = entry
        if index in range(n) and check.statements[index][1] and index not in check.replayed:
            broken[index] = reason
    return TestSuite.of(check, context, tuple(cases), broken)


def _expect(spec: Mapping[str, Any], values: Any) -> Expect:
    if type(values) is not tuple:
        raise ValueError("operands must be a tuple")
    op, view = spec["op"], tuple((name, arg) for name, arg in spec["view"])
    if op in ("truthy", "falsy"):
        return Expect(op, view=view)
    if op in DISTANCES:
        expected, bound = values
        return Expect(op, expected, view, tolerances=(bound,))
    if op == "isclose":
        expected, rel_tol, abs_tol = values
        return Expect(op, expected, view, tolerances=(rel_tol, abs_tol))
    (expected,) = values
    return Expect(op, expected, view, output_right=spec["right"])


def _check_reference(check: Check, suite: TestSuite, record: list) -> None:
    """The reference must pass every case and every statement must run cleanly."""
    calls, errors = record
    if errors:
        index, reason = errors[0]
        raise ValueError(f"statement {index + 1} raised {reason} with the reference solution")
    for case, entry in zip(suite.cases, calls, strict=True):
        kind, payload = entry[4]
        if kind != 0:
            raise ValueError(f"the reference gave {payload} on {case.args}")
        if case.expect is not None and not case.expect.passes(decode(payload)):
            raise ValueError(f"the reference fails {case.expect} on {case.args}")


# ---------------------------------------------------------------- grading


def grade(sandbox: Sandbox, program: str, suite: TestSuite) -> SandboxResult:
    """``program``'s score on ``suite``: its entry point called in the sandbox, judged here."""
    return grade_many(sandbox, [(program, suite)])[0]


def grade_many(
    sandbox: Sandbox, jobs: Sequence[tuple[str, TestSuite]], workers: int | None = None
) -> list[SandboxResult]:
    """``grade`` for every ``(program, suite)``: all programs at once, then all replays."""
    runs = [(p, s.entry_point, [(c.args, c.kwargs) for c in s.cases]) for p, s in jobs]
    executions = sandbox.execute_many(runs, workers)
    replays = [
        i for i, ((_, suite), run) in enumerate(zip(jobs, executions, strict=True))
        if suite.replayed and run.status == "done"
    ]  # fmt: skip
    replay_runs = [_replay_job(jobs[i][1], executions[i]) for i in replays]
    judged = sandbox.execute_many(replay_runs, workers)
    verdicts: dict[int, Execution] = dict(zip(replays, judged, strict=True))
    return [_score(suite, executions[i], verdicts.get(i)) for i, (_, suite) in enumerate(jobs)]


def _replay_job(suite: TestSuite, run: Execution) -> tuple[str, str, list]:
    program = "\n".join((HARNESS, suite.context, suite.preamble))
    calls = [
        [case.statement, (case.args, dict(case.kwargs)), not out.error, out.error or out.value]
        for case, out in zip(suite.cases, run.returned, strict=True)
    ]
    statements = [source for source, _ in suite.statements]
    arguments = (statements, suite.candidate, sorted(suite.replayed), calls, _LIMITS)
    return program, "__marl_replay__", [(arguments, {})]


def _score(suite: TestSuite, run: Execution, replay: Execution | None) -> SandboxResult:
    seconds = run.seconds + (replay.seconds if replay else 0.0)
    if run.status != "done":
        return SandboxResult(
            run.status, 0, suite.total, run.detail, seconds, run.output, run.isolation
        )
    by_statement: dict[int, list[tuple[Case, Returned]]] = {}
    for case, returned in zip(suite.cases, run.returned, strict=True):
        by_statement.setdefault(case.statement, []).append((case, returned))
    replayed = _replay_verdicts(suite, replay)
    passed, failure, number = 0, run.detail, 0
    for index, (source, is_test) in enumerate(suite.statements):
        if not is_test:
            continue
        number += 1
        if index in suite.replayed:
            ok, why = replayed.get(index, (False, "no verdict from the replay"))
        elif index in suite.broken:
            ok, why = False, f"the test itself raised {suite.broken[index]}"
        else:
            ok, why = _test_verdict(by_statement.get(index, []))
        passed += ok
        if not ok and not failure:
            reason, _, returned = why.partition(" (returned ")
            failure = f"test {number}: {reason} in {source.splitlines()[0][:120]}"
            failure += f" (returned {returned}" if returned else ""
    status: Status = "ok" if passed == suite.total and not run.detail else "failed"
    return SandboxResult(
        status, passed, suite.total, shorten(failure), seconds, run.output, run.isolation
    )


def _test_verdict(cases: list[tuple[Case, Returned]]) -> tuple[bool, str]:
    for case, returned in cases:
        if returned.error:
            return False, returned.error
        if not case.expect.passes(returned.value):
            return False, f"AssertionError (returned {_REPR.repr(returned.value)})"
    return True, ""


def _replay_verdicts(suite: TestSuite, replay: Execution | None) -> dict[int, tuple[bool, str]]:
    """Verdicts of the replayed statements; none (so they fail) if the replay went wrong."""
    if replay is None or replay.status != "done" or replay.returned[0].error:
        return {}
    found = {}
    value = replay.returned[0].value
    for entry in value if type(value) is list else []:
        if type(entry) is list and len(entry) == 3 and entry[0] in suite.replayed:
            index, ok, detail = entry
            if type(ok) is bool and type(detail) is str:
                found[index] = (ok, detail)
    return found
