"""`marl export RUN_DIR --csv` on real tiny-model run folders: the CSV files read back with
the numbers of the run's own files, and bad input refused in one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from marl.cli import main
from marl.core.codec import TranscriptReader
from tests.conftest import config_on_tiny_model
from tests.toy_scenario import toy_config  # registers toy_length_v0 too

ROOT = Path(__file__).resolve().parent.parent


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cell(value: object) -> str:
    """What a metrics value must read back as."""
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


@pytest.fixture(scope="module")
def train_run(tmp_path_factory) -> Path:
    """Two toy training steps, the untrained team and step 2 evaluated."""
    tmp = tmp_path_factory.mktemp("train")
    config = toy_config(tmp, "toy", steps=2, eval_every=2, save_every=2)
    assert main(["train", str(config), "--no-progress"]) == 0
    (run,) = (tmp / "toy").iterdir()
    return run


@pytest.fixture(scope="module")
def exported(train_run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    assert main(["export", str(train_run), "--csv", "--out", str(out)]) == 0
    return out


def test_metrics_csv_has_every_line_and_key_of_metrics_jsonl(
    train_run: Path, exported: Path
) -> None:
    lines = jsonl(train_run / "metrics.jsonl")
    rows = read_csv(exported / "metrics.csv")
    assert len(rows) == len(lines) == 3
    keys = {k for line in lines for k in line}
    assert set(rows[0]) == keys  # the union: the step lines' keys and the evaluations'
    for line, row in zip(lines, rows, strict=True):
        for key in keys:
            assert row[key] == cell(line.get(key)), key
        for key, value in line.items():  # numbers read back exactly
            if isinstance(value, float):
                assert float(row[key]) == value
    assert json.loads(rows[1]["tasks"]) == lines[1]["tasks"]


def test_evaluations_csv_has_a_row_per_evaluation_and_who(train_run: Path, exported: Path) -> None:
    evaluated = [line for line in jsonl(train_run / "metrics.jsonl") if "eval/team" in line]
    rows = read_csv(exported / "evaluations.csv")
    assert [(r["step"], r["who"]) for r in rows] == [
        (str(line["step"]), who) for line in evaluated for who in ("team", "single:a", "single:b")
    ]
    for line, group in zip(evaluated, (rows[:3], rows[3:]), strict=True):
        team, a, b = group
        assert float(team["score"]) == line["eval/team"] and team["gain"] == ""
        assert float(a["score"]) == line["eval/single/a"]
        assert float(b["score"]) == line["eval/single/b"]
        assert float(a["gain"]) == pytest.approx(line["eval/team"] - line["eval/single/a"])
        assert team["split"] == "test"


def test_episodes_csv_has_every_rollout_of_the_transcripts(train_run: Path, exported: Path) -> None:
    rows = read_csv(exported / "episodes.csv")
    rollouts = [
        (group["step"], group["seed"], rollout)
        for path in sorted((train_run / "transcripts").glob("step-*.msgpack"))
        for group in TranscriptReader(path).records()
        for rollout in group["rollouts"]
    ]
    assert len(rows) == len(rollouts) == 2 * 3  # 2 steps of 1 task x G=3
    for row, (step, seed, rollout) in zip(rows, rollouts, strict=True):
        assert (row["phase"], row["split"]) == ("train", "train")
        assert (int(row["step"]), int(row["seed"])) == (step, seed)
        assert float(row["score"]) == rollout["metrics"]["score"]
        tokens = sum(len(t["token_ids"]) for t in rollout["turns"])
        assert int(row["completion_tokens"]) == tokens
        assert row["agents"] == "a b" and int(row["turns"]) == 2
    for line in jsonl(train_run / "metrics.jsonl")[1:]:  # the steps' token counts agree
        spent = sum(int(r["completion_tokens"]) for r in rows if int(r["step"]) == line["step"])
        assert spent == line["tokens"]


def test_pandas_reads_the_same_numbers(train_run: Path, exported: Path) -> None:
    pandas = pytest.importorskip("pandas")
    lines = jsonl(train_run / "metrics.jsonl")
    frame = pandas.read_csv(exported / "metrics.csv")
    assert list(frame["step"]) == [line["step"] for line in lines]
    assert frame.loc[1, "reward_mean"] == lines[1]["reward_mean"]
    assert frame.loc[2, "eval/team"] == lines[2]["eval/team"]
    assert pandas.isna(frame.loc[1, "eval/team"])  # step 1 was not evaluated
    episodes = pandas.read_csv(exported / "episodes.csv")
    assert episodes.groupby("step")["completion_tokens"].sum().tolist() == [
        line["tokens"] for line in lines[1:]
    ]


def test_export_goes_to_the_run_folder_by_default_and_says_what_it_wrote(
    train_run: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / train_run.name
    shutil.copytree(train_run, run)
    assert main(["export", str(run), "--csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{run / 'export' / 'metrics.csv'}: 3 rows",
        f"{run / 'export' / 'evaluations.csv'}: 6 rows",
        f"{run / 'export' / 'episodes.csv'}: 6 rows",
    ]


def test_an_eval_run_exports_its_phases_baselines_and_episodes(tmp_path: Path) -> None:
    data = config_on_tiny_model(
        ROOT / "configs" / "debate.yaml", output_dir=str(tmp_path / "runs"), episodes=2
    )
    path = tmp_path / "debate.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["eval", str(path), "--split", "test", "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert main(["export", str(run), "--csv"]) == 0
    summary = json.loads((run / "summary.json").read_text())

    evaluations = read_csv(run / "export" / "evaluations.csv")
    scores = {r["who"]: float(r["score"]) for r in evaluations}
    phases = {
        name: phase["score"]
        for name, phase in summary["phases"].items()
        if name == "team" or name.startswith("single:")
    }
    assert {who: scores[who] for who in phases} == phases
    applicable = {k for k, v in summary["baselines"].items() if "score" in v}
    assert set(scores) == set(phases) | applicable
    assert {r["split"] for r in evaluations} == {"test"}

    episodes = read_csv(run / "export" / "episodes.csv")
    lines = jsonl(run / "metrics.jsonl")  # one line per episode, in the same order
    assert len(episodes) == len(lines)
    for row, line in zip(episodes, lines, strict=True):
        assert (row["phase"], int(row["episode"]), int(row["seed"])) == (
            line["phase"],
            line["episode"],
            line["seed"],
        )
        assert float(row["score"]) == line["score"]
        assert int(row["completion_tokens"]) == line["completion_tokens"]
        assert int(row["prompt_tokens"]) == line["prompt_tokens"]
        assert json.loads(row["score_by_round"]) == line["score_by_round"]
    metrics = read_csv(run / "export" / "metrics.csv")
    assert [float(r["return"]) for r in metrics] == [line["return"] for line in lines]


def test_damaged_metrics_lines_are_skipped_and_counted(
    train_run: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / train_run.name
    shutil.copytree(train_run, run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    damaged = [lines[0], "{not json", lines[1], '["a list"]', lines[2], '{"step": 3, "tok']
    (run / "metrics.jsonl").write_text("\n".join(damaged))  # the last line cut off
    assert main(["export", str(run), "--csv"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "metrics.jsonl: 2 lines of the wrong shape skipped" in captured.err
    assert "line 6 is cut off" in captured.err
    assert len(read_csv(run / "export" / "metrics.csv")) == 3
    assert f"{run / 'export' / 'metrics.csv'}: 3 rows" in captured.out


@pytest.mark.parametrize("what", ["empty folder", "file", "missing", "experiment"])
def test_a_path_that_is_no_run_folder_is_one_line_and_exit_2(
    tmp_path: Path, capsys, what: str
) -> None:
    path = tmp_path / "thing"
    if what == "empty folder":
        path.mkdir()
    elif what == "file":
        path.write_text("hello")
    elif what == "experiment":
        path.mkdir()
        (path / "experiment.yaml").write_text("name: x\n")
    assert main(["export", str(path), "--csv"]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("error: ") and str(path) in line
    assert captured.out == ""
    assert not (path / "export").exists()


def test_an_out_that_is_a_file_is_one_line_and_exit_2(
    train_run: Path, tmp_path: Path, capsys
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("")
    assert main(["export", str(train_run), "--csv", "--out", str(blocker)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"error: cannot write the export: {blocker} is not a folder"


def test_export_needs_a_format(train_run: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(train_run)])
    assert exit_.value.code == 2
    assert "--csv" in capsys.readouterr().err
