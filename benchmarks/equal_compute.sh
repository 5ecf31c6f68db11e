#!/usr/bin/env bash
# The team against equal-compute baselines on 50 held-out tasks of the embedded model
# (SmolLM2-135M-Instruct): debate_v0 (task easy and du) and wordmath_v0, each with the
# team, each member alone, vote, self_consistency and solo_rounds, and every gain with its
# paired-bootstrap 95% interval. Every agent generates at most 96 tokens a turn (the demo's
# setting). One run folder each under runs/equal_compute/ (summary.json holds the numbers);
# the eval tables print as each finishes. Usage: equal_compute.sh [easy|du|wordmath]...
set -euo pipefail
cd "$(dirname "$0")/.."
MARL=${MARL:-.venv/bin/marl}
TASKS=${TASKS:-50}
COMMON=(--split test --episodes "$TASKS" --no-progress --set run.output_dir=runs/equal_compute)
for k in 0 1 2; do COMMON+=(--set "team.agents.$k.sampling.max_new_tokens=96"); done
[ $# -gt 0 ] || set -- easy du wordmath
for what in "$@"; do
  case $what in
    easy) $MARL eval configs/debate.yaml "${COMMON[@]}" --set name=debate_easy ;;
    du) $MARL eval configs/debate.yaml "${COMMON[@]}" --set name=debate_du \
          --set scenario.options.task=du ;;
    wordmath) $MARL eval configs/wordmath.yaml "${COMMON[@]}" --set name=wordmath ;;
    *) echo "unknown: $what (easy, du or wordmath)" >&2; exit 2 ;;
  esac
done
${PYTHON:-.venv/bin/python} benchmarks/equal_compute_table.py runs/equal_compute/*/
