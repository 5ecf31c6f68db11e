"""run.report_to: every metrics line reaches TensorBoard, W&B and MLflow, read back for real
with each tracker's own reader (TensorBoard's EventAccumulator, W&B's `wandb leet inspect`
of its offline transaction log, MLflow's client on a local file store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from marl.cli import main
from marl.trackers import metric_name, mlflow_name, scalars
from tests.toy_scenario import toy_config

ROOT = Path(__file__).resolve().parent.parent
WANDB = Path(sys.executable).parent / "wandb"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key in ("WANDB_MODE", "WANDB_API_KEY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)


def with_trackers(path: Path, names: list[str]) -> Path:
    data = yaml.safe_load(path.read_text())
    data["run"]["report_to"] = names
    path.write_text(yaml.safe_dump(data))
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def tensorboard_scalars(run: Path) -> tuple[dict[str, list[tuple[int, float]]], list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    out = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    return out, acc.Tags()["tensors"]


def wandb_records(run: Path) -> list[dict]:
    (log,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    # not this process's W&B service (wandb.init leaves its address in the environment)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    out = subprocess.run(
        [str(WANDB), "leet", "inspect", "--json", str(log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def wandb_history(records: list[dict]) -> list[dict]:
    """The logged rows (``wandb leet inspect --json`` gives each history item as a dict)."""
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


def mlflow_client(store: Path):
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    return MlflowClient(store.as_uri())


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("tracked")
    config = with_trackers(toy_config(parent, "t"), ["tensorboard", "wandb", "mlflow"])
    for key in ("WANDB_MODE", "WANDB_API_KEY", "MLFLOW_TRACKING_URI"):
        os.environ.pop(key, None)
    assert main(["train", str(config), "--no-progress"]) == 0
    (run,) = (parent / "t").glob("t-*")
    return run


def test_tensorboard_holds_every_metrics_line(tracked_run: Path):
    lines = metrics(tracked_run)
    found, tensors = tensorboard_scalars(tracked_run)
    evaluated = [(line["step"], line["eval/team"]) for line in lines if "eval/team" in line]
    assert [s for s, _ in found["eval/team"]] == [s for s, _ in evaluated]
    assert [v for _, v in found["eval/team"]] == pytest.approx([v for _, v in evaluated])
    assert [s for s, _ in found["reward_mean"]] == [x["step"] for x in lines if "reward_mean" in x]
    assert [v for _, v in found["a/grad_norm"]] == pytest.approx(
        [x["a/grad_norm"] for x in lines[1:]]
    )
    assert "config/text_summary" in tensors and "transcripts/text_summary" in tensors


def test_wandb_offline_run_holds_the_lines_and_the_config(tracked_run: Path):
    lines = metrics(tracked_run)
    records = wandb_records(tracked_run)
    history = wandb_history(records)
    logged = {(row["_step"], row["eval/team"]) for row in history if "eval/team" in row}
    expected = {(x["step"], x["eval/team"]) for x in lines if "eval/team" in x}
    assert {(s, round(v, 6)) for s, v in logged} == {(s, round(v, 6)) for s, v in expected}
    assert any(row.get("transcripts._type") == "table-file" for row in history)
    (run_record,) = [r for r in records if r.get("type") == "run"]
    config_items = json.dumps(run_record["run"]["config"])
    assert '"lr"' in config_items and "toy_length_v0" in config_items


def test_mlflow_file_store_holds_metrics_params_and_samples(tracked_run: Path):
    lines = metrics(tracked_run)
    client = mlflow_client(tracked_run.parent / "mlruns")
    ids = json.loads((tracked_run / "trackers.json").read_text())
    run = client.get_run(ids["mlflow"])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.01"
    assert run.data.params["scenario.name"] == "toy_length_v0"
    history = client.get_metric_history(ids["mlflow"], mlflow_name("eval/team"))
    expected = [(x["step"], x["eval/team"]) for x in lines if "eval/team" in x]
    got = sorted((m.step, m.value) for m in history)
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected])
    steps = [m.step for m in client.get_metric_history(ids["mlflow"], "reward_mean.a")]
    assert sorted(steps) == [1, 2, 3, 4]
    artifacts = {a.path for a in client.list_artifacts(ids["mlflow"])}
    assert {"config.yaml", "transcripts"} <= artifacts


def test_resumed_run_continues_the_same_tracker_runs(tmp_path: Path):
    config = with_trackers(toy_config(tmp_path, "r", steps=2), ["tensorboard", "wandb", "mlflow"])
    assert main(["train", str(config), "--no-progress"]) == 0
    (run,) = (tmp_path / "r").glob("r-*")
    before = json.loads((run / "trackers.json").read_text())
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["train"]["steps"] = 4  # a longer run of the same folder
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert json.loads((run / "trackers.json").read_text()) == before
    found, _ = tensorboard_scalars(run)
    assert [s for s, _ in found["reward_mean"]] == [1, 2, 3, 4]  # nothing twice
    client = mlflow_client(tmp_path / "r" / "mlruns")
    steps = sorted(m.step for m in client.get_metric_history(before["mlflow"], "reward_mean"))
    assert steps == [1, 2, 3, 4]
    assert len(list((run / "wandb").glob("offline-run-*"))) >= 1


def test_simulate_sends_each_episode_line_with_its_phase(tmp_path: Path, monkeypatch):
    config = with_trackers(toy_config(tmp_path, "s"), ["tensorboard"])
    assert main(["simulate", str(config), "--episodes", "3", "--no-progress"]) == 0
    (run,) = (tmp_path / "s").glob("s-*")
    found, tensors = tensorboard_scalars(run)
    lines = metrics(run)
    team = [(x["episode"], x["score"]) for x in lines if x["phase"] == "team"]
    assert [s for s, _ in found["team/score"]] == [s for s, _ in team]
    assert [v for _, v in found["team/score"]] == pytest.approx([v for _, v in team])
    assert "single/score" in found and "summary/team_gain" in found
    assert "transcripts/text_summary" in tensors


def test_a_tracker_that_fails_mid_run_is_dropped_and_the_run_goes_on(
    tmp_path: Path, monkeypatch, capsys
):
    from torch.utils.tensorboard import SummaryWriter

    calls = {"n": 0}
    original = SummaryWriter.add_scalar

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", flaky)
    config = with_trackers(toy_config(tmp_path, "f"), ["tensorboard"])
    assert main(["train", str(config), "--no-progress"]) == 0
    (run,) = (tmp_path / "f").glob("f-*")
    assert [x["step"] for x in metrics(run)] == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "tracker tensorboard failed" in err and "No space left" in err


@pytest.mark.parametrize(
    ("report_to", "says"),
    [
        ("[tensorboard, tensorboard]", "named twice"),
        ("[comet]", "run.report_to"),
        ("tensorboard", "run.report_to"),
    ],
)
def test_bad_report_to_is_a_config_error(tmp_path: Path, capsys, report_to: str, says: str):
    config = toy_config(tmp_path, "bad")
    code = main(["train", str(config), "--set", f"run.report_to={report_to}", "--no-progress"])
    assert code == 2
    assert says in capsys.readouterr().err


def test_a_tracker_that_cannot_open_is_one_error_line(tmp_path: Path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (blocker / "store").as_uri())
    config = with_trackers(toy_config(tmp_path, "m"), ["mlflow"])
    assert main(["train", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot open mlflow" in err and "Traceback" not in err


def test_a_missing_tracker_is_named_before_anything_loads(tmp_path: Path):
    code = (
        "import sys, importlib.util, tests.toy_scenario\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'wandb' else real(n, *a)\n"
        "from marl.cli import main\n"
        f"sys.exit(main(['train', {str(with_trackers(toy_config(tmp_path, 'w'), ['wandb']))!r},"
        " '--no-progress']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stderr
    assert "'wandb' is not installed here" in result.stderr
    assert "pip install -e '.[trackers]'" in result.stderr


def test_scalars_keep_numbers_and_name_them_for_every_tracker():
    step, values = scalars(
        {"phase": "single:alice", "episode": 3, "seed": 7, "score": 1, "answer": "4", "ok": True}
    )
    assert step == 3 and values == {"single_alice/score": 1.0}
    assert metric_name("eval/gain_vs/self_consistency/ci95_low") == (
        "eval/gain_vs/self_consistency/ci95_low"
    )
    assert mlflow_name("reward_mean/a") == "reward_mean.a"
    assert scalars({"step": 2, "x": float("nan"), "tasks": [1, 2]}) == (2, {})
