"""What `marl train` says while it works: the phase the loop is in (rollouts, update, which
evaluation and how far, checkpoint), the step-0 held-out score beside the newest one, and
evaluation time as its own metrics field."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

import marl.cli
from marl.assembly import load_config
from marl.cli import TrainBar, eval_text, main
from marl.commands.phases import EpisodesDone
from marl.commands.train import TrainingPhase, resume_training, start_training
from marl.core.runs import RunFolder
from tests.toy_scenario import toy_config  # registers toy_length_v0 too


def evaluation(step: int) -> list[tuple[str, int]]:
    """The phases of one held-out evaluation of the toy team (a, b) on 2 tasks, counted turn
    by turn (batch size 1, 2 turns per team episode, 1 per episode alone)."""
    return [
        (f"{who} {k}/2", step)
        for who in ("evaluating team", "evaluating a alone", "evaluating b alone")
        for k in range(3)
    ]


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory) -> tuple[Path, list[TrainingPhase], dict[int, float]]:
    """Two toy steps, evaluated at steps 0 and 2, checkpointed at 2, every phase recorded."""
    tmp = tmp_path_factory.mktemp("phases")
    path = toy_config(tmp, "watched", steps=2, eval_every=2, save_every=2)
    config = load_config(path, ["run.batch_size=1"])  # a count per turn
    training = start_training(config, RunFolder.create(config.run.output_dir, config.name))
    phases: list[TrainingPhase] = []
    try:
        training.run(on_phase=phases.append)
    finally:
        training.close()
    return training.folder.path, phases, dict(training.eval_scores)


def test_training_reports_each_phase_as_it_begins(watched_run) -> None:
    _, phases, _ = watched_run
    assert [(str(p), p.step) for p in phases] == [
        *evaluation(0),
        ("rollouts", 1),
        ("update", 1),
        ("rollouts", 2),
        ("update", 2),
        *evaluation(2),
        ("checkpoint", 2),
    ]


def test_evaluation_time_is_its_own_metrics_field(watched_run) -> None:
    run, _, _ = watched_run
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2]
    evaluated = [line for line in lines if "eval/team" in line]
    assert [line["step"] for line in evaluated] == [0, 2]
    assert all(line["eval_seconds"] > 0 for line in evaluated)
    assert "eval_seconds" not in lines[1]
    assert all("seconds" in line for line in lines[1:])  # a step's own time, on every step


def test_the_step_0_score_is_kept_and_found_again_on_resume(watched_run) -> None:
    run, _, scores = watched_run
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert scores == {line["step"]: line["eval/team"] for line in lines if "eval/team" in line}
    training, _ = resume_training(run)
    try:
        assert training.eval_scores == scores
    finally:
        training.close()


def rendered(bar: TrainBar) -> str:
    out = Console(file=io.StringIO(), width=200, record=True)
    out.print(bar.progress.get_renderable())
    return out.export_text()


def test_the_bar_shows_the_phase_and_the_step_0_score_beside_the_newest() -> None:
    bar = TrainBar(3, 0, Console(file=io.StringIO()))
    text = rendered(bar)
    assert "0/3 steps" in text and "eval -" in text

    bar.show_phase(TrainingPhase("evaluating team", 0, 7, 20), {})
    assert "evaluating team 7/20" in rendered(bar)

    bar.show_phase(TrainingPhase("rollouts", 1), {0: 0.25})
    text = rendered(bar)
    assert "rollouts" in text and "evaluating" not in text
    assert "eval 25% (step 0)" in text

    bar.show_step({"step": 2, "reward_mean": 0.4, "tokens_per_s": 12.0}, {0: 0.25, 2: 0.5})
    bar.show_phase(TrainingPhase("evaluating b alone", 2, 1, 20), {0: 0.25, 2: 0.5})
    text = rendered(bar)
    assert "2/3 steps" in text and "reward 0.40" in text and "12 tok/s" in text
    assert "eval 50% (step 0: 25%)" in text and "evaluating b alone 1/20" in text


def test_eval_text_without_a_step_0_evaluation() -> None:
    """A resumed run whose step-0 line is gone, or one evaluated only later."""
    assert eval_text({}) == "-"
    assert eval_text({4: 0.5}) == "50%"
    assert eval_text({0: 0.1, 4: 0.5}) == "50% (step 0: 10%)"


def test_episodes_done_counts_episodes_worth_of_turns() -> None:
    told: list[int] = []
    counted = EpisodesDone(3, 4, told.append)  # 3 episodes of at most 4 turns
    for turns in (3, 3, 3):
        counted(turns)
    counted.finish()  # the last episode ended a round early
    assert told == [0, 1, 2, 3]


def test_a_cli_run_ends_with_the_bar_saying_so_and_no_progress_prints_none(
    tmp_path: Path, monkeypatch
) -> None:
    """On a console that is no terminal the bar is drawn once, as it ends; --no-progress
    draws nothing."""
    config = toy_config(tmp_path, "cli", steps=1, eval_every=1, save_every=1)
    out = Console(file=io.StringIO(), width=200, record=True)
    monkeypatch.setattr(marl.cli, "console", out)
    assert main(["train", str(config)]) == 0
    text = out.export_text()
    assert "1/1 steps" in text and "finished" in text
    assert "% (step 0: " in text and "tok/s" in text

    out = Console(file=io.StringIO(), width=200, record=True)
    monkeypatch.setattr(marl.cli, "console", out)
    assert main(["train", str(config), "--no-progress"]) == 0
    text = out.export_text()
    assert "tok/s" not in text and "finished step 1 of 1" in text
