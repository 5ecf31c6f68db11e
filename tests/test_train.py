"""`marl train` end to end on the tiny model: run folder, checkpoints, exact resume, and a
run stopped by a signal, a kill or a full disk resuming to the uninterrupted run's lines."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import yaml

import marl.core.checkpoint
import marl.core.runs
from marl.cli import main
from marl.commands.train import TIMING_KEYS, StopOnSignal
from marl.core.checkpoint import OPTIMIZERS, POLICIES, checkpoints, leftovers, verify
from marl.core.codec import TranscriptWriter
from marl.core.runlock import LOCK, Holder
from tests.conftest import config_on_tiny_model
from tests.toy_scenario import toy_config  # registers toy_length_v0 too

ROOT = Path(__file__).resolve().parent.parent
TIMING = TIMING_KEYS


def metrics(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in TIMING} for line in lines]


def only_run(parent: Path) -> Path:
    (run,) = parent.iterdir()
    return run


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    """The toy run trained straight through: every stopped and resumed run must end with
    its metrics lines (the checkpoint schedule does not change them)."""
    parent = tmp_path_factory.mktemp("whole")
    assert main(["train", str(toy_config(parent, "whole")), "--no-progress"]) == 0
    return only_run(parent / "whole")


@pytest.fixture
def uninterrupted(whole_run: Path) -> list[dict]:
    return metrics(whole_run)


def train_in_subprocess(config: Path) -> subprocess.Popen:
    code = (
        "import sys, tests.toy_scenario; from marl.cli import main; "
        f"sys.exit(main(['train', {str(config)!r}, '--no-progress']))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_step(parent: Path, proc: subprocess.Popen, step: int) -> Path:
    """The run folder, once its metrics have a line for ``step`` (the process still runs)."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        for path in parent.glob("*/metrics.jsonl"):
            if step in logged_steps(path):
                return path.parent
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no step {step} line before the run ended: {proc.communicate()[0]}")


def logged_steps(path: Path) -> list[int]:
    """Steps of the whole lines of a metrics file that is being written."""
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:
            continue
    return steps


def assert_resumable(run: Path, step: int) -> None:
    """The state a stopped run must leave: a verifying checkpoint of ``step`` (the last one
    on disk), metrics up to it, no temporary files and no lock."""
    assert set(range(1, step + 1)) <= set(logged_steps(run / "metrics.jsonl"))
    assert checkpoints(run / "checkpoints")[-1].name == f"step-{step:06d}"
    assert all(verify(path) is None for path in checkpoints(run / "checkpoints"))
    assert leftovers(run / "checkpoints") == []
    assert not (run / LOCK).exists()
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


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


def test_sigkill_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, uninterrupted: list[dict]
) -> None:
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
    assert metrics(run) == uninterrupted  # same lines, none lost, none doubled


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_resume_matches(
    tmp_path: Path, uninterrupted: list[dict], capsys, signum: int
) -> None:
    # save_every=3: the checkpoint the stop writes is not one the schedule would have
    proc = train_in_subprocess(toy_config(tmp_path, "stopped", save_every=3))
    run = wait_for_step(tmp_path / "stopped", proc, 1)
    # a second process on the same folder is refused, and names the first
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert f"is in use by PID {proc.pid} (started " in capsys.readouterr().err
    proc.send_signal(signum)
    out = " ".join(proc.communicate(timeout=300)[0].split())
    assert proc.returncode == 128 + signum, out  # 130 for SIGINT, 143 for SIGTERM
    stopped = metrics(run)[-1]["step"]
    assert 1 <= stopped < 4
    assert f"{signal.Signals(signum).name}: stopping after the step in progress" in out
    assert f"interrupted after step {stopped}; resume with: marl train --resume {run}" in out
    assert_resumable(run, stopped)

    # a crash of the resumed run would leave its lock; the next one takes it over
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = replace(Holder.this_process(), pid=dead.pid, pid_start=None)
    (run / LOCK).write_text(json.dumps(asdict(stale)))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"took over the lock of PID {dead.pid}" in out
    assert f"resumed from checkpoint step {stopped}" in out
    assert metrics(run) == uninterrupted  # every step once, as if never stopped
    assert not (run / LOCK).exists()


