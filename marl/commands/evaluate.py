"""`marl eval`: the team against each of its agents alone, on the same tasks and seeds.

The team plays ``run.episodes`` tasks; then every agent plays the single-agent version of
the same tasks alone (phase ``single:<id>``), with the same task and sampling seeds. Each
phase goes through ``marl.commands.phases.play`` and into one run folder like `marl simulate`'s;
``summary.json`` adds the comparison: each agent's score alone, the best and the mean
single score, and the team gain over both; then ``baselines`` at equal compute (vote,
self_consistency, solo_rounds: ``marl.commands.baselines``, whose further answers are the
phase ``self_consistency``) and ``decomposition``, the gain split into voting and talking.

Splits (``--split train|test``) are ``marl.tasks``'s: fixed by seed so train and test
tasks never meet, and a scenario with a fixed data set (coding_v0) also gets its `split`
option; the summary says which applied. The test seeds are the ones `marl train`
evaluates on.

Contribution (``--ablate``): leave-one-out counterfactuals on the same seeds. For each agent
i the team plays again without it (phase ``ablate:<i>``), and ``summary.json`` gains
``contribution[i]``: ``score_without``, ``marginal`` (team score minus it), ``method`` and
``why``. The method is `removed` when the scenario runs without i and every other agent
keeps its role (``agent_roles()`` of the scenario): i and its graph edges are dropped.
Otherwise it is `noop`: i stays in the team, in its role, but every turn it takes is an
empty completion (``Rollouts.episodes(muted=[i])``). A debate judge, a referential
speaker, a coding writer, a relay agent holding numbers are such agents: without them the
task or the others' parts would change, not just the team.

Left out: evaluating trained checkpoints (this evaluates the config's models as they are),
and Shapley values over all coalitions (2^N team runs; leave-one-out needs N).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pettingzoo import ParallelEnv

from marl.assembly import env_factory, resolved_config
from marl.commands.baselines import baselines
from marl.commands.phases import Phase, play, record_phase
from marl.core.config import ConfigError, RunConfig
from marl.core.runs import RunFolder
from marl.rollouts.interface import Rollouts
from marl.tasks import Split, split_config, split_seeds
from marl.trackers import Trackers, tracking
from scenarios.base import TextTeamEnv

AblationMethod = Literal["removed", "noop"]


def gain_summary(team_score: float, singles: Mapping[str, float]) -> dict[str, Any]:
    """The team against its members alone: best single (first in team order on a tie),
    mean single, team minus best single, team minus mean single."""
    best = max(singles, key=singles.__getitem__)  # max keeps the first of equal scores
    mean = sum(singles.values()) / len(singles)
    return {
        "singles": dict(singles),
        "best_single": {"id": best, "score": singles[best]},
        "mean_single": mean,
        "team_gain": team_score - singles[best],
        "team_gain_vs_mean": team_score - mean,
    }


@dataclass(frozen=True)
class Ablation:
    """How the team plays without ``agent``: who plays, and which stand-in, and why."""

    agent: str
    method: AblationMethod
    why: str
    agents: list[str]  # who plays: the others (removed), or the whole team (noop)

    @property
    def muted(self) -> list[str]:
        return [self.agent] if self.method == "noop" else []


def check_ablation(config: RunConfig) -> None:
    """``--ablate`` needs someone left to play: a team of two or more."""
    if len(config.team.agents) < 2:
        raise ConfigError(
            [
                (
                    "team.agents",
                    f"--ablate removes one agent at a time and needs a team of at least 2; "
                    f"this team has {len(config.team.agents)}",
                )
            ]
        )


def scenario_roles(env: ParallelEnv) -> dict[str, str]:
    """The scenario's part for each agent; a scenario that is no ``TextTeamEnv`` (a test toy)
    declares none, so all its agents are alike."""
    if isinstance(env, TextTeamEnv):
        return env.agent_roles()
    return dict.fromkeys(env.possible_agents, "member")


def plan_ablation(config: RunConfig, agent: str) -> Ablation:
    """Remove ``agent`` if the scenario runs without it and the others keep their roles,
    else stand it in by a no-op (see the module docstring)."""
    ids = config.team.ids
    others = [a for a in ids if a != agent]
    full = scenario_roles(env_factory(config, ids)())
    try:
        without = scenario_roles(env_factory(config, others)())
    except ValueError as err:  # the scenario refuses the team (GraphError is a ValueError)
        return Ablation(agent, "noop", f"{config.scenario.name} cannot run without it: {err}", ids)
    moved = [a for a in others if without[a] != full[a]]
    if moved:
        changes = "; ".join(f"{a} would be {without[a]!r}, not {full[a]!r}" for a in moved)
        return Ablation(agent, "noop", f"without it the others' roles change: {changes}", ids)
    return Ablation(
        agent, "removed", "the others keep their roles; its graph edges are dropped", others
    )


def evaluate(
    config: RunConfig,
    rollouts: Rollouts,
    split: Split | None = None,
    on_turns: Callable[[int], None] | None = None,
    ablate: bool = False,
) -> tuple[RunFolder, dict[str, Any]]:
    """Play the team, then each agent alone, on the same seeds (then, with ``ablate``, the
    team without each agent); write and return the run folder."""
    seeds = split_seeds(config, split)
    if ablate:
        check_ablation(config)
    config, split_info = split_config(config, split)
    plans = [plan_ablation(config, a) for a in config.team.ids] if ablate else []
    folder = RunFolder.create(config.run.output_dir, config.name)
    resolved = resolved_config(config)
    folder.write_config(resolved)
    with tracking(config, folder, resolved) as trackers:
        summary = _evaluate(config, rollouts, folder, seeds, split_info, plans, on_turns, trackers)
        trackers.summary(summary)
    folder.write_summary(summary)
    return folder, summary


def _evaluate(
    config: RunConfig,
    rollouts: Rollouts,
    folder: RunFolder,
    seeds: list[int],
    split_info: dict[str, Any] | None,
    plans: list[Ablation],
    on_turns: Callable[[int], None] | None,
    trackers: Trackers,
) -> dict[str, Any]:
    ids = config.team.ids
    phases = []
    for name, agent_ids in [("team", ids)] + [(f"single:{a}", [a]) for a in ids]:
        phase = play(config, rollouts, agent_ids, name, on_turns, seeds=seeds)
        record_phase(folder, phase, trackers)
        phases.append(phase)
    singles = {p.agents[0]: p.episodes for p in phases if p.name.startswith("single:")}
    alone = next(p for p in phases if p.name == f"single:{config.single_agent_id}")
    start = time.perf_counter()
    compared, parts, extra = baselines(
        config, rollouts, seeds, phases[0].episodes, singles, on_turns
    )
    if extra:  # self_consistency's further answers, on disk like every episode
        seconds = time.perf_counter() - start
        phase = Phase("self_consistency", alone.agents, extra, seconds, alone.per_task)
        record_phase(folder, phase, trackers)
        phases.append(phase)
    for plan in plans:
        name = f"ablate:{plan.agent}"
        phase = play(config, rollouts, plan.agents, name, on_turns, seeds=seeds, muted=plan.muted)
        record_phase(folder, phase, trackers)
        phases.append(phase)
    summary = {
        "name": config.name,
        "scenario": config.scenario.name,
        "run_folder": str(folder.path),
        "split": split_info,
        "seeds": seeds,
        "phases": {p.name: p.summary() for p in phases},
    }
    singles = {a: summary["phases"][f"single:{a}"]["score"] for a in ids}
    summary |= gain_summary(summary["phases"]["team"]["score"], singles)
    summary["baselines"] = compared
    summary["decomposition"] = parts
    if plans:
        team = summary["phases"]["team"]["score"]
        summary["contribution"] = {
            plan.agent: {
                "score_without": (without := summary["phases"][f"ablate:{plan.agent}"]["score"]),
                "marginal": team - without,
                "method": plan.method,
                "why": plan.why,
            }
            for plan in plans
        }
    return summary
