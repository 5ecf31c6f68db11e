import string

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from marl.core.graph import GraphError, build_graph
from scenarios import SCENARIOS, make_env
from scenarios.code_extraction import calls, defined_functions, extract_code, parses
from scenarios.coding_v0 import (
    MAX_ACTION_CHARS,
    CodingEnv,
    CodingOptions,
    assert_suite,
    entry_definition,
)
from scenarios.humaneval import (
    TEST_SIZE,
    data_file,
    load_problems,
    problem_by_id,
    split_problems,
)
from scenarios.sandbox import SandboxLimits
from scenarios.testing import (
    check_pettingzoo_conformance,
    check_registered_with_pettingzoo,
    check_reset_continues_the_seeded_stream,
    check_same_seed_replays,
)

SPLIT = ("helper", "main")
REVIEW = ("writer", "reviewer", "tester")
TEAMS = [(("solo",), "split"), (SPLIT, "split"), (REVIEW, "review"), (("solo",), "review")]


def fenced(code: str) -> str:
    return f"Here is my code.\n```python\n{code}```\nIt handles every case."


def full_solution(problem, calling: str | None = None) -> str:
    """The canonical solution as a whole function, calling ``calling(0)`` first if given."""
    call = f"    {calling}(0)\n" if calling else ""
    return problem.signature + call + problem.canonical_solution


def helper_code(name: str = "aux") -> str:
    return f"def {name}(value):\n    return value\n"


def wrong_solution(problem) -> str:
    """Always False: on HumanEval/0 it passes 3 of the 7 tests."""
    return problem.signature + "    return False\n"


def play(env, actions_by_round, task_id="HumanEval/0"):
    """One episode on ``task_id`` with scripted replies; every step's results."""
    env.reset(seed=0, options={"task_id": task_id})
    return [env.step(dict(zip(env.agents, replies, strict=True))) for replies in actions_by_round]


# ---------------------------------------------------------------- PettingZoo conformance


@pytest.mark.parametrize(("agents", "preset"), TEAMS)
def test_passes_pettingzoo_parallel_api_and_seed_tests(agents, preset):
    check_pettingzoo_conformance(lambda: CodingEnv(agents, preset=preset, rounds=3))


def test_same_seed_and_actions_replay_the_whole_episode():
    def actions(env):
        problem = env.problem
        return [
            {
                "writer": fenced(wrong_solution(problem)),
                "reviewer": "Check the empty input. é",
                "tester": fenced(f"assert {problem.entry_point}([]) is False\n"),
            },
            {"writer": fenced(full_solution(problem)), "reviewer": "", "tester": "no tests"},
        ]

    first = check_same_seed_replays(
        lambda: CodingEnv(REVIEW, preset="review", rounds=2, reward="every_round"), actions
    )
    assert first[-1][1]["writer"] == 1.0


def test_reset_without_seed_continues_the_seeded_stream():
    env = CodingEnv(SPLIT, split="all")
    check_reset_continues_the_seeded_stream(env, "main")


def test_registered_with_pettingzoo():
    check_registered_with_pettingzoo("marl/coding-v0", CodingEnv, SPLIT)


# ---------------------------------------------------------------- tasks and splits


def test_humaneval_has_164_problems_read_from_the_installed_package():
    problems = load_problems()
    assert len(problems) == 164
    assert data_file().name == "HumanEval.jsonl.gz"
    assert [p.task_id for p in problems[:2]] == ["HumanEval/0", "HumanEval/1"]
    for problem in problems:
        assert problem.prompt.endswith(problem.signature)
        assert problem.context + problem.signature == problem.prompt
        assert parses(problem.context)
    assert "def is_palindrome" in problem_by_id("HumanEval/10").context  # the tests need it
    with pytest.raises(KeyError, match="HumanEval/164"):
        problem_by_id("HumanEval/164")


def test_splits_are_fixed_disjoint_and_cover_every_problem():
    train, test = split_problems("train"), split_problems("test")
    assert (len(train), len(test), TEST_SIZE) == (124, 40, 40)
    train_ids, test_ids = [p.task_id for p in train], [p.task_id for p in test]
    assert not set(train_ids) & set(test_ids)
    assert set(train_ids) | set(test_ids) == {p.task_id for p in split_problems("all")}
    # pinned: a split that changed silently would mix training and test problems
    assert [int(t.split("/")[1]) for t in test_ids] == TEST_SPLIT
    with pytest.raises(ValueError, match="unknown split"):
        split_problems("validation")