def test_a_second_sigint_aborts_at_once_and_leaves_a_resumable_run(tmp_path: Path) -> None:
    proc = train_in_subprocess(toy_config(tmp_path, "aborted"))
    run = wait_for_step(tmp_path / "aborted", proc, 1)
    while proc.poll() is None and not (run / "checkpoints" / "step-000001").exists():
        time.sleep(0.01)  # then step 2 starts, which takes seconds
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out = " ".join(proc.communicate(timeout=300)[0].split())
    assert proc.returncode == 130, out
    assert "aborted; " in out and f"resume with: marl train --resume {run}" in out
    assert 2 not in [line["step"] for line in metrics(run)]  # it did not finish step 2
    saved = checkpoints(run / "checkpoints")
    assert_resumable(run, int(saved[-1].name.removeprefix("step-")))


def test_a_second_signal_landing_inside_a_finalizer_still_aborts() -> None:
    """Python swallows an exception raised in ``__del__``; the abort must not be lost there."""

    class SignalledWhileFinalized:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)  # the handler runs here, inside __del__

    hook, handler = sys.unraisablehook, signal.getsignal(signal.SIGINT)
    with StopOnSignal() as stop:
        signal.raise_signal(signal.SIGINT)  # first: a polite stop
        assert stop.requested()
        with pytest.raises(KeyboardInterrupt):
            obj = SignalledWhileFinalized()
            del obj
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the abort lands here, outside the finalizer
                pass
    assert sys.unraisablehook is hook and signal.getsignal(signal.SIGINT) is handler


# ---------------------------------------------------------------- a full disk


def full_disk_at(n: int, real, partial):
    """``real``, except that its ``n``-th call writes only a part (``partial``), then fails
    as a full disk does."""
    calls = 0

    def patched(*args):
        nonlocal calls
        calls += 1
        if calls == n:
            partial(*args)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    return patched


