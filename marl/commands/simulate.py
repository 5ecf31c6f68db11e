"""`marl simulate`: play a team on a scenario, and its single-agent baseline on the same tasks.

The team plays ``run.episodes`` tasks (seeds ``run.seed + k``); then one agent alone
(``run.single_agent``, default the first) plays the single-agent version of the same tasks
with the same sampling seeds. Both go into one run folder: one metrics line and one
transcript frame per episode, and ``summary.json`` with both phases aggregated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marl.assembly import resolved_config
from marl.commands.phases import Phase, play, record_phase
from marl.core.config import RunConfig
from marl.core.runs import RunFolder
from marl.rollouts.interface import Rollouts
from marl.trackers import tracking


def simulate(
    config: RunConfig,
    rollouts: Rollouts,
    on_turns: Callable[[int], None] | None = None,
) -> tuple[RunFolder, dict[str, Any]]:
    """Play the team and the single-agent baseline; write and return the run folder."""
    folder = RunFolder.create(config.run.output_dir, config.name)
    resolved = resolved_config(config)
    folder.write_config(resolved)
    with tracking(config, folder, resolved) as trackers:
        phases = []
        for name, agent_ids in (("team", config.team.ids), ("single", [config.single_agent_id])):
            phase = play(config, rollouts, agent_ids, name, on_turns)
            record_phase(folder, phase, trackers)
            phases.append(phase)
        summary = _summary(config, folder, phases)
        trackers.summary(summary)
    folder.write_summary(summary)
    return folder, summary


def _summary(config: RunConfig, folder: RunFolder, phases: list[Phase]) -> dict[str, Any]:
    summary = {
        "name": config.name,
        "scenario": config.scenario.name,
        "run_folder": str(folder.path),
        "phases": {p.name: p.summary() for p in phases},
    }
    team, single = summary["phases"]["team"], summary["phases"]["single"]
    summary["team_gain"] = team["score"] - single["score"]
    return summary
