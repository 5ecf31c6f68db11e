"""`marl simulate` end to end on the tiny model, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from marl.cli import main
from marl.codec import TranscriptReader
from tests.conftest import CONFIGS, config_on_tiny_model


def write_config(tmp_path: Path, source: Path, **run: object) -> Path:
    path = tmp_path / source.name
    path.write_text(
        yaml.safe_dump(config_on_tiny_model(source, output_dir=str(tmp_path / "runs"), **run))
    )
    return path


def test_simulate_writes_a_complete_run_folder(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, Path("configs/debate.yaml"), episodes=3)
    assert main(["simulate", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "single: alice" in out and "team of 3" in out
    assert "run folder: " + str(tmp_path / "runs") in out
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("debate-")
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["scenario"]["options"]["rounds"] == 2
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["phase"] for line in lines] == ["team"] * 3 + ["single"] * 3
    reader = TranscriptReader(run / "transcripts.msgpack")
    episodes = list(reader.records())
    assert reader.error is None and not reader.truncated_tail
    assert len(episodes) == 6
    team = episodes[0]
    assert len(team["turns"]) == 3 * 2 and len(team["messages"]) == 3 * 2
    assert all(t["token_ids"] and len(t["token_ids"]) == len(t["logprobs"]) for t in team["turns"])
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["phases"]) == {"team", "single"}
    assert summary["phases"]["team"]["episodes"] == 3
    assert len(summary["phases"]["team"]["score_by_round"]) == 2
    assert summary["team_gain"] == pytest.approx(
        summary["phases"]["team"]["score"] - summary["phases"]["single"]["score"]
    )


def test_single_agent_replays_its_team_first_round(tmp_path: Path) -> None:
    config = write_config(tmp_path, Path("configs/debate.yaml"), episodes=2)
    assert main(["simulate", str(config), "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    records = list(TranscriptReader(run / "transcripts.msgpack").records())
    team = [r for r in records if r["phase"] == "team"]
    single = [r for r in records if r["phase"] == "single"]
    for t, s in zip(team, single, strict=True):
        first_in_team = next(x for x in t["turns"] if x["agent"] == "alice" and x["round"] == 0)
        first_alone = s["turns"][0]
        assert first_alone["token_ids"] == first_in_team["token_ids"]


@pytest.mark.parametrize("source", CONFIGS, ids=lambda p: p.name)
def test_every_example_config_simulates(tmp_path: Path, source: Path) -> None:
    config = write_config(tmp_path, source, episodes=1)
    assert main(["simulate", str(config), "--no-progress"]) == 0


def test_config_error_exits_2_with_field_path_and_no_traceback(tmp_path: Path, capsys) -> None:
    data = config_on_tiny_model(Path("configs/debate.yaml"))
    data["team"]["agents"][2]["model"] = "smolm2"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "team.agents[2].model: unknown model 'smolm2'" in err
    assert "Traceback" not in err


def test_set_and_episodes_flags_override(tmp_path: Path) -> None:
    config = write_config(tmp_path, Path("configs/debate.yaml"), episodes=5)
    args = ["simulate", str(config), "--episodes", "1", "--set", "scenario.options.rounds=1"]
    assert main([*args, "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["phases"]["team"]["episodes"] == 1
    assert len(summary["phases"]["team"]["score_by_round"]) == 1