def inject_full_disk(monkeypatch, file: str) -> None:
    """The second write of ``file`` fails: step 2's (metrics: no step-0 evaluation line)."""
    if file == "metrics.jsonl":
        real = marl.core.runs._write_all
        fail = full_disk_at(2, real, lambda fd, data: real(fd, data[: len(data) // 2]))
        monkeypatch.setattr(marl.core.runs, "_write_all", fail)
    elif file == "transcripts":
        real = TranscriptWriter.write
        fail = full_disk_at(2, real, lambda writer, record: writer._file.write(b"\x81\xa4"))
        monkeypatch.setattr(TranscriptWriter, "write", fail)
    else:
        torch = marl.core.checkpoint.torch
        fail = full_disk_at(2, torch.save, lambda obj, f: f.write(b"PK\x03\x04"))

        def save(obj, f):
            try:
                return fail(obj, f)
            except OSError:  # what torch does: its own error, the OSError as its context
                raise RuntimeError("[enforce fail] unexpected pos") from None

        monkeypatch.setattr(torch, "save", save)


# policies.safetensors fails the same way (test_checkpoint covers both serialisers)
@pytest.mark.parametrize("file", ["metrics.jsonl", "transcripts", OPTIMIZERS])
def test_a_full_disk_stops_the_run_and_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch, capsys, file: str
) -> None:
    inject_full_disk(monkeypatch, file)
    config = toy_config(tmp_path, "full", steps=2, eval_every=0)
    assert main(["train", str(config), "--no-progress"]) == 1
    run = only_run(tmp_path / "full")
    failed = {
        "metrics.jsonl": run / "metrics.jsonl",
        "transcripts": run / "transcripts" / "step-000002.msgpack",
        OPTIMIZERS: run / "checkpoints" / "step-000002" / OPTIMIZERS,
    }[file]
    assert (
        f"error: no space left on device while writing {failed}; "
        "the last good checkpoint is step 1" in " ".join(capsys.readouterr().err.split())
    )
    assert_resumable(run, 1)
    assert (run / "metrics.jsonl").read_text().endswith("}\n")  # no half line
    # transcripts and metrics come before the checkpoint in a step
    logged = [1] if file in ("metrics.jsonl", "transcripts") else [1, 2]
    assert [line["step"] for line in metrics(run)] == logged
    assert (run / "transcripts" / "step-000002.msgpack").exists() == (file != "transcripts")


def mount_tmpfs(path: Path, size: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the injected full disk runs anyway")
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def test_a_full_tmpfs_stops_the_run_and_resume_finishes_it_after_space_is_freed(
    tmp_path: Path, whole_run: Path, capsys
) -> None:
    """A real full disk: room for two checkpoints and a half (keep 2: the third one written
    does not fit), then more room, and the resumed run ends as if nothing happened."""
    disk = tmp_path / "disk"
    config = toy_config(tmp_path, "tiny-disk", keep_checkpoints=2)
    data = yaml.safe_load(config.read_text())
    data["run"]["output_dir"] = str(disk)
    config.write_text(yaml.safe_dump(data))
    newest = checkpoints(whole_run / "checkpoints")[-1]  # the same adapters and AdamW states
    checkpoint_bytes = sum(path.stat().st_size for path in newest.iterdir())
    mount_tmpfs(disk, int(2.5 * checkpoint_bytes) + 64 * 1024)
    try:
        assert main(["train", str(config), "--no-progress"]) == 1
        run = only_run(disk)
        err = " ".join(capsys.readouterr().err.split())
        assert "error: no space left on device while writing " in err, err
        good = checkpoints(run / "checkpoints")[-1]
        assert f"the last good checkpoint is step {int(good.name[5:])}" in err
        assert_resumable(run, int(good.name[5:]))
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        assert metrics(run) == metrics(whole_run)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


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
    out = " ".join(capsys.readouterr().out.split())
    aside = run / "checkpoints" / "corrupt-step-000002"
    assert (
        "skipped checkpoint step-000002: policies.safetensors does not match its checksum; "
        f"moved it to {aside}" in out
    )
    assert "resumed from checkpoint step 1" in out
    assert [line["step"] for line in metrics(run)] == [1, 2]  # eval_every=0: no step-0 line
    # the step is trained again into a good checkpoint; the bad one stays aside, unlisted
    assert [p.name for p in checkpoints(run / "checkpoints")] == ["step-000001", "step-000002"]
    assert verify(run / "checkpoints" / "step-000002") is None
    assert verify(aside) is not None


def test_train_without_a_train_section_is_a_clear_error(tmp_path: Path, capsys) -> None:
    path = toy_config(tmp_path, "none")
    data = yaml.safe_load(path.read_text())
    del data["train"]
    path.write_text(yaml.safe_dump(data))
    assert main(["train", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "has no 'train:' section" in err and err.count("\n") == 1  # one line
    assert not (tmp_path / "none").exists()  # no run folder for a run that never started
    # an override of train.* does not make the section: no training on defaults
    for flags in (["--steps", "1"], ["--set", "train.group_size=2"]):
        assert main(["train", str(path), *flags, "--no-progress"]) == 2
        assert "has no 'train:' section" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_an_example_config_without_a_train_section_is_refused(tmp_path: Path, capsys) -> None:
    source = ROOT / "configs" / "debate.yaml"
    assert "train" not in yaml.safe_load(source.read_text())
    out = tmp_path / "runs"
    assert main(["train", str(source), "--steps", "3", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {source} has no 'train:' section")
    assert not out.exists()


def test_max_tokens_ends_the_run_after_the_step_that_spends_it(tmp_path: Path, capsys) -> None:
    """train.max_tokens: the run stops after the step whose rollouts reach the budget, with
    that step evaluated and checkpointed; a resume of the finished run trains nothing."""
    config = toy_config(tmp_path, "budget", steps=50, max_tokens=80, eval_every=100)
    assert main(["train", str(config), "--no-progress"]) == 0
    assert "the budget of 80 generated tokens is spent" in capsys.readouterr().out
    run = only_run(tmp_path / "budget")
    written = metrics(run)
    steps = written[1:]
    running = 0
    for line in steps:
        running += line["tokens"]
        assert line["tokens_total"] == running
    assert steps[-1]["tokens_total"] >= 80 > steps[-2]["tokens_total"]
    assert "eval/team" in written[0] and "eval/team" in steps[-1]  # first and last point
    assert all("eval/team" not in line for line in steps[:-1])
    (newest, *_) = sorted(checkpoints(run / "checkpoints"), reverse=True)
    assert newest.name == f"step-{steps[-1]['step']:06d}"
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert metrics(run) == written


def test_igrpo_on_the_maporl_reward_learns_from_each_agents_own_score(tmp_path: Path) -> None:
    """debate_v0 with reward maporl, algorithm igrpo, on the tiny model: its answers never
    parse, so every agent's round-1 MAPoRL reward is the penalty for following a wrong
    majority (-0.5), a reward the team's 0/1 reward cannot give."""
    runs = tmp_path / "runs"
    data = config_on_tiny_model(ROOT / "configs" / "magrpo_debate.yaml", output_dir=str(runs))
    data["scenario"]["options"]["reward"] = "maporl"
    data["train"] |= {
        "algorithm": "igrpo",
        "steps": 1,
        "tasks_per_step": 1,
        "group_size": 2,
        "eval_every": 0,
        "save_every": 1,
    }
    path = tmp_path / "maporl.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["train", str(path), "--no-progress"]) == 0
    line = metrics(only_run(runs))[-1]
    assert line["step"] == 1
    for agent in ("alice", "bob", "carol"):
        assert line[f"reward_mean/{agent}"] < 0