TEST_SPLIT = [
    1, 2, 6, 7, 9, 12, 14, 20, 21, 27, 29, 32, 39, 47, 48, 50, 54, 59, 61, 67,
    68, 71, 82, 83, 88, 94, 97, 99, 104, 108, 119, 121, 123, 131, 132, 139, 146, 148, 151, 152,
]  # fmt: skip


@pytest.mark.parametrize("split", ["train", "test"])
def test_reset_draws_the_problem_from_its_split(split):
    ids = {p.task_id for p in split_problems(split)}
    env = CodingEnv(SPLIT, split=split)
    drawn = set()
    for seed in range(30):
        env.reset(seed=seed)
        drawn.add(env.problem.task_id)
    assert drawn <= ids and len(drawn) > 10


def test_reset_poses_a_given_task_and_ignores_other_option_keys():
    env = CodingEnv(SPLIT, split="test")
    observations, infos = env.reset(options={"task_id": "HumanEval/3", "options": 1})
    assert env.problem.task_id == "HumanEval/3"  # a train problem may be posed explicitly
    assert "def below_zero" in observations["main"]
    assert infos == {a: {} for a in SPLIT}
    with pytest.raises(TypeError, match="task_id"):
        env.reset(options={"task_id": 3})


# ---------------------------------------------------------------- observations


def test_round_zero_gives_each_role_the_problem_and_its_instruction():
    env = CodingEnv(SPLIT)
    observations, _ = env.reset(options={"task_id": "HumanEval/0"})
    problem = env.problem
    for text in observations.values():
        assert problem.signature.strip() in text
        assert "```python" in text
    assert "Write only `aux`" in observations["helper"]
    assert "Do not write `has_close_elements`" in observations["helper"]
    assert "call `aux` inside `has_close_elements`" in observations["main"]

    alone = CodingEnv(["solo"]).reset(options={"task_id": "HumanEval/0"})[0]["solo"]
    assert "You work alone" in alone and "aux" not in alone

    review = CodingEnv(REVIEW, preset="review").reset(options={"task_id": "HumanEval/0"})[0]
    assert "Your team will review and test it" in review["writer"]
    assert "edge cases and pitfalls" in review["reviewer"]
    assert "assert statements" in review["tester"]


def test_split_team_sees_each_others_code_next_round():
    env = CodingEnv(SPLIT, rounds=2)
    problem = problem_by_id("HumanEval/0")
    observations = play(env, [[fenced(helper_code()), fenced(full_solution(problem, "aux"))]])[0][0]
    assert "[helper] (helper) code:" in observations["main"]
    assert "def aux(value)" in observations["main"]
    assert "[main] (main agent) code:" in observations["helper"]
    assert "Your code from the last round:\n| ```python\n| def aux" in observations["helper"]


def test_messages_follow_the_graph():
    chain = build_graph(SPLIT, preset="chain")  # helper -> main only
    env = CodingEnv(SPLIT, chain, rounds=2)
    problem = problem_by_id("HumanEval/0")
    steps = play(env, [[fenced(helper_code()), fenced(full_solution(problem))]] * 2)
    observations = steps[0][0]
    assert "Messages from your team" not in observations["helper"]
    assert "def aux(value)" in observations["main"]
    episode = steps[-1][-1]["main"]["episode"]
    assert (episode["messages"], episode["deliveries"], episode["refused"]) == (2, 2, 0)


def test_review_loop_carries_critique_and_test_results_to_the_writer():
    env = CodingEnv(REVIEW, preset="review", rounds=2)
    problem = problem_by_id("HumanEval/0")
    tests = (
        "assert has_close_elements([1.0, 2.0], 0.5) == False\n"
        "assert has_close_elements([1.0, 1.1], 0.5) == True\n"
    )
    observations, _, _, _, infos = play(
        env,
        [[fenced(wrong_solution(problem)), "An empty list has no close pair.", fenced(tests)]],
    )[0]
    writer = observations["writer"]
    assert "[reviewer] (reviewer) review:\n| An empty list has no close pair." in writer
    assert "[tester] (tester) tests, passed 1 of 2 against the writer's code" in writer
    assert "AssertionError in assert has_close_elements([1.0, 1.1], 0.5) == True" in writer
    assert "return False" in observations["reviewer"]  # the writer's code, to review
    assert "passed 1 of 2" in observations["tester"]
    assert (infos["tester"]["tester_passed"], infos["tester"]["tester_total"]) == (1, 2)


