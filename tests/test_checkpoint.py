"""Checkpoints: any damage to any file is caught, loading falls back, a failed write leaves
nothing behind, and the newest ``keep`` survive. Small in-memory states, no model."""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path

import pytest
import torch

import marl.core.checkpoint as ckpt
from marl.core.checkpoint import (
    MANIFEST,
    OPTIMIZERS,
    POLICIES,
    STATE,
    Checkpoint,
    checkpoints,
    leftovers,
    load_latest,
    save_checkpoint,
    verify,
)


def checkpoint(step: int) -> Checkpoint:
    """A state like training's: adapter tensors, an AdamW state after one update, a note."""
    weight = torch.nn.Parameter(torch.full((4, 3), float(step)))
    optimizer = torch.optim.AdamW([weight], lr=0.1)
    weight.sum().backward()
    optimizer.step()
    return Checkpoint(
        step=step,
        policies={"a.lora_A": weight.detach().clone(), "a.lora_B": torch.arange(6.0) * step},
        optimizers={"a": {"optimizer": optimizer.state_dict()}},
        state={"algorithm": "magrpo"},
    )


def saved(folder: Path, steps: range, keep: int = 5) -> Path:
    for step in steps:
        save_checkpoint(folder, checkpoint(step), keep)
    return folder


def flip(path: Path, where: float) -> None:
    data = bytearray(path.read_bytes())
    data[min(int(len(data) * where), len(data) - 1)] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "flip the first byte": lambda p: flip(p, 0.0),
    "flip a middle byte": lambda p: flip(p, 0.5),
    "flip the last byte": lambda p: flip(p, 1.0),
    "cut to half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "cut one byte": lambda p: p.write_bytes(p.read_bytes()[:-1]),
    "empty it": lambda p: p.write_bytes(b""),
    "delete it": lambda p: p.unlink(),
}


@pytest.mark.parametrize("name", [POLICIES, OPTIMIZERS, STATE, MANIFEST])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_any_damage_to_any_file_falls_back_to_the_previous_checkpoint(tmp_path, name, damage):
    folder = saved(tmp_path, range(1, 3))
    DAMAGE[damage](folder / "step-000002" / name)
    loaded, skipped = load_latest(folder)
    assert loaded is not None and loaded.step == 1
    assert torch.equal(loaded.policies["a.lora_B"], torch.arange(6.0))
    assert [s[0] for s in skipped] == ["step-000002"]
    assert name in skipped[0][1]  # the reason names the damaged file


@pytest.mark.parametrize(
    "manifest",
    [
        {},  # lists nothing: would verify vacuously
        {POLICIES: None, STATE: None},  # a file left out
        [],
        "not a manifest",
    ],
)
def test_a_manifest_that_does_not_list_every_file_is_refused(tmp_path, manifest):
    folder = saved(tmp_path, range(1, 3))
    (folder / "step-000002" / MANIFEST).write_text(json.dumps(manifest))
    loaded, skipped = load_latest(folder)
    assert loaded.step == 1
    assert skipped == [
        ("step-000002", f"{MANIFEST} does not list {POLICIES}, {OPTIMIZERS}, {STATE}")
    ]


def test_a_good_checkpoint_restores_tensors_and_optimizer(tmp_path):
    saved(tmp_path, range(1, 3))
    loaded, skipped = load_latest(tmp_path)
    assert skipped == [] and loaded.step == 2 and loaded.state == {"algorithm": "magrpo"}
    assert torch.equal(loaded.policies["a.lora_B"], torch.arange(6.0) * 2)
    assert loaded.optimizers["a"]["optimizer"]["state"][0]["step"] == 1


def test_rng_comes_back_as_saved(tmp_path):
    random.seed(7)
    torch.manual_seed(7)
    save_checkpoint(tmp_path, checkpoint(1))
    after_save = (random.random(), torch.rand(3).tolist())
    random.seed(99)
    torch.manual_seed(99)
    load_latest(tmp_path)
    assert (random.random(), torch.rand(3).tolist()) == after_save


def test_when_nothing_verifies_nothing_loads_and_every_one_is_named(tmp_path):
    folder = saved(tmp_path, range(1, 4))
    for path in checkpoints(folder):
        flip(path / POLICIES, 0.5)
    loaded, skipped = load_latest(folder)
    assert loaded is None
    assert [s[0] for s in skipped] == ["step-000003", "step-000002", "step-000001"]


def test_only_the_newest_keep_checkpoints_stay(tmp_path):
    folder = saved(tmp_path, range(1, 6), keep=2)
    assert [p.name for p in checkpoints(folder)] == ["step-000004", "step-000005"]
    assert all(verify(p) is None for p in checkpoints(folder))


# ---------------------------------------------------------------- failed writes


def test_a_failed_write_leaves_no_temporary_folder_and_the_previous_one_intact(
    tmp_path, monkeypatch
):
    folder = saved(tmp_path, range(1, 2))

    def full_disk(tensors, path):
        Path(path).write_bytes(b"\0" * 100)  # the start of the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", full_disk)
    with pytest.raises(OSError) as caught:
        save_checkpoint(folder, checkpoint(2))
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(folder / "step-000002" / POLICIES)
    assert sorted(p.name for p in folder.iterdir()) == ["step-000001"]
    assert verify(folder / "step-000001") is None


def test_serialiser_errors_come_back_as_the_os_error_behind_them(tmp_path, monkeypatch):
    def torch_full_disk(obj, f):  # what torch.save does on a full disk: OSError in context
        f.write(b"PK")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos") from None

    monkeypatch.setattr(ckpt.torch, "save", torch_full_disk)
    with pytest.raises(OSError) as caught:
        save_checkpoint(tmp_path, checkpoint(1))
    assert (caught.value.errno, caught.value.filename) == (
        errno.ENOSPC,
        str(tmp_path / "step-000001" / OPTIMIZERS),
    )
    monkeypatch.undo()

    def safetensors_full_disk(tensors, path):  # safetensors' Rust: errno only in the text
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ckpt, "save_file", safetensors_full_disk)
    with pytest.raises(OSError) as caught:
        save_checkpoint(tmp_path, checkpoint(1))
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_killed_save_leaves_a_hidden_folder_that_is_never_loaded(tmp_path):
    folder = saved(tmp_path, range(1, 2))
    half = folder / ".step-000002-abcd"
    half.mkdir()
    (half / POLICIES).write_bytes(b"\0")
    assert [p.name for p in checkpoints(folder)] == ["step-000001"]
    assert leftovers(folder) == [half]
    assert load_latest(folder)[0].step == 1
