"""Checkpoints: everything needed to continue a training run exactly, written atomically.

```
checkpoints/step-000010/
  policies.safetensors   trainable tensors of every policy (adapters, or full weights)
  optimizers.pt          optimiser and learning-rate schedule states, per policy
  state.json             step, RNG states, and what the next step reads
  MANIFEST.json          sha256 and size of each file above
```

A checkpoint is written into a hidden temporary folder and renamed into place, so a crash
leaves the previous checkpoints untouched and never a half one under a real name. Loading
checks every file against the manifest and falls back to the newest checkpoint that
verifies, saying which ones it skipped. The newest ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

POLICIES = "policies.safetensors"
OPTIMIZERS = "optimizers.pt"
STATE = "state.json"
MANIFEST = "MANIFEST.json"
PREFIX = "step-"


class CheckpointError(RuntimeError):
    """No checkpoint in the run folder could be verified and loaded."""


@dataclass
class Checkpoint:
    step: int  # steps completed
    policies: dict[str, torch.Tensor]
    optimizers: dict[str, Any]
    state: dict[str, Any]


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(folder: Path, checkpoint: Checkpoint, keep: int = 3) -> Path:
    """Write ``folder/step-NNNNNN`` atomically, then drop all but the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{checkpoint.step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=folder))
    try:
        save_file({k: v.contiguous() for k, v in checkpoint.policies.items()}, tmp / POLICIES)
        torch.save({"optimizers": checkpoint.optimizers, "rng": rng_state()}, tmp / OPTIMIZERS)
        (tmp / STATE).write_text(json.dumps({"step": checkpoint.step, **checkpoint.state}))
        manifest = {name: _digest(tmp / name) for name in (POLICIES, OPTIMIZERS, STATE)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        for path in tmp.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoints(folder: Path) -> list[Path]:
    """Completed checkpoints, oldest first (temporary folders are not listed)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def verify(path: Path) -> str | None:
    """None if every file matches the manifest, else what is wrong."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        return f"manifest unreadable ({err})"
    for name, expected in manifest.items():
        try:
            actual = _digest(path / name)
        except OSError as err:
            return f"{name} unreadable ({err.strerror})"
        if actual != expected:
            return f"{name} does not match its checksum"
    return None


def load_latest(folder: Path) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint that verifies (None if there is none) and what was skipped."""
    skipped = []
    for path in reversed(checkpoints(folder)):
        problem = verify(path)
        if problem:
            skipped.append(f"{path.name}: {problem}")
            continue
        state = json.loads((path / STATE).read_text())
        saved = torch.load(path / OPTIMIZERS, weights_only=False)
        restore_rng(saved["rng"])
        return Checkpoint(
            state.pop("step"), load_file(path / POLICIES), saved["optimizers"], state
        ), skipped
    return None, skipped


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"sha256": h.hexdigest(), "bytes": path.stat().st_size}