def test_feedback_shows_the_count_of_hidden_tests_passed_not_the_tests():
    env = CodingEnv(["solo"], rounds=2, feedback=True)
    problem = problem_by_id("HumanEval/0")
    observation = play(env, [[fenced(wrong_solution(problem))]])[0][0]["solo"]
    assert "Last round's program: failed, passed 3 of 7 hidden tests." in observation
    assert "assert candidate" not in observation
    quiet = CodingEnv(["solo"], rounds=2)
    assert "hidden tests" not in play(quiet, [[fenced(wrong_solution(problem))]])[0][0]["solo"]


JUNK = [
    "",
    "no code at all, just words.",
    "日本語のコード 🤖 " * 500,
    bytes(range(256)).decode("latin-1") * 40,
    "```python\n" + "(" * 5000 + "\n```",
    "def f(:\n" * 3000,
    "x" * 100_000,
    "```python\ndef has_close_elements(numbers, threshold):\n    return '\x00é\x1b[31m'\n```",
]


@pytest.mark.parametrize(("agents", "preset"), TEAMS)
def test_any_reply_gives_observations_in_their_space_and_scores_zero(agents, preset):
    env = CodingEnv(agents, preset=preset, rounds=len(JUNK))
    steps = play(env, [[junk] * len(agents) for junk in JUNK])
    for observations, rewards, *_ in steps:
        assert all(reward == 0.0 for reward in rewards.values())
        for agent, text in observations.items():
            assert env.observation_space(agent).contains(text), repr(text[:80])
    episode = steps[-1][-1][agents[0]]["episode"]
    assert episode["score_by_round"] == [0.0] * len(JUNK)
    assert episode["status_by_round"][:2] == ["no_code", "no_code"]
    over_the_limit = sum(len(junk) > MAX_ACTION_CHARS for junk in JUNK)
    assert over_the_limit == 3 and episode["truncated"] == over_the_limit * len(agents)
    assert episode["no_code"] >= 2
    assert all(set(m.content) <= set(string.printable) for m in env.bus.log)


def test_prompts_with_characters_outside_the_charset_stay_in_the_space():
    odd = [p for p in load_problems() if set(p.prompt) - set(string.printable)]
    assert odd
    env = CodingEnv(SPLIT, rounds=2)
    for problem in odd:
        observations, _ = env.reset(options={"task_id": problem.task_id})
        observations.update(env.step({"helper": "", "main": problem.prompt})[0])
        for agent, text in observations.items():
            assert env.observation_space(agent).contains(text)


# ---------------------------------------------------------------- rewards and metrics


def test_a_scripted_split_team_that_always_succeeds_scores_one():
    weights = {"parses": 0.1, "functions_defined": 0.2, "main_calls_helper": 0.3}
    env = CodingEnv(SPLIT, split="test", structure=weights)
    for problem in split_problems("test"):
        env.reset(options={"task_id": problem.task_id})
        _, rewards, _, _, infos = env.step(
            {"helper": fenced(helper_code()), "main": fenced(full_solution(problem, "aux"))}
        )
        episode = infos["main"]["episode"]
        assert episode["score"] == 1.0, (problem.task_id, episode["detail"])
        assert rewards == dict.fromkeys(SPLIT, pytest.approx(1.6))
        assert episode["reward_terms"] == pytest.approx(
            {"tests": 1.0, "parses": 0.1, "functions_defined": 0.2, "main_calls_helper": 0.3}
        )
        assert episode["passed"] == episode["total"] == problem.tests.total


@pytest.mark.parametrize(("agents", "preset"), [(("solo",), "split"), (REVIEW, "review")])
def test_a_scripted_writer_that_always_succeeds_scores_one(agents, preset):
    env = CodingEnv(agents, preset=preset, rounds=2, reward="every_round")
    replies = {"reviewer": "Looks right.", "tester": fenced("assert True\n")}
    for problem in split_problems("train")[:8]:
        env.reset(options={"task_id": problem.task_id})
        for _ in range(2):
            actions = {a: replies.get(a, fenced(full_solution(problem))) for a in env.agents}
            _, rewards, *_, infos = env.step(actions)
            assert set(rewards.values()) == {1.0}
        assert infos[agents[0]]["episode"]["score_by_round"] == [1.0, 1.0]


