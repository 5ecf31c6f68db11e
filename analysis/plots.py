"""Plots from run folders (matplotlib, PNG)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def read_metrics(run: str | Path) -> list[dict]:
    """The metrics lines of a run folder, stopping quietly at a line cut by a crash."""
    lines = []
    for raw in (Path(run) / "metrics.jsonl").read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            break
    return lines


def learning_curves(
    runs: Sequence[tuple[str, str | Path]], out: str | Path, x: str = "tokens"
) -> Path:
    """Held-out team score (markers) and training reward (line) of each run against
    cumulative generated tokens (``x="tokens"``) or steps; one colour per run."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for label, run in runs:
        lines = read_metrics(run)
        used, xs_train, rewards, xs_eval, scores = 0, [], [], [], []
        for line in lines:
            used += line.get("tokens", 0)
            where = used if x == "tokens" else line["step"]
            if "reward_mean" in line:
                xs_train.append(where)
                rewards.append(line["score_mean"])
            if "eval/team" in line:
                xs_eval.append(where)
                scores.append(line["eval/team"])
        (handle,) = bottom.plot(xs_train, rewards, alpha=0.7, label=label)
        top.plot(xs_eval, scores, marker="o", color=handle.get_color(), label=label)
    top.set_ylabel("held-out success")
    top.set_ylim(-0.02, 1.02)
    top.legend()
    top.grid(alpha=0.3)
    bottom.set_ylabel("training success")
    bottom.set_xlabel("generated tokens" if x == "tokens" else "step")
    bottom.set_ylim(-0.02, 1.02)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
