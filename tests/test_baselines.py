"""`marl eval`'s equal-compute baselines, and figures that mean what they say.

The team is checked against `vote` (its round-1 answers, majority), `self_consistency`
(the single agent answering k times, k set by measured tokens) and `solo_rounds`, each gain
with a paired interval over the same tasks; scenarios where a baseline means nothing say
so. Scripted agents with known answers make every number checkable by hand; the tiny model
makes the reruns real sampling.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from agents.backend import Completion
from agents.team import ActRequest, ScriptedPolicy
from analysis.metrics import failed
from analysis.report import analyse, key_row, render
from analysis.rundata import load_run
from marl.assembly import validate_config
from marl.cli import main
from marl.commands.baselines import not_applicable
from marl.commands.evaluate import evaluate
from marl.core.codec import TranscriptReader, TranscriptWriter
from marl.rollouts.local import InProcessRollouts
from tests.conftest import config_on_tiny_model

ROOT = Path(__file__).resolve().parent.parent
TOKENS = 10  # every scripted completion counts as this many tokens


def solve(observation: str) -> int:
    expression = re.search(r"\d+(?:[-+*]\d+)+", observation).group()
    return eval(expression)  # digits and + - * only, from our own generator


class Counted:
    """A scripted policy whose completions have ``TOKENS`` tokens each; counts its calls."""

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def act(self, requests: list[ActRequest]) -> list[Completion]:
        self.calls += len(requests)
        return [
            Completion(self.answer(r), [0] * TOKENS, [0.0] * TOKENS, [], "stop") for r in requests
        ]


def first_round(observation: str) -> bool:
    return "answer:" not in observation.split("Question:", 1)[-1].split("\n", 2)[-1]


def debaters(request: ActRequest) -> str:
    """good: always right; half: right on even answers in round 1; bad: wrong in round 1
    (the same wrong answer as half's); everyone right once it has read the others."""
    answer = solve(request.observation)
    if request.agent_id == "good" or not first_round(request.observation):
        return f"Answer: {answer}"
    if request.agent_id == "half" and answer % 2 == 0:
        return f"Answer: {answer}"
    return f"Answer: {answer + 1}"


def debate(tmp: Path, agents: list[str], episodes: int, rounds: int = 2, **run):
    return validate_config(
        {
            "name": "base",
            "scenario": {"name": "debate_v0", "options": {"rounds": rounds, "task": "easy"}},
            "team": {"agents": [{"id": a} for a in agents]},
            "run": {"episodes": episodes, "output_dir": str(tmp), **run},
        }
    )


def records(run: Path, phase: str) -> list[dict]:
    return [
        r for r in TranscriptReader(run / "transcripts.msgpack").records() if r["phase"] == phase
    ]


def tiny_debate_training(folder: Path, name: str, **train: object) -> Path:
    """A config file: two tiny-model agents in a 2-round easy debate, one training step of
    1 task x G=2 (``train`` overrides), run folders under ``folder``."""
    data = {
        "name": name,
        "scenario": {"name": "debate_v0", "options": {"rounds": 2, "task": "easy"}},
        "team": {
            "agents": [
                {"id": a, "model": "tiny-random", "sampling": {"max_new_tokens": 6}}
                for a in ("a", "b")
            ]
        },
        "run": {"seed": 0, "output_dir": str(folder)},
        "train": {"steps": 1, "tasks_per_step": 1, "group_size": 2, **train},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def scripted_eval(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baselines")
    config = debate(tmp, ["good", "half", "bad"], episodes=12, single_agent="half")
    policy = Counted(debaters)
    folder, summary = evaluate(config, InProcessRollouts(policy, 64), split="test")
    return folder.path, summary, policy


def test_vote_is_the_majority_of_the_round_one_answers_with_no_extra_generation(
    scripted_eval,
) -> None:
    run, summary, policy = scripted_eval
    team = records(run, "team")
    by_hand = []
    for record in team:
        answers = [t["info"]["answer"] for t in record["turns"] if t["round"] == 0]
        top = Counter(answers).most_common(1)[0][1]
        majority = next(a for a in answers if Counter(answers)[a] == top)  # earliest of tied
        by_hand.append(float(majority == record["metrics"]["target"]))
    vote = summary["baselines"]["vote"]
    assert vote["score"] == pytest.approx(sum(by_hand) / len(by_hand))
    assert 0 < vote["score"] < 1  # half is right on some tasks only: the vote differs by task
    assert summary["phases"]["team"]["score"] == 1.0  # everyone is right after talking
    assert vote["gain"] == pytest.approx(1.0 - vote["score"])
    assert vote["tokens_per_episode"] == 3 * TOKENS  # the round-1 turns' tokens
    assert "vote" not in summary["phases"]  # read from the team's own episodes
    # every generation: the team (12 tasks x 3 agents x 2 rounds), each agent alone
    # (3 x 12 x 2) and self-consistency's further answers (5 x 12): none for the vote
    assert policy.calls == 12 * 3 * 2 + 3 * 12 * 2 + 5 * 12


def test_self_consistency_picks_k_from_the_measured_tokens_and_votes_k_answers(
    scripted_eval,
) -> None:
    run, summary, _ = scripted_eval
    sc = summary["baselines"]["self_consistency"]
    # the team: 3 agents x 2 rounds x 10 tokens = 60 a task; one answer alone: 10 -> k = 6
    assert sc["k"] == 6
    assert sc["team_tokens_per_episode"] == 6 * TOKENS and sc["tokens_per_episode"] == 6 * TOKENS
    extra = records(run, "self_consistency")
    assert len(extra) == 5 * 12 and {r["agents"][0] for r in extra} == {"half"}
    assert all({t["round"] for t in r["turns"]} == {0} for r in extra)  # answers, not debates
    assert {r["sample"] for r in extra} == set(range(1, 6))  # answer 0 is its alone episode
    # half alone is right on even answers whatever the sample: its vote is its alone score
    alone = summary["phases"]["single:half"]["score_by_round"][0]
    assert sc["score"] == pytest.approx(alone)


def test_solo_rounds_is_the_single_agent_alone_for_as_many_rounds(scripted_eval) -> None:
    _, summary, _ = scripted_eval
    solo = summary["baselines"]["solo_rounds"]
    assert solo["score"] == pytest.approx(summary["phases"]["single:half"]["score"])
    assert solo["gain"] == pytest.approx(summary["phases"]["team"]["score"] - solo["score"])


def test_every_gain_has_a_paired_interval_and_the_gain_splits_into_voting_and_talking(
    scripted_eval,
) -> None:
    _, summary, _ = scripted_eval
    for row in summary["baselines"].values():
        lo, hi = row["gain_ci95"]
        assert lo <= row["gain"] <= hi and row["tasks"] == 12
    parts = summary["decomposition"]
    whole = parts["team_vs_mean_member"]["gain"]
    assert parts["talking"]["gain"] + parts["voting"]["gain"] == pytest.approx(whole)
    assert parts["equal_compute"]["gain"] == summary["baselines"]["self_consistency"]["gain"]


def test_summaries_leave_out_per_task_fields(scripted_eval) -> None:
    _, summary, _ = scripted_eval
    for phase in summary["phases"].values():
        assert not {"target", "team_answer", "majority_answer"} & set(phase)
        assert "team_correct" in phase or "score" in phase  # the means that mean something


def test_four_tasks_give_no_interval_but_say_why(tmp_path: Path) -> None:
    config = debate(tmp_path, ["good", "half", "bad"], episodes=4)
    _, summary = evaluate(config, InProcessRollouts(Counted(debaters), 64), split="test")
    for row in summary["baselines"].values():
        assert row["gain_ci95"] is None and "too few" in row["gain_ci95_why"]


@pytest.mark.parametrize(
    ("scenario", "options", "absent", "says"),
    [
        ("relay_v0", {}, {"vote", "self_consistency", "solo_rounds"}, "only the team holds"),
        ("referential_v0", {}, {"vote", "self_consistency", "solo_rounds"}, "both parts"),
        ("coding_v0", {}, {"vote", "self_consistency"}, "programs are not voted"),
    ],
)
def test_a_scenario_says_which_baselines_do_not_apply_and_why(scenario, options, absent, says):
    agents = [{"id": a} for a in ("a", "b", "c")]
    if scenario == "coding_v0":
        agents = agents[:2]
    config = validate_config(
        {
            "name": "na",
            "scenario": {"name": scenario, "options": options},
            "team": {"agents": agents},
        }
    )
    skip = not_applicable(config)
    assert set(skip) == absent
    assert all(says in reason for reason in skip.values())


def test_a_scenario_without_a_vote_reports_not_applicable_never_a_zero(tmp_path: Path, capsys):
    config = validate_config(
        {
            "name": "relay",
            "scenario": {"name": "relay_v0", "options": {"rounds": 2}},
            "team": {"agents": [{"id": a} for a in ("a", "b", "c")]},
            "run": {"episodes": 2, "output_dir": str(tmp_path)},
        }
    )
    policy = ScriptedPolicy(lambda agent, obs: "a: 1\nAnswer: 3")
    _, summary = evaluate(config, InProcessRollouts(policy, 16), split="test")
    for row in summary["baselines"].values():
        assert set(row) == {"not_applicable"} and "secret numbers" in row["not_applicable"]
    assert "self_consistency" not in summary["phases"]


def test_the_eval_table_and_the_report_show_baselines_and_the_decomposition(
    scripted_eval, capsys
) -> None:
    run, summary, _ = scripted_eval
    from marl.cli import baselines_table, console, decomposition_table

    with console.capture() as captured:
        console.print(baselines_table(summary))
        console.print(decomposition_table(summary))
    text = captured.get()
    assert "k=6" in text and "what talking adds" in text and "what voting adds" in text
    page = render([analyse(load_run(run))])
    assert "Against baselines of the same tasks" in page
    assert "team vs vote: what talking added" in page
    assert "team vs self-consistency: the gain at equal compute" in page
    row = key_row(analyse(load_run(run)))
    assert row["vs vote"].startswith("+") and "[" in row["vs equal compute"]


def test_baselines_rerun_to_identical_numbers_on_the_tiny_model(tmp_path: Path, capsys) -> None:
    """Real sampling (temperature 0.7): the per-request seeds make a rerun identical."""
    data = config_on_tiny_model(ROOT / "configs" / "debate.yaml", output_dir=str(tmp_path))
    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump(data))
    args = ["eval", str(path), "--episodes", "2", "--split", "test", "--no-progress"]
    summaries = []
    for _ in range(2):
        assert main([*args, "--set", "scenario.options.rounds=2"]) == 0
    for run in sorted(tmp_path.glob("debate-*")):
        summaries.append(json.loads((run / "summary.json").read_text()))
    assert len(summaries) == 2
    first, second = (s["baselines"] for s in summaries)
    assert first == second
    assert first["self_consistency"]["k"] >= 2  # the team spends more than one answer
    assert "the team" in capsys.readouterr().out


# ---------------------------------------------------------------- tree-mode training runs


@pytest.fixture(scope="module")
def tree_run(tmp_path_factory) -> Path:
    """Two steps of tree-mode MAGRPO on a 2-round debate, the stored returns then set to
    known values (the tiny model never scores, so every real return is 0)."""
    tmp = tmp_path_factory.mktemp("tree")
    path = tiny_debate_training(tmp, "tree", multi_turn="tree", eval_every=0, save_every=1)
    assert main(["train", str(path), "--no-progress"]) == 0
    (run,) = (p for p in tmp.iterdir() if p.is_dir())
    for frames in (run / "transcripts").glob("*.msgpack"):
        groups = list(TranscriptReader(frames).records())
        for group in groups:
            for rollout in group["rollouts"]:
                value = 0.75 if group["round"] == 0 else 1.0
                rollout["returns"] = dict.fromkeys(rollout["returns"], value)
                if rollout["metrics"]:
                    rollout["metrics"]["score"] = 1.0
        frames.unlink()
        with TranscriptWriter(frames) as writer:
            for group in groups:
                writer.write(group)
    return run


def test_a_tree_node_shows_the_return_the_trainer_used(tree_run: Path, capsys) -> None:
    run = load_run(tree_run)
    nodes = [r for r in run.training_episodes() if r.get("node")]
    assert nodes and all(r["return"] in (0.75, 1.0) for r in nodes)
    assert main(["transcripts", str(tree_run), "--step", "1", "--episode", "0"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"return\s+0\.75", out), out


def test_tree_nodes_are_not_failed_episodes_and_costs_are_per_task(tree_run: Path) -> None:
    summary = analyse(load_run(tree_run))
    nodes = [r for r in summary.records if r.get("node")]
    going_on = [r for r in nodes if not r.get("metrics")]
    assert going_on and not any(failed(r) for r in going_on)
    page = render([summary])
    shown = re.search(r"\d+ tree nodes \(\d+ where the episode ended\), (\d+) failed", page)
    assert shown is not None and shown.group(1) == "0"  # every ended branch scored 1
    row = key_row(summary)
    assert row["tokens/ep"].endswith("per task")
    # a task's tree: every node's tokens; one real episode of it costs less than that
    tokens = sum(len(t["token_ids"]) for r in nodes for t in r["turns"])
    assert float(row["tokens/ep"].split()[0]) == pytest.approx(tokens, abs=1)


def test_the_change_of_team_gain_says_both_ends(tree_run: Path, tmp_path: Path) -> None:
    """Gain +12.5 -> -12.5 is a change of -25 points, said as such (not "team gain -25")."""
    run = tmp_path / "run"
    shutil.copytree(tree_run, run)
    lines = [
        {
            "step": 0,
            "eval/team": 0.25,
            "eval/single/a": 0.125,
            "eval/single/b": 0.0,
            "eval/best_single": 0.125,
            "eval/team_gain": 0.125,
        },
        {
            "step": 1,
            "eval/team": 0.25,
            "eval/single/a": 0.375,
            "eval/single/b": 0.0,
            "eval/best_single": 0.375,
            "eval/team_gain": -0.125,
        },
    ]
    with open(run / "metrics.jsonl", "a") as out:
        out.writelines(json.dumps(line) + "\n" for line in lines)
    page = render([analyse(load_run(run))])
    assert "team gain +12.5 pts → -12.5 pts (a change of -25.0 pts)" in page


def test_train_scores_the_baselines_at_its_held_out_points(tmp_path: Path) -> None:
    """`train.eval_baselines: true`: each evaluation line holds the baselines that apply,
    their gains and intervals (None from 2 tasks), and the report reads the run."""
    path = tiny_debate_training(tmp_path, "evb", eval_every=1, eval_episodes=2, eval_baselines=True)
    assert main(["train", str(path), "--no-progress"]) == 0
    (run,) = (p for p in tmp_path.iterdir() if p.is_dir())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if "eval/team" in line]
    assert len(evals) == 2  # step 0 (untrained) and step 1
    for line in evals:
        for name in ("vote", "self_consistency", "solo_rounds"):
            assert 0.0 <= line[f"eval/{name}"] <= 1.0
            assert line[f"eval/gain_vs/{name}"] == pytest.approx(
                line["eval/team"] - line[f"eval/{name}"]
            )
            assert line[f"eval/gain_vs/{name}/ci95_low"] is None  # 2 tasks: no interval
    summary = analyse(load_run(run))
    assert not summary.run.problems
    assert "self-consistency" in render([summary])


def test_tasks_that_all_differ_the_same_get_no_interval():
    """Both sides at 0 on every task (a floor): a zero-width interval would look like
    certainty; there is none, and the reason says why."""
    from marl.core.stats import paired_gain

    floor = paired_gain(dict.fromkeys(range(50), 0.0), dict.fromkeys(range(50), 0.0))
    assert floor.gain == 0.0 and floor.ci95 is None and "same difference" in floor.why
    spread = paired_gain({s: float(s % 2) for s in range(50)}, dict.fromkeys(range(50), 0.0))
    assert spread.ci95 is not None and spread.ci95[0] < 0.5 < spread.ci95[1]