def test_structure_terms_are_reported_and_weighted_separately():
    problem = problem_by_id("HumanEval/0")
    weights = {"parses": 0.1, "functions_defined": 0.2, "main_calls_helper": 0.3}
    env = CodingEnv(SPLIT, structure=weights)
    # the main agent does not call the helper, and the helper's function is misnamed
    _, rewards, *_, infos = play(
        env, [[fenced(helper_code("other")), fenced(full_solution(problem))]]
    )[0]
    info = infos["helper"]
    assert (info["tests"], info["parses"]) == (1.0, True)
    assert (info["functions_defined"], info["main_calls_helper"]) == (False, False)
    assert rewards["helper"] == pytest.approx(1.1)
    alone = CodingEnv(["solo"], structure=weights)
    info = play(alone, [[fenced(full_solution(problem))]])[0][-1]["solo"]
    assert (info["functions_defined"], info["main_calls_helper"]) == (True, None)


def test_wrong_code_scores_the_fraction_of_tests_it_passes():
    problem = problem_by_id("HumanEval/0")
    env = CodingEnv(["solo"])
    _, rewards, *_, infos = play(env, [[fenced(wrong_solution(problem))]])[0]
    episode = infos["solo"]["episode"]
    assert (episode["status"], episode["passed"], episode["total"]) == ("failed", 3, 7)
    assert rewards["solo"] == pytest.approx(3 / 7) == episode["score"]


def test_a_bare_function_body_is_read_in_completion_style():
    problem = problem_by_id("HumanEval/2")
    env = CodingEnv(["solo"])
    info = play(env, [[problem.canonical_solution]], problem.task_id)[0][-1]["solo"]
    assert (info["status"], info["completion_style"], info["tests"]) == ("ok", True, 1.0)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("I cannot solve this.", "no_code"),
        (fenced("def has_close_elements(numbers, threshold)\n    return 1\n"), "syntax_error"),
        (
            fenced("def has_close_elements(numbers, threshold):\n    while True:\n        pass\n"),
            "timeout",
        ),
        (
            fenced("def has_close_elements(numbers, threshold):\n    return bytearray(10**11)\n"),
            "memory",
        ),
    ],
)
def test_broken_code_scores_zero_with_its_status_and_the_episode_goes_on(reply, status):
    problem = problem_by_id("HumanEval/0")
    env = CodingEnv(["solo"], rounds=2, reward="every_round", sandbox={"timeout_s": 1})
    steps = play(env, [[reply], [fenced(full_solution(problem))]])
    assert steps[0][-1]["solo"]["status"] == status and steps[0][1]["solo"] == 0.0
    episode = steps[1][-1]["solo"]["episode"]
    assert episode["status_by_round"] == [status, "ok"]
    assert episode["score_by_round"] == [0.0, 1.0]
    assert episode["timeouts"] == (status == "timeout")


def test_final_reward_pays_only_the_last_step():
    problem = problem_by_id("HumanEval/0")
    env = CodingEnv(["solo"], rounds=2)
    steps = play(env, [[fenced(full_solution(problem))], [fenced(wrong_solution(problem))]])
    assert [s[1]["solo"] for s in steps] == [0.0, pytest.approx(3 / 7)]
    assert steps[-1][-1]["solo"]["episode"]["score_by_round"] == [1.0, pytest.approx(3 / 7)]


def test_a_testers_own_solution_does_not_replace_the_writers():
    problem = problem_by_id("HumanEval/0")
    tester = fenced(full_solution(problem) + "\nassert has_close_elements([1.0, 1.1], 0.5)\n")
    suite = assert_suite(extract_code(tester), problem.entry_point)
    assert suite.total == 1 and "def has_close_elements" not in suite.statements[0][0]
    env = CodingEnv(REVIEW, preset="review")
    infos = play(env, [[fenced(wrong_solution(problem)), "", tester]])[0][-1]
    assert (infos["tester"]["tester_passed"], infos["tester"]["tester_total"]) == (0, 1)
    assert infos["writer"]["status"] == "failed"


def test_episode_metrics_follow_the_scenario_contract_and_are_msgpack_friendly():
    problem = problem_by_id("HumanEval/0")
    env = CodingEnv(REVIEW, preset="review", rounds=2)
    tests = fenced("assert has_close_elements([], 0.5) is False\n")  # a tester's test counts
    steps = play(env, [[fenced(full_solution(problem)), "ok", tests]] * 2)
    infos = steps[-1][-1]
    assert msgpack.unpackb(msgpack.packb(infos)) == infos
    episodes = [info["episode"] for info in infos.values()]
    assert all(e == episodes[0] for e in episodes)
    episode = episodes[0]
    assert episode["score"] == 1.0 and episode["score_by_round"] == [1.0, 1.0]
    assert episode["task_id"] == "HumanEval/0" and episode["sandbox_runs"] == 4
    assert set(infos["writer"]) >= {"role", "round", "code_found", "status", "passed", "total"}
    assert steps[0][-1]["writer"]["round"] == 0 and "episode" not in steps[0][-1]["writer"]


