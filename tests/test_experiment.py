"""`marl experiment` on the tiny model: arms x seeds as Ray Tune trials on a real local Ray
instance, each trial an ordinary `marl train` run folder; a failed trial reported while the
others finish; a driver killed with SIGKILL finished by --resume with every trial's
metrics lines equal to an uninterrupted experiment's; the summary and report across
seeds; and every mistake in an experiment file as one error naming its field."""

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

from analysis.experiment import INTERVAL, t_interval
from marl.cli import main
from marl.commands.experiment import read_experiment
from marl.commands.train import TIMING_KEYS
from tests.toy_scenario import toy_config

ROOT = Path(__file__).resolve().parent.parent
TIMING = TIMING_KEYS


def experiment_file(tmp: Path, name: str, arms: dict, seeds=(0, 1), **train) -> Path:
    base = toy_config(tmp, f"{name}-base", **{"save_every": 1, "eval_every": 2, **train})
    data = yaml.safe_load(base.read_text())
    data["resources"] = {"imports": ["tests.toy_scenario"]}  # the trials' workers import it
    base.write_text(yaml.safe_dump(data))
    path = tmp / f"{name}.yaml"
    experiment = {
        "name": name,
        "base": base.name,
        "arms": arms,
        "seeds": list(seeds),
        "output_dir": str(tmp / "out"),
        "resources": {"cpus": 2, "cpus_per_trial": 1},
    }
    path.write_text(yaml.safe_dump(experiment, sort_keys=False))
    return path


