"""The run-folder lock: one live process per folder, stale locks taken over, and from the
command line a second process is refused before it loads anything."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from marl.cli import main
from marl.core.runlock import LOCK, Holder, RunFolderInUse, RunLock, process_start

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sleeper():
    """A live process that is not us: the holder of somebody else's lock."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def plant(folder: Path, pid: int, **fields: object) -> Holder:
    holder = replace(
        Holder.this_process(), **{"pid": pid, "pid_start": process_start(pid), **fields}
    )
    (folder / LOCK).write_text(json.dumps(asdict(holder)))
    return holder


def test_the_lock_names_its_process_and_goes_at_release(tmp_path):
    with RunLock(tmp_path) as lock:
        held = json.loads((tmp_path / LOCK).read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        assert held["pid_start"] == process_start(os.getpid())
        assert lock.notice is None
        with pytest.raises(RunFolderInUse, match=f"in use by PID {os.getpid()}"):
            RunLock(tmp_path).acquire()  # a second training in the same process too
    assert list(tmp_path.iterdir()) == []


def test_a_live_holder_keeps_the_folder(tmp_path, sleeper):
    holder = plant(tmp_path, sleeper.pid)
    with pytest.raises(RunFolderInUse) as refused:
        RunLock(tmp_path).acquire()
    assert str(refused.value) == (
        f"run folder {tmp_path} is in use by PID {sleeper.pid} (started {holder.started}); "
        f"if that process is gone, delete {tmp_path / LOCK} and try again"
    )
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == sleeper.pid  # untouched


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    plant(tmp_path, dead_pid(), host="elsewhere")
    with pytest.raises(RunFolderInUse, match="on host elsewhere"):
        RunLock(tmp_path).acquire()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda folder, live: plant(folder, dead_pid()), "is not running"),
        (lambda folder, live: plant(folder, live, pid_start=1), "is now another process"),
        (lambda folder, live: plant(folder, live, boot_id="an-earlier-boot"), "earlier boot"),
    ],
    ids=["dead pid", "reused pid", "earlier boot"],
)
def test_a_stale_lock_is_taken_over_with_a_notice(tmp_path, sleeper, make, why):
    stale = make(tmp_path, sleeper.pid)
    with RunLock(tmp_path) as lock:
        assert lock.notice.startswith(f"took over the lock of PID {stale.pid} (started ")
        assert why in lock.notice
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK).exists()


def test_a_zombie_holder_is_gone(tmp_path):
    zombie = subprocess.Popen(["true"])  # exits, and stays a zombie until waited for
    try:
        while process_start(zombie.pid) is not None:
            pass
        plant(tmp_path, zombie.pid)
        with RunLock(tmp_path) as lock:
            assert "is not running" in lock.notice
    finally:
        zombie.wait()


def test_an_unreadable_lock_is_taken_over(tmp_path):
    (tmp_path / LOCK).write_bytes(b'{"pid": 12')  # not something this code writes
    with RunLock(tmp_path) as lock:
        assert lock.notice.startswith("took over an unreadable lock file")


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path, sleeper):
    lock = RunLock(tmp_path)
    lock.acquire()
    plant(tmp_path, sleeper.pid)  # somebody deleted ours and took the folder
    lock.release()
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == sleeper.pid


def test_many_processes_racing_for_a_stale_lock_get_one_winner(tmp_path):
    plant(tmp_path, dead_pid())
    code = (
        "import sys, time\n"
        "from marl.core.runlock import RunFolderInUse, RunLock\n"
        "sys.stdin.readline()\n"  # start together
        "try:\n"
        f"    lock = RunLock({str(tmp_path)!r}); lock.acquire()\n"
        "except RunFolderInUse:\n"
        "    print('refused', flush=True); sys.exit(0)\n"
        "print('won', flush=True)\n"
        "sys.stdin.readline()\n"  # hold it until every process has tried
        "lock.release()\n"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for racer in racers:
        racer.stdin.write("go\n")
        racer.stdin.flush()
    answers = [racer.stdout.readline().strip() for racer in racers]
    for racer in racers:
        racer.communicate("done\n", timeout=60)
    assert sorted(answers) == ["refused"] * 7 + ["won"]
    assert not (tmp_path / LOCK).exists()


def test_marl_train_refuses_a_folder_in_use_before_loading_models(tmp_path, sleeper, capsys):
    (tmp_path / "config.yaml").write_text("not even a valid config: the lock comes first\n")
    plant(tmp_path, sleeper.pid)
    assert main(["train", "--resume", str(tmp_path), "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"run folder {tmp_path} is in use by PID {sleeper.pid} (started " in err
    assert f"if that process is gone, delete {tmp_path / LOCK} and try again" in err