# ---------------------------------------------------------------- lifecycle and options


def test_step_outside_an_episode_or_with_missing_actions_fails_loudly():
    env = CodingEnv(SPLIT)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(dict.fromkeys(SPLIT, ""))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="one action per live agent"):
        env.step({"main": ""})
    with pytest.raises(TypeError, match="helper"):
        env.step({"helper": b"code", "main": ""})


def test_render_shows_the_task_and_the_programs_result():
    env = CodingEnv(SPLIT, rounds=2, render_mode="ansi")
    problem = problem_by_id("HumanEval/0")
    play(env, [[fenced(helper_code()), fenced(wrong_solution(problem))]])
    text = env.render()
    assert "round 1/2" in text and "HumanEval/0" in text and "failed 3/7" in text


def test_graph_must_cover_exactly_the_team():
    with pytest.raises(GraphError, match="graph nodes"):
        CodingEnv(SPLIT, build_graph(["helper"]))


@pytest.mark.parametrize(
    ("agents", "preset", "roles", "message"),
    [
        (("a", "b", "c"), "split", None, "give scenario.options.roles"),
        (("a", "b", "c", "d"), "review", None, "give scenario.options.roles"),
        (("a", "b"), "split", ["main", "main"], "exactly the roles helper and main"),
        (("a", "b"), "review", ["writer", "writer"], "one writer"),
        (("a", "b", "c"), "review", ["writer", "reviewer"], "one role per agent"),
    ],
)
def test_roles_must_fit_the_preset_and_the_team(agents, preset, roles, message):
    with pytest.raises(ValueError, match=message):
        CodingEnv(agents, preset=preset, roles=roles)


def test_roles_can_be_given_in_any_order_and_a_team_of_one_plays_alone():
    env = CodingEnv(("m", "h"), roles=["main", "helper"])
    assert env.roles == {"m": "main", "h": "helper"}
    review = CodingEnv(("w", "r1", "r2"), preset="review", roles=["writer", "reviewer", "reviewer"])
    assert review.writer == "w"
    assert CodingEnv(["only"], roles=["helper", "main"]).roles == {"only": "main"}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"preset": "pair"}, "preset"),
        ({"roles": ["boss"]}, "roles"),
        ({"roles": ["main", "main"]}, "helper and main"),
        ({"rounds": 0}, "rounds"),
        ({"split": "validation"}, "split"),
        ({"reward": "sometimes"}, "reward"),
        ({"structure": {"parses": 2}}, "structure.parses"),
        ({"structure": {"style": 1}}, "structure.style"),
        ({"helper_name": "not a name"}, "helper_name"),
        ({"message_chars": 10}, "message_chars"),
        ({"sandbox": {"timeout_s": 0}}, "sandbox.timeout_s"),
        ({"sandbox": {"network": True}}, "sandbox.network"),
        ({"turns": 2}, "turns"),
    ],
)
def test_make_env_rejects_bad_options_naming_the_field(options, field):
    with pytest.raises(ValidationError) as error:
        make_env("coding_v0", SPLIT, options=options)
    assert field in str(error.value)


def test_make_env_builds_from_config_options():
    options = {"preset": "review", "rounds": 3, "sandbox": {"timeout_s": 2}}
    env = make_env("coding_v0", REVIEW, build_graph(REVIEW, "star"), options)
    assert env.options == CodingOptions(preset="review", rounds=3, sandbox={"timeout_s": 2})
    assert env.sandbox.limits == SandboxLimits(timeout_s=2)
    assert env.max_rounds == env.max_cycles == 3
    assert env.graph.has_edge("writer", "tester") and not env.graph.has_edge("reviewer", "tester")
    assert SCENARIOS["coding_v0"].env is CodingEnv


