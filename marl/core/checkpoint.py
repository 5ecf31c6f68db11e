"""Checkpoints: everything needed to continue a training run exactly, written atomically.

```
checkpoints/step-000010/
  policies.safetensors   trainable tensors of every policy (adapters, or full weights)
  optimizers.pt          optimiser and learning-rate schedule states, per policy
  state.json             step, RNG states, and what the next step reads
  MANIFEST.json          sha256 and size of each file above
```

A checkpoint is written into a hidden temporary folder and renamed into place, so a crash
leaves the previous checkpoints untouched and never a half one under a real name. A write
that fails (a full disk) removes the temporary folder and raises an ``OSError`` naming the
file, whatever the serialiser reported. Loading checks every file against the manifest
(which must list exactly the three files) and falls back to the newest checkpoint that
verifies and loads, saying which ones it skipped and why. The newest ``keep`` checkpoints
are kept.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Iterator
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
FILES = (POLICIES, OPTIMIZERS, STATE)  # what the manifest lists
PREFIX = "step-"
TEMPORARY = "."  # a checkpoint being written: ``.step-NNNNNN-XXXX``


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
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMPORARY}{final.name}-", dir=folder))
    try:
        with _writing(final / POLICIES):
            tensors = {k: v.contiguous() for k, v in checkpoint.policies.items()}
            save_file(tensors, tmp / POLICIES)
        with _writing(final / OPTIMIZERS), open(tmp / OPTIMIZERS, "wb") as f:
            # a file object, not a path: torch then keeps the OSError as the error's context
            torch.save({"optimizers": checkpoint.optimizers, "rng": rng_state()}, f)
        with _writing(final / STATE):
            (tmp / STATE).write_text(json.dumps({"step": checkpoint.step, **checkpoint.state}))
        with _writing(final / MANIFEST):
            manifest = {name: _digest(tmp / name) for name in FILES}
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


def leftovers(folder: Path) -> list[Path]:
    """Temporary folders of checkpoints whose writer died (SIGKILL, power loss)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith(TEMPORARY + PREFIX))


def verify(path: Path) -> str | None:
    """None if every file matches the manifest, else what is wrong."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        return f"{MANIFEST} unreadable ({err})"
    if not isinstance(manifest, dict) or sorted(manifest) != sorted(FILES):
        return f"{MANIFEST} does not list {', '.join(FILES)}"
    for name, expected in manifest.items():
        try:
            actual = _digest(path / name)
        except OSError as err:
            return f"{name} unreadable ({err.strerror})"
        if actual != expected:
            return f"{name} does not match its checksum"
    return None


def load_latest(folder: Path) -> tuple[Checkpoint | None, list[tuple[str, str]]]:
    """The newest checkpoint that verifies (None if there is none) and the newer ones it
    skipped: (folder name, why)."""
    skipped = []
    for path in reversed(checkpoints(folder)):
        problem = verify(path)
        if problem:
            skipped.append((path.name, problem))
            continue
        try:  # verified, so only a bug in the writer can fail here; fall back all the same
            state = json.loads((path / STATE).read_text())
            saved = torch.load(path / OPTIMIZERS, weights_only=False)
            checkpoint = Checkpoint(
                state.pop("step"), load_file(path / POLICIES), saved["optimizers"], state
            )
        except Exception as err:
            skipped.append((path.name, f"does not load ({type(err).__name__}: {err})"))
            continue
        restore_rng(saved["rng"])
        return checkpoint, skipped
    return None, skipped


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Serialisers report a failed write as their own error (safetensors: SafetensorError,
    torch: RuntimeError); raise it as the OSError it was, naming the file."""
    try:
        yield
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from err
    except Exception as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, OSError):
            raise OSError(cause.errno, cause.strerror, str(path)) from err
        found = re.search(r"\(os error (\d+)\)", str(err))  # safetensors' Rust io::Error
        code = int(found.group(1)) if found else errno.EIO
        raise OSError(code, os.strerror(code) if found else str(err), str(path)) from err


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"sha256": h.hexdigest(), "bytes": path.stat().st_size}
