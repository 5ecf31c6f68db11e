"""The table of benchmarks/equal_compute.sh: one row per side of each eval run folder.

    .venv/bin/python benchmarks/equal_compute_table.py runs/equal_compute/*/

Per run: the team, each member alone, and each baseline, with score, generated tokens per
task and the team's gain over it with its paired-bootstrap 95% interval (marl eval's
summary.json), then the split of the gain over the mean member into voting and talking.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pts(value: float) -> str:
    return f"{value * 100:+.1f}"


def interval(row: dict) -> str:
    ci = row.get("gain_ci95")
    return f"[{pts(ci[0])}, {pts(ci[1])}]" if ci else "-"


def main(folders: list[str]) -> None:
    print("| run | side | score | tokens/task | team gain (pts) | 95% CI |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    splits = []
    for folder in folders:
        if not (Path(folder) / "summary.json").is_file():
            continue  # a run still going, or stopped before its summary
        summary = json.loads((Path(folder) / "summary.json").read_text())
        name, phases = summary["name"], summary["phases"]
        team = phases["team"]
        print(f"| {name} | team | {team['score']:.1%} | {team['completion_tokens']:.0f} | | |")
        for phase, row in phases.items():
            if phase.startswith("single:"):
                gain = team["score"] - row["score"]
                print(
                    f"| {name} | {phase.removeprefix('single:')} alone | {row['score']:.1%} "
                    f"| {row['completion_tokens']:.0f} | {pts(gain)} | |"
                )
        for baseline, row in summary["baselines"].items():
            if "not_applicable" in row:
                print(f"| {name} | {baseline} | n/a: {row['not_applicable']} | | | |")
                continue
            label = baseline + (f" (k={row['k']})" if "k" in row else "")
            print(
                f"| {name} | {label} | {row['score']:.1%} | {row['tokens_per_episode']:.0f} "
                f"| {pts(row['gain'])} | {interval(row)} |"
            )
        splits.append((name, summary.get("decomposition", {})))
    print()
    print("| run | part | gain (pts) | 95% CI |")
    print("| --- | --- | ---: | ---: |")
    for name, parts in splits:
        for part, row in parts.items():
            print(f"| {name} | {part} | {pts(row['gain'])} | {interval(row)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
