"""`marl eval`: the team against each agent alone on the same seeds, splits, the summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from agents.team import ScriptedPolicy
from marl.cli import main
from marl.codec import TranscriptReader
from marl.config import ConfigError, load_config, validate_config
from marl.evaluate import TEST_SEED_OFFSET, evaluate, gain_summary, split_config, split_seeds
from tests.conftest import ROOT, config_on_tiny_model


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
    folder, summary = evaluate(config, ScriptedPolicy(scripted), split="test")
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
        assert with_split.scenario_options().split == split
        assert info["scenario_option"] and f"split={split}" in info["how"]
    assert config.scenario_options().split != "test"  # the original config is untouched


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
    assert set(phases) == {"team", "single:alice", "single:bob", "single:carol"}
    singles = [phases[f"single:{a}"]["score"] for a in ("alice", "bob", "carol")]
    assert summary["best_single"]["score"] == max(singles)
    assert summary["team_gain"] == pytest.approx(phases["team"]["score"] - max(singles))
    records = list(TranscriptReader(run / "transcripts.msgpack").records())
    seeds = {p: [r["seed"] for r in records if r["phase"] == p] for p in phases}
    assert all(s == [TEST_SEED_OFFSET, TEST_SEED_OFFSET + 1] for s in seeds.values())
    assert all(len(r["agents"]) == 1 for r in records if r["phase"] != "team")


def test_marl_eval_train_split_into_test_seeds_is_a_config_error(tmp_path: Path, capsys) -> None:
    data = config_on_tiny_model(ROOT / "configs" / "debate.yaml", seed=TEST_SEED_OFFSET)
    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["eval", str(path), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert "run.seed: the train split uses seeds below" in err and "Traceback" not in err