def marl(*args: str, timeout: int = 600, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "marl.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines(run: Path) -> list[dict]:
    out = []
    for raw in (run / "metrics.jsonl").read_text().splitlines():
        out.append({k: v for k, v in json.loads(raw).items() if k not in TIMING})
    return out


def only(folder: Path, pattern: str = "*") -> Path:
    (found,) = folder.glob(pattern)
    return found


ARMS = {
    "magrpo": {},
    "igrpo": {"train.algorithm": "igrpo"},
    "broken": {"scenario.options.fail_in_training": True},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("exp")
    result = marl("experiment", str(experiment_file(tmp, "grid", ARMS, steps=3)), "--no-progress")
    return only(tmp / "out", "grid-*"), result


def test_every_arm_and_seed_is_a_trial_and_a_failure_is_reported(finished):
    folder, result = finished
    assert result.returncode == 1, result.stderr  # one arm fails; the others finish
    assert "trial broken-seed0 failed" in result.stderr
    assert "toy failure on training task" in result.stderr
    assert "marl experiment --resume" in result.stderr
    trials = sorted(p.name for p in (folder / "trials").iterdir())
    assert trials == [f"{a}-seed{s}" for a in ("broken", "igrpo", "magrpo") for s in (0, 1)]
    for arm in ("magrpo", "igrpo"):
        for seed in (0, 1):
            steps = [line["step"] for line in lines(folder / "trials" / f"{arm}-seed{seed}")]
            assert steps == [0, 1, 2, 3]
    config = yaml.safe_load((folder / "trials" / "igrpo-seed1" / "config.yaml").read_text())
    assert config["train"]["algorithm"] == "igrpo" and config["run"]["seed"] == 1
    assert config["run"]["tracker_group"] == "grid"
    assert (folder / "tune").is_dir()  # Ray Tune's own state, what --resume restores


def test_a_trial_is_an_ordinary_training_run(finished, tmp_path: Path):
    folder, _ = finished
    trial = folder / "trials" / "magrpo-seed1"
    config = yaml.safe_load((trial / "config.yaml").read_text())
    config["run"]["output_dir"] = str(tmp_path)
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(config))
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trial had (cpus_per_trial): the same float sums
    try:
        assert main(["train", str(path), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert lines(only(tmp_path, "magrpo-*")) == lines(trial)


def test_summary_gives_each_arm_across_seeds_with_intervals(finished):
    folder, _ = finished
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["interval"] == INTERVAL
    magrpo = summary["arms"]["magrpo"]
    assert magrpo["seeds"] == [0, 1]
    finals = [lines(folder / "trials" / f"magrpo-seed{s}")[-1]["eval/team"] for s in (0, 1)]
    team = magrpo["final"]["eval/team"]
    assert team["values"] == finals and team["n"] == 2
    assert team == {**t_interval(finals), "values": finals}
    assert [p["step"] for p in magrpo["curve"]] == [0, 2, 3]
    tokens = [lines(folder / "trials" / f"magrpo-seed{s}")[-1]["tokens_total"] for s in (0, 1)]
    assert magrpo["curve"][-1]["tokens_mean"] == sum(tokens) / 2
    (vs_igrpo, vs_broken) = summary["differences"]  # default: the first arm minus each other
    assert (vs_igrpo["a"], vs_igrpo["b"]) == ("magrpo", "igrpo")
    igrpo = [lines(folder / "trials" / f"igrpo-seed{s}")[-1]["eval/team"] for s in (0, 1)]
    assert vs_igrpo["values"] == pytest.approx([m - i for m, i in zip(finals, igrpo, strict=True)])
    # the broken arm failed after its step-0 evaluation: that is its last held-out score
    assert summary["arms"]["broken"]["final_step"] == {"0": 0, "1": 0}
    assert vs_broken["n"] == 2


def test_report_of_an_experiment_folder(finished, capsys):
    folder, _ = finished
    (folder / "report.html").unlink()
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert "Experiment report: grid" in page and "data:image/png;base64," in page
    assert "magrpo - igrpo" in page and "t-interval" in page
    out = capsys.readouterr().out
    assert "final held-out scores, across seeds" in out and "differences" in out


def test_t_interval_matches_the_formula():
    got = t_interval([0.2, 0.4, 0.6])
    # mean 0.4, sd 0.2, t(0.975, 2) = 4.302652729911275
    half = 4.302652729911275 * 0.2 / 3**0.5
    assert got["mean"] == pytest.approx(0.4) and got["n"] == 3
    assert got["ci95"] == pytest.approx([0.4 - half, 0.4 + half])
    assert t_interval([0.5])["ci95"] is None and "one seed" in t_interval([0.5])["why"]


def test_kill_9_of_the_driver_then_resume_loses_and_doubles_nothing(tmp_path: Path):
    arms = {"magrpo": {}, "igrpo": {"train.algorithm": "igrpo"}}
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    straight_dir.mkdir()
    killed_dir.mkdir()
    straight = marl(
        "experiment", str(experiment_file(straight_dir, "k", arms, steps=6)), "--no-progress"
    )
    assert straight.returncode == 0, straight.stderr
    reference = only(straight_dir / "out", "k-*")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    path = experiment_file(killed_dir, "k", arms, steps=6)
    driver = subprocess.Popen(
        [sys.executable, "-m", "marl.cli", "experiment", str(path), "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    folder = None
    while time.monotonic() < deadline:  # kill once a trial is part way, with checkpoints
        found = list((killed_dir / "out").glob("k-*/trials/*/metrics.jsonl"))
        if any(len(f.read_text().splitlines()) >= 3 for f in found):
            folder = found[0].parents[2]
            break
        time.sleep(0.2)
    assert folder is not None, "no trial got going"
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    time.sleep(3)  # Ray's processes follow their driver
    done_before = {
        t.name: sorted((c.name, c.stat().st_mtime_ns) for c in (t / "checkpoints").iterdir())
        for t in (folder / "trials").iterdir()
        if (t / "metrics.jsonl").exists() and lines(t)[-1]["step"] == 6
    }
    # the folder as a user types it, relative to where they stand
    relative = str(folder.relative_to(tmp_path))
    resumed = marl("experiment", "--resume", relative, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    for trial in sorted((reference / "trials").iterdir()):
        assert lines(folder / "trials" / trial.name) == lines(trial), trial.name
    for name, checkpoints in done_before.items():  # a finished trial is not trained again
        now = sorted(
            (c.name, c.stat().st_mtime_ns)
            for c in (folder / "trials" / name / "checkpoints").iterdir()
        )
        assert now == checkpoints, name


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"arms": {"a": {"run.seed": 3}}}, "the experiment's own"),
        ({"arms": {"a": {"train.algorithm": "ppo"}}}, "arm a"),
        ({"arms": {"a": {"team.agents.5.model": "x"}}}, "not an index"),
        ({"arms": {"a": {}}, "compare": ["a - b"]}, "'b' is not an arm"),
        ({"arms": {"9bad": {}}}, "arm name"),
        ({"seeds": [1, 1]}, "seed is given twice"),
        ({"seeds": []}, "seeds"),
        ({"base": "missing.yaml"}, "missing.yaml"),
        ({"arms": {}}, "arms"),
        ({"colour": "red"}, "colour"),
        ({"resources": {"cpus_per_trial": 0}}, "resources.cpus_per_trial"),
    ],
)
def test_a_mistake_in_the_experiment_file_is_one_error(
    tmp_path: Path, capsys, change: dict, says: str
):
    path = experiment_file(tmp_path, "bad", {"a": {}})
    data = yaml.safe_load(path.read_text())
    data.update(change)
    path.write_text(yaml.safe_dump(data))
    assert main(["experiment", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing made before the file is checked


def test_a_base_without_train_and_a_folder_that_is_no_experiment(tmp_path: Path, capsys):
    path = experiment_file(tmp_path, "nt", {"a": {}})
    base = tmp_path / "nt-base.yaml"
    data = yaml.safe_load(base.read_text())
    del data["train"]
    base.write_text(yaml.safe_dump(data))
    assert main(["experiment", str(path), "--no-progress"]) == 2
    assert "needs a train: section" in capsys.readouterr().err
    assert main(["experiment", "--resume", str(tmp_path), "--no-progress"]) == 2
    assert "not an experiment folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs" / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_the_shipped_experiments_validate_every_trial(path: Path):
    config = read_experiment(path)  # every arm x seed validated as a run config
    assert len(config.arms) >= 2 and len(config.seeds) >= 3
    if path.stem == "debate_maporl":
        assert config.arms["maporl"]["scenario.options.reward"] == "maporl"
