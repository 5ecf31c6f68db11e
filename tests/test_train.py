"""`marl train` end to end on the tiny model: run folder, checkpoints, exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import tests.toy_scenario  # noqa: F401  registers toy_length_v0
from marl.checkpoint import POLICIES, checkpoints
from marl.cli import main

ROOT = Path(__file__).resolve().parent.parent
TIMING = {"seconds", "rollout_seconds", "tokens_per_s"}


def toy_config(tmp_path: Path, name: str, **train: object) -> Path:
    config = {
        "name": name,
        "scenario": {"name": "toy_length_v0"},
        "team": {
            "agents": [
                {
                    "id": a,
                    "model": "tiny-random",
                    "sampling": {"temperature": 1.0, "max_new_tokens": 6},
                }
                for a in ("a", "b")
            ]
        },
        "run": {"seed": 0, "output_dir": str(tmp_path / name)},
        "train": {
            "steps": 4,
            "tasks_per_step": 1,
            "group_size": 3,
            "lr": 0.01,
            "save_every": 1,
            "eval_every": 2,
            "eval_episodes": 2,
            **train,
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def metrics(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING} for line in lines]


def only_run(parent: Path) -> Path:
    (run,) = parent.iterdir()
    return run


def test_train_writes_metrics_checkpoints_and_transcripts(tmp_path: Path, capsys) -> None:
    assert (
        main(["train", str(toy_config(tmp_path, "plain", keep_checkpoints=2)), "--no-progress"])
        == 0
    )
    run = only_run(tmp_path / "plain")
    lines = metrics(run)
    assert [line["step"] for line in lines] == [0, 1, 2, 3, 4]  # 0: the untrained team
    assert all(line["a/grad_norm"] > 0 and line["b/grad_norm"] > 0 for line in lines[1:])
    for line in lines[1:]:  # magrpo: every agent learns from the team's reward
        assert line["reward_mean/a"] == line["reward_mean/b"] == pytest.approx(line["reward_mean"])
    assert {"eval/team", "eval/single/a", "eval/single/b", "eval/team_gain"} <= set(lines[0])
    assert "eval/team" in lines[2] and "eval/team" not in lines[1]
    assert [p.name for p in checkpoints(run / "checkpoints")] == ["step-000003", "step-000004"]
    assert len(list((run / "transcripts").glob("step-*.msgpack"))) == 4
    assert "training" in capsys.readouterr().out


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    assert main(["train", str(toy_config(tmp_path, "whole")), "--no-progress"]) == 0
    expected = metrics(only_run(tmp_path / "whole"))

    config = toy_config(tmp_path, "killed")
    code = (
        "import tests.toy_scenario; from marl.cli import main; "
        f"main(['train', {str(config)!r}, '--no-progress'])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        runs = list((tmp_path / "killed").glob("*/metrics.jsonl"))
        if runs and len(runs[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run = only_run(tmp_path / "killed")
    assert len(metrics(run)) < 4, "the run finished before it could be killed"

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert metrics(run) == expected  # same lines, none lost, none doubled


def test_resume_skips_a_corrupted_checkpoint_and_says_so(tmp_path: Path, capsys) -> None:
    assert (
        main(
            ["train", str(toy_config(tmp_path, "corrupt", steps=2, eval_every=0)), "--no-progress"]
        )
        == 0
    )
    run = only_run(tmp_path / "corrupt")
    newest = checkpoints(run / "checkpoints")[-1]
    data = bytearray((newest / POLICIES).read_bytes())
    data[-5] ^= 0xFF
    (newest / POLICIES).write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "skipped checkpoint step-000002" in out and "resumed from checkpoint step 1" in out
    assert [line["step"] for line in metrics(run)] == [1, 2]  # eval_every=0: no step-0 line


def test_train_without_a_train_section_is_a_clear_error(tmp_path: Path, capsys) -> None:
    path = toy_config(tmp_path, "none")
    data = yaml.safe_load(path.read_text())
    del data["train"]
    path.write_text(yaml.safe_dump(data))
    assert main(["train", str(path), "--no-progress"]) == 2
    assert "has no 'train:' section" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # no run folder for a run that never started
