"""`marl simulate`: play a team on a scenario, and its single-agent baseline on the same tasks.

The team plays ``run.episodes`` tasks (seeds ``run.seed + k``); then one agent alone
(``run.single_agent``, default the first) plays the single-agent version of the same tasks
with the same sampling seeds. Both go into one run folder: one metrics line and one
transcript frame per episode, and ``summary.json`` with both phases aggregated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pettingzoo import ParallelEnv

from agents.team import LLMAgent, Policy, Team
from marl.config import RunConfig
from marl.core.graph import build_graph_from_config, subgraph_for
from marl.core.runs import RunFolder
from marl.rollout import Episode, run_episodes


def build_team(config: RunConfig) -> Team:
    """The LLM team of a config: one backend (``resources.backend``) per distinct base model."""
    agents = [
        LLMAgent(a.id, a.role, a.system_prompt, a.model, a.sampling) for a in config.team.agents
    ]
    models = dict.fromkeys(a.model for a in agents)
    if config.resources.backend == "vllm":
        from agents.vllm_backend import VLLMBackend

        backends = {
            model: VLLMBackend(model, max_batch_size=config.run.batch_size, seed=config.run.seed)
            for model in models
        }
    else:
        from agents.transformers_backend import TransformersBackend

        backends = {
            model: TransformersBackend.load(model, max_batch_size=config.run.batch_size)
            for model in models
        }
    return Team(agents, backends)


def env_factory(config: RunConfig, agent_ids: Sequence[str]) -> Callable[[], ParallelEnv]:
    """A constructor of the config's scenario for ``agent_ids`` (a subset plays alone)."""
    from scenarios import make_env

    graph = subgraph_for(build_graph_from_config(config.team.ids, config.graph), agent_ids)
    options = config.scenario_options()
    return lambda: make_env(config.scenario.name, list(agent_ids), graph, options)


@dataclass
class Phase:
    """One group of episodes played by the same agents (the team, or one agent alone)."""

    name: str
    agents: list[str]
    episodes: list[Episode]
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "episodes": len(self.episodes),
            "seconds": round(self.seconds, 3),
            **aggregate(self.episodes),
        }


def aggregate(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Means over episodes: score, score by round, the scenario's numeric metrics, cost."""
    n = len(episodes)
    out: dict[str, Any] = {
        "score": sum(e.metrics["score"] for e in episodes) / n,
        "return": sum(e.team_return for e in episodes) / n,
        "completion_tokens": sum(e.completion_tokens for e in episodes) / n,
        "prompt_tokens": sum(e.prompt_tokens for e in episodes) / n,
    }
    by_round = [e.metrics["score_by_round"] for e in episodes]
    rounds = max(len(r) for r in by_round)
    out["score_by_round"] = [
        sum(float(r[k]) for r in by_round if k < len(r)) / sum(1 for r in by_round if k < len(r))
        for k in range(rounds)
    ]
    for key in episodes[0].metrics:
        values = [e.metrics.get(key) for e in episodes]
        if key not in out and all(isinstance(v, int | float) for v in values):
            out[key] = sum(float(v) for v in values) / n
    return out


def play(
    config: RunConfig,
    policy: Policy,
    agent_ids: Sequence[str],
    name: str,
    on_turns: Callable[[int], None] | None = None,
    seeds: Sequence[int] | None = None,
) -> Phase:
    """Play ``agent_ids`` on one task per seed (default: ``run.seed + k``, k < ``run.episodes``)."""
    if seeds is None:
        seeds = [config.run.seed + k for k in range(config.run.episodes)]
    start = time.perf_counter()
    episodes = run_episodes(
        env_factory(config, agent_ids),
        policy,
        seeds,
        batch_size=config.run.batch_size,
        on_turns=on_turns,
    )
    return Phase(name, list(agent_ids), episodes, time.perf_counter() - start)


def turns_expected(config: RunConfig, agent_count: int) -> int:
    """Upper bound on agent turns for a progress bar: episodes x agents x rounds."""
    env = env_factory(config, config.team.ids[:1])()
    return config.run.episodes * agent_count * env.max_rounds


def record_phase(folder: RunFolder, phase: Phase) -> None:
    """Append a phase's episodes to the run folder: a transcript frame and a metrics line each."""
    with folder.transcripts() as transcripts:
        for episode in phase.episodes:
            transcripts.write({**episode.to_record(), "phase": phase.name})
            folder.log_metrics(
                {
                    "phase": phase.name,
                    "episode": episode.index,
                    "seed": episode.seed,
                    "return": episode.team_return,
                    "completion_tokens": episode.completion_tokens,
                    "prompt_tokens": episode.prompt_tokens,
                    **episode.metrics,
                }
            )


def simulate(
    config: RunConfig,
    policy: Policy,
    on_turns: Callable[[int], None] | None = None,
) -> tuple[RunFolder, dict[str, Any]]:
    """Play the team and the single-agent baseline; write and return the run folder."""
    folder = RunFolder.create(config.run.output_dir, config.name)
    folder.write_config(config.resolved())
    phases = []
    for name, agent_ids in (("team", config.team.ids), ("single", [config.single_agent_id])):
        phase = play(config, policy, agent_ids, name, on_turns)
        record_phase(folder, phase)
        phases.append(phase)
    summary = {
        "name": config.name,
        "scenario": config.scenario.name,
        "run_folder": str(folder.path),
        "phases": {p.name: p.summary() for p in phases},
    }
    team, single = summary["phases"]["team"], summary["phases"]["single"]
    summary["team_gain"] = team["score"] - single["score"]
    folder.write_summary(summary)
    return folder, summary