# ---------------------------------------------------------------- code extraction


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("```python\ndef f(x):\n    return x\n```", "def f(x):\n    return x\n"),
        ("```py\ndef f(x):\n    return x\n```\nExplanation.", "def f(x):\n    return x\n"),
        ("```\ndef f(x):\n    return x\n```", "def f(x):\n    return x\n"),
        ("~~~python\ndef f(x):\n    return x\n~~~", "def f(x):\n    return x\n"),
        ("```python\ndef f(x):\n    return x\n", "def f(x):\n    return x\n"),  # left open
        (  # the function, then a usage example: the block that defines wins
            "Code:\n```python\ndef f(x):\n    return x\n```\nUse:\n```python\nprint(f(1))\n```",
            "def f(x):\n    return x\n",
        ),
        (  # two definitions in two blocks are joined
            "```python\ndef g():\n    return 1\n```\n```python\ndef f():\n    return g()\n```",
            "def g():\n    return 1\n\ndef f():\n    return g()\n",
        ),
        ("```bash\npip install x\n```\n```python\nx = 1\n```", "x = 1\n"),
        (  # a new labelled block opened before the last one closed
            "```python\ndef f():\n    pass\n```python\ndef g():\n    pass\n```",
            "def f():\n    pass\n\ndef g():\n    pass\n",
        ),
        (
            "  1. Code:\n     ```python\n     def f():\n         pass\n     ```",
            "def f():\n    pass\n",
        ),
        (
            "Sure! Here it is.\n\nimport math\n\ndef f(x):\n    return math.sqrt(x)\n\n"
            "This uses the square root.",
            "import math\n\ndef f(x):\n    return math.sqrt(x)\n",
        ),
        ("def f(x):\n    return x\nThis returns its input", "def f(x):\n    return x\n"),
        ("    return x + 1\n", "return x + 1\n"),  # a bare body, dedented
        ("assert f(1) == 2\nassert f(2) == 3", "assert f(1) == 2\nassert f(2) == 3\n"),
        ("def f(x):\r\n    return x\r\n", "def f(x):\n    return x\n"),
        ("I do not know how to solve this.", ""),
        ("", ""),
        ("x" * 100_000, ""),
        ("\x00\x01\x02 binary \xff\xfe", ""),
    ],
)
def test_extract_code(text, code):
    assert extract_code(text) == code


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_extract_code_never_raises(text):
    code = extract_code(text)
    assert isinstance(code, str) and len(code) <= len(text) + 1


def test_extract_code_reads_at_most_max_chars():
    text = "def f():\n    return 1\n" + "# padding\n" * 10_000 + "def g():\n    return 2\n"
    assert defined_functions(extract_code(text)) == ["f"]
    assert defined_functions(extract_code(text, max_chars=len(text))) == ["f", "g"]


def test_reading_code_shape():
    code = "def aux(x):\n    return x\n\ndef main(x):\n    return [aux(v) for v in x]\n"
    assert defined_functions(code) == ["aux", "main"]
    assert calls(code, "main", "aux") and not calls(code, "aux", "main")
    redefined = code + "def main(x):\n    return x\n"  # the last definition is the one used
    assert not calls(redefined, "main", "aux")
    assert defined_functions("def broken(:") == [] and not parses("def broken(:")
    assert not parses("(" * 10_000) and not parses("x = '\x00'")


def test_entry_definition_wraps_a_bare_body_under_the_signature():
    problem = problem_by_id("HumanEval/0")
    code, wrapped = entry_definition(problem, "return False\n")
    assert wrapped and code.startswith(problem.signature) and code.endswith("    return False\n")
    assert entry_definition(problem, full_solution(problem)) == (full_solution(problem), False)
    assert entry_definition(problem, "") == ("", False)


def test_a_runs_summary_says_which_sandbox_scored_it(tmp_path):
    """The isolation that scored the programs is a fact of the run, kept in summary.json."""
    import json

    from agents.team import ScriptedPolicy
    from marl.assembly import validate_config
    from marl.commands.simulate import simulate
    from marl.rollouts.local import InProcessRollouts

    config = validate_config(
        {
            "name": "t",
            "scenario": {"name": "coding_v0", "options": {"rounds": 1}},
            "team": {"agents": [{"id": "w", "model": "tiny-random"}]},
            "run": {"episodes": 2, "output_dir": str(tmp_path)},
        }
    )
    scripted = ScriptedPolicy(lambda agent, obs: fenced("def f():\n    return 1\n"))
    folder, _ = simulate(config, InProcessRollouts(scripted, 4))
    summary = json.loads((folder.path / "summary.json").read_text())
    team = summary["phases"]["team"] if "phases" in summary else summary
    assert team["isolation"] in ("bwrap", "rlimits-only")
    assert "task_id" not in team  # a per-task field has no mean
