"""`marl eval`: the team against each agent alone on the same seeds, splits, the summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from agents.team import ScriptedPolicy
from marl.assembly import load_config, scenario_options, validate_config
from marl.cli import main
from marl.commands.evaluate import evaluate, gain_summary, plan_ablation
from marl.core.codec import TranscriptReader
from marl.core.config import ConfigError
from marl.rollouts.local import InProcessRollouts
from marl.tasks import TEST_SEED_OFFSET, split_config, split_seeds
from tests.conftest import ROOT, config_on_tiny_model


def scripted_rollouts(answer) -> InProcessRollouts:
    """Rollouts in this process by a scripted policy ``(agent, observation) -> text``."""
    return InProcessRollouts(ScriptedPolicy(answer), batch_size=32)


def debate_config(tmp_path: Path, agents: list[str], episodes: int, **options: object):
    return validate_config(
        {
            "name": "ev",
            "scenario": {"name": "debate_v0", "options": {"rounds": 1, "task": "easy", **options}},
            "team": {"agents": [{"id": a} for a in agents]},
            "run": {"episodes": episodes, "output_dir": str(tmp_path / "runs")},
        }
    )


def solve(observation: str) -> int:
    expression = re.search(r"\d+(?:[-+*]\d+)+", observation).group()
    return eval(expression)  # digits and + - * only, from our own generator


def scripted(agent: str, observation: str) -> str:
    """'good' always right, 'half' right on even answers, 'bad' always wrong."""
    answer = solve(observation)
    if agent == "good" or (agent == "half" and answer % 2 == 0):
        return f"Answer: {answer}"
    return "Answer: -1"


def test_gain_summary_is_team_minus_best_and_mean_single() -> None:
    out = gain_summary(0.5, {"x": 0.25, "y": 0.75, "z": 0.75, "w": 0.25})
    assert out["best_single"] == {"id": "y", "score": 0.75}  # a tie goes to the first
    assert out["mean_single"] == 0.5
    assert out["team_gain"] == pytest.approx(-0.25)
    assert out["team_gain_vs_mean"] == pytest.approx(0.0)


def test_evaluate_scores_the_team_and_each_agent_alone_on_the_same_seeds(tmp_path: Path) -> None:
    config = debate_config(tmp_path, ["bad", "half", "good"], episodes=8)
    folder, summary = evaluate(config, scripted_rollouts(scripted), split="test")
    phases = summary["phases"]
    assert list(phases) == ["team", "single:bad", "single:half", "single:good"]
    singles = {a: phases[f"single:{a}"]["score"] for a in ("bad", "half", "good")}
    assert singles["bad"] == 0.0 and singles["good"] == 1.0 and 0 < singles["half"] < 1
    # the team's majority is right exactly when 'half' is (good + half against bad)
    assert phases["team"]["score"] == singles["half"]
    assert summary["singles"] == singles
    assert summary["best_single"] == {"id": "good", "score": max(singles.values())}
    assert summary["team_gain"] == pytest.approx(phases["team"]["score"] - 1.0)
    assert summary["mean_single"] == pytest.approx(sum(singles.values()) / 3)
    assert summary["team_gain_vs_mean"] == pytest.approx(
        phases["team"]["score"] - summary["mean_single"]
    )
    assert summary["seeds"] == [TEST_SEED_OFFSET + k for k in range(8)]
    assert summary["split"]["name"] == "test" and not summary["split"]["scenario_option"]
    assert folder.read_summary() == json.loads(json.dumps(summary))
    lines = [json.loads(x) for x in (folder.path / "metrics.jsonl").read_text().splitlines()]
    for phase in phases:
        assert [x["seed"] for x in lines if x["phase"] == phase] == summary["seeds"]


def test_splits_use_disjoint_seed_ranges(tmp_path: Path) -> None:
    config = debate_config(tmp_path, ["a", "b"], episodes=5)
    assert split_seeds(config, None) == split_seeds(config, "train") == [0, 1, 2, 3, 4]
    assert split_seeds(config, "test") == [TEST_SEED_OFFSET + k for k in range(5)]
    assert split_config(config, None) == (config, None)
    same, info = split_config(config, "test")
    assert same.scenario.options == config.scenario.options
    assert "debate_v0 has no split option" in info["how"]
    config.run.seed = TEST_SEED_OFFSET - 3
    with pytest.raises(ConfigError, match=r"run\.seed: the train split uses seeds below"):
        split_seeds(config, "train")


def test_a_scenario_with_a_split_option_gets_it(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "coding_split.yaml")
    for split in ("train", "test"):
        with_split, info = split_config(config, split)
        assert scenario_options(with_split).split == split
        assert info["scenario_option"] and f"split={split}" in info["how"]
    assert scenario_options(config).split != "test"  # the original config is untouched


def test_marl_eval_end_to_end_on_the_tiny_model(tmp_path: Path, capsys) -> None:
    data = config_on_tiny_model(ROOT / "configs" / "debate.yaml", output_dir=str(tmp_path / "runs"))
    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump(data))
    args = ["eval", str(path), "--episodes", "2", "--split", "test", "--no-progress"]
    assert main([*args, "--set", "scenario.options.rounds=1"]) == 0
    out = capsys.readouterr().out
    assert "team of 3" in out and "team gain" in out
    assert all(f"alone: {a}" in out for a in ("alice", "bob", "carol"))
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    phases = summary["phases"]  # summary.json sorts its keys
    alone = {"team", "single:alice", "single:bob", "single:carol"}
    # self_consistency: alice's further answers, k - 1 per task (k ~ 3 answers a task here)
    assert set(phases) - {"self_consistency"} == alone
    k = summary["baselines"]["self_consistency"]["k"]
    assert (k > 1) == ("self_consistency" in phases)
    assert "vote" in out and "self-consistency" in out and "solo rounds" in out
    singles = [phases[f"single:{a}"]["score"] for a in ("alice", "bob", "carol")]
    assert summary["best_single"]["score"] == max(singles)
    assert summary["team_gain"] == pytest.approx(phases["team"]["score"] - max(singles))
    records = list(TranscriptReader(run / "transcripts.msgpack").records())
    seeds = {p: [r["seed"] for r in records if r["phase"] == p] for p in alone}
    assert all(s == [TEST_SEED_OFFSET, TEST_SEED_OFFSET + 1] for s in seeds.values())
    assert all(len(r["agents"]) == 1 for r in records if r["phase"] != "team")


def test_marl_eval_train_split_into_test_seeds_is_a_config_error(tmp_path: Path, capsys) -> None:
    data = config_on_tiny_model(ROOT / "configs" / "debate.yaml", seed=TEST_SEED_OFFSET)
    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["eval", str(path), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert "run.seed: the train split uses seeds below" in err and "Traceback" not in err


# ------------------------------------------------------------------ contribution (--ablate)


def test_ablation_marginal_is_positive_for_the_needed_agent_and_zero_for_the_useless(
    tmp_path: Path,
) -> None:
    # two voters: a tie goes to the first in team order, so 'good' alone decides
    config = debate_config(tmp_path, ["good", "bad"], episodes=4)
    folder, summary = evaluate(config, scripted_rollouts(scripted), ablate=True)
    assert summary["phases"]["team"]["score"] == 1.0
    contribution = summary["contribution"]
    assert contribution["good"]["score_without"] == 0.0 and contribution["good"]["marginal"] == 1.0
    assert contribution["bad"]["score_without"] == 1.0 and contribution["bad"]["marginal"] == 0.0
    assert {c["method"] for c in contribution.values()} == {"removed"}
    assert summary["phases"]["ablate:good"]["agents"] == ["bad"]
    records = list(TranscriptReader(folder.path / "transcripts.msgpack").records())
    ablated = [r for r in records if r["phase"] == "ablate:bad"]
    assert [r["seed"] for r in ablated] == summary["seeds"]
    assert all(r["agents"] == ["good"] and not r["messages"] for r in ablated)  # edges dropped
    lines = [json.loads(x) for x in (folder.path / "metrics.jsonl").read_text().splitlines()]
    assert sum(x["phase"] == "ablate:good" for x in lines) == 4
    assert folder.read_summary()["contribution"] == json.loads(json.dumps(contribution))


def test_an_agent_the_scenario_needs_is_replaced_by_a_noop(tmp_path: Path) -> None:
    config = validate_config(
        {
            "name": "judged",
            "scenario": {
                "name": "debate_v0",
                "options": {"rounds": 1, "task": "easy", "judge": "judge"},
            },
            "team": {"agents": [{"id": a} for a in ("good", "bad", "judge")]},
            "graph": {"preset": "star", "hub": "judge"},
            "run": {"episodes": 3, "output_dir": str(tmp_path / "runs")},
        }
    )
    right = scripted_rollouts(
        lambda agent, obs: "Answer: -1" if agent == "bad" else scripted("good", obs)
    )
    folder, summary = evaluate(config, right, ablate=True)
    judge = summary["contribution"]["judge"]
    assert judge["method"] == "noop" and "judge 'judge' is not a team agent" in judge["why"]
    assert summary["phases"]["team"]["score"] == 1.0  # the judge is always right
    assert judge["score_without"] == 0.0 and judge["marginal"] == 1.0  # a silent judge: no answer
    assert summary["phases"]["ablate:judge"]["agents"] == ["good", "bad", "judge"]
    assert summary["contribution"]["good"]["method"] == "removed"
    assert summary["contribution"]["good"]["marginal"] == 0.0  # the judge decides anyway
    records = list(TranscriptReader(folder.path / "transcripts.msgpack").records())
    muted = [t for r in records if r["phase"] == "ablate:judge" for t in r["turns"]]
    assert {t["text"] for t in muted if t["agent"] == "judge"} == {""}
    assert {t["text"] for t in muted if t["agent"] == "good"} != {""}


def test_removal_that_would_change_the_others_roles_falls_back_to_a_noop(tmp_path: Path) -> None:
    referential = validate_config(
        {
            "scenario": {"name": "referential_v0"},
            "team": {"agents": [{"id": a} for a in ("alice", "bob", "carol")]},
        }
    )
    speaker = plan_ablation(referential, "alice")  # bob would become the speaker
    assert speaker.method == "noop" and "bob would be 'speaker', not 'listener'" in speaker.why
    assert plan_ablation(referential, "carol").method == "removed"
    relay = validate_config(
        {"scenario": {"name": "relay_v0"}, "team": {"agents": [{"id": "a"}, {"id": "b"}]}}
    )
    plan = plan_ablation(relay, "b")  # b's number would be gone: another task
    assert plan.method == "noop" and "holding numbers [0] of 1" in plan.why
    coding = load_config(ROOT / "configs" / "coding_split.yaml")
    assert plan_ablation(coding, "helper").method == "removed"  # main alone writes it all
    assert "helper would be 'main', not 'helper'" in plan_ablation(coding, "main").why


def test_ablating_a_one_agent_team_is_a_config_error(tmp_path: Path, capsys) -> None:
    data = config_on_tiny_model(ROOT / "configs" / "debate.yaml")
    data["team"]["agents"] = data["team"]["agents"][:1]
    path = tmp_path / "alone.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["eval", str(path), "--ablate"]) == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps at the console width
    assert "team.agents: --ablate removes one agent at a time and needs a team of at least 2" in err
    assert "Traceback" not in err
    with pytest.raises(ConfigError, match="at least 2"):
        evaluate(load_config(path), scripted_rollouts(scripted), ablate=True)


def test_marl_eval_ablate_prints_the_contribution_table(tmp_path: Path, capsys) -> None:
    data = config_on_tiny_model(ROOT / "configs" / "debate.yaml", output_dir=str(tmp_path / "runs"))
    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump(data))
    args = ["eval", str(path), "--episodes", "1", "--ablate", "--no-progress"]
    assert main([*args, "--set", "scenario.options.rounds=1"]) == 0
    out = capsys.readouterr().out
    assert "contribution" in out and "removed" in out
    assert "ablate" not in out.split("contribution")[0]  # no row or column in the other tables
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["contribution"]) == {"alice", "bob", "carol"}
    team = summary["phases"]["team"]["score"]
    for agent, c in summary["contribution"].items():
        assert c["marginal"] == pytest.approx(team - summary["phases"][f"ablate:{agent}"]["score"])
