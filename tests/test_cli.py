"""`marl simulate` end to end on the tiny model, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from marl.cli import main
from marl.core.codec import TranscriptReader, TranscriptWriter, pack
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


# ------------------------------------------------------------------ marl transcripts


def episode_record(index: int, phase: str, text: str) -> dict:
    turns = [
        {
            "round": r,
            "agent": agent,
            "observation": "What is 2+3? " + "x" * 400,
            "text": f"{agent} says {text} in round {r}",
            "prompt_ids": [1, 2],
            "token_ids": [3, 4, 5],
            "logprobs": [0.0, 0.0, 0.0],
            "finish_reason": "stop",
            "reward": 0.0,
            "info": {"answer": 5 if agent == "alice" else 4, "correct": agent == "alice"},
        }
        for r in range(2)
        for agent in ("alice", "bob")
    ]
    messages = [
        {
            "sender": "alice",
            "recipients": ["bob"],
            "round": 0,
            "channel": "message",
            "content": "I think 5",
            "meta": {"answer": 5},
        }
    ]
    return {
        "index": index,
        "seed": 10 + index,
        "sample": 0,
        "scenario": "debate_v0",
        "agents": ["alice", "bob"],
        "phase": phase,
        "turns": turns,
        "rewards": [0.0, 1.0],
        "messages": messages,
        "metrics": {"score": 1.0, "target": 5, "score_by_round": [0.0, 1.0]},
        "return": 1.0,
    }


def flat(text: str) -> str:
    """Printed text without rich's line wrapping and panel borders."""
    return " ".join(text.replace("│", " ").split())


def run_folder(tmp_path: Path, **config: object) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    base = {"scenario": {"name": "debate_v0"}, "team": {"agents": [{"id": "alice"}, {"id": "bob"}]}}
    (run / "config.yaml").write_text(yaml.safe_dump(base | config))
    return run


def test_transcripts_prints_one_episode_and_what_a_damaged_file_lost(
    tmp_path: Path, capsys
) -> None:
    run = run_folder(tmp_path)
    with TranscriptWriter(run / "transcripts.msgpack") as writer:
        writer.write(episode_record(0, "team", "first"))
        writer.write(episode_record(1, "team", "[bold]second[/bold]"))  # not rich markup
        writer.write(episode_record(0, "single:alice", "alone"))
    with open(run / "transcripts.msgpack", "ab") as f:
        f.write(pack(episode_record(2, "team", "cut"))[:50])  # a run killed mid-write
    assert main(["transcripts", str(run), "--episode", "1", "--phase", "team"]) == 0
    out = flat(capsys.readouterr().out)
    assert "episode 1 of 0..1, phase team" in out and "seed" in out and "11" in out
    assert "alice says [bold]second[/bold] in round 1" in out
    assert "bob says [bold]second[/bold] in round 0" in out
    assert "alice -> bob: I think 5" in out
    assert "alice: 5 (right)" in out and "bob: 4 (wrong)" in out  # final answers
    assert "more characters; --full shows them" in out  # the long observation is cut
    assert "file ends inside a frame" in out  # the damage is reported, the rest still shown
    assert main(["transcripts", str(run), "--episode", "0", "--phase", "team", "--full"]) == 0
    assert "x" * 400 in flat(capsys.readouterr().out).replace(" ", "")
    assert main(["transcripts", str(run), "--episode", "2"]) == 0  # no phase: every episode
    assert "alice says alone" in capsys.readouterr().out


def test_transcripts_bad_choices_exit_2_naming_the_valid_ones(tmp_path: Path, capsys) -> None:
    run = run_folder(tmp_path)
    with TranscriptWriter(run / "transcripts.msgpack") as writer:
        for k in range(3):
            writer.write(episode_record(k, "team", "hi"))
    assert main(["transcripts", str(run), "--episode", "3", "--phase", "team"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "episode 3 is out of range for phase team: valid episodes are 0..2" in err
    assert main(["transcripts", str(run), "--episode", "0", "--phase", "single:bob"]) == 2
    assert "no phase 'single:bob'" in capsys.readouterr().err
    assert main(["transcripts", str(run), "--episode", "0", "--step", "1"]) == 2
    assert "--step is for training runs" in capsys.readouterr().err
    assert main(["transcripts", str(tmp_path / "nowhere"), "--episode", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_transcripts_of_a_training_run_joins_a_rollouts_rounds(tmp_path: Path, capsys) -> None:
    run = run_folder(tmp_path, train={"multi_turn": "episodes", "policy": "separate"})
    record = episode_record(0, "team", "x")
    for step in (2, 4):
        with TranscriptWriter(run / "transcripts" / f"step-{step:06d}.msgpack") as writer:
            for seed in (7, 8):
                for r in range(2):  # one group per round, G = 2 rollouts
                    rollouts = [
                        {
                            "turns": [
                                t | {"text": f"step {step} seed {seed} sample {g} round {r}"}
                                for t in record["turns"]
                                if t["round"] == r
                            ],
                            "rewards": {"alice": float(r), "bob": float(r)},
                            "returns": {"alice": 1.0, "bob": 1.0},
                            "metrics": record["metrics"] if r == 1 else {},
                            # newer transcripts keep the bus log on the last round
                            "messages": [
                                {
                                    "sender": "alice",
                                    "recipients": ["bob"],
                                    "round": 0,
                                    "channel": "answer",
                                    "content": f"hello from step {step}",
                                    "meta": {},
                                }
                            ]
                            if r == 1 and step == 4
                            else [],
                        }
                        for g in range(2)
                    ]
                    writer.write({"step": step, "seed": seed, "round": r, "rollouts": rollouts})
    assert main(["transcripts", str(run), "--step", "2", "--episode", "3"]) == 0
    out = flat(capsys.readouterr().out)
    assert "episode 3 of 0..3, step 2" in out
    assert "step 2 seed 8 sample 1 round 0" in out and "step 2 seed 8 sample 1 round 1" in out
    assert "this training transcript keeps no messages" in out
    assert main(["transcripts", str(run), "--episode", "0"]) == 0  # the newest step
    out = flat(capsys.readouterr().out)
    assert "step 4 seed 7 sample 0 round 1" in out
    assert "hello from step 4" in out and "keeps no messages" not in out
    assert main(["transcripts", str(run), "--step", "3", "--episode", "0"]) == 2
    assert "steps with one: 2, 4" in capsys.readouterr().err
