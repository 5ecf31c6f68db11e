"""A phase: one group of episodes played by the same agents (the team, one agent alone,
the team without one agent), how it goes into a run folder, and how far it has got."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from marl.assembly import env_factory, scenario_class
from marl.core.config import RunConfig
from marl.core.runs import RunFolder
from marl.rollouts.interface import EnvMaker, Rollouts
from marl.rollouts.records import Episode, aggregate
from marl.trackers import Trackers, sample_rows
from scenarios.base import TextTeamEnv


@dataclass
class Phase:
    name: str
    agents: list[str]
    episodes: list[Episode]
    seconds: float
    per_task: frozenset[str] = frozenset()  # metrics the summary does not average

    def summary(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "episodes": len(self.episodes),
            "seconds": round(self.seconds, 3),
            **aggregate(self.episodes, self.per_task),
        }


def play(
    config: RunConfig,
    rollouts: Rollouts,
    agent_ids: Sequence[str],
    name: str,
    on_turns: Callable[[int], None] | None = None,
    seeds: Sequence[int] | None = None,
    muted: Collection[str] = (),
) -> Phase:
    """Play ``agent_ids`` on one task per seed (default: ``run.seed + k``, k < ``run.episodes``)."""
    if seeds is None:
        seeds = [config.run.seed + k for k in range(config.run.episodes)]
    start = time.perf_counter()
    episodes = rollouts.episodes(
        env_factory(config, agent_ids), seeds, muted=muted, on_turns=on_turns
    )
    seconds = time.perf_counter() - start
    return Phase(name, list(agent_ids), episodes, seconds, per_task_metrics(config))


def per_task_metrics(config: RunConfig) -> frozenset[str]:
    """The metrics of the config's scenario that name a task or an answer, not a quality."""
    default = TextTeamEnv.per_task_metrics  # a scenario not built on TextTeamEnv
    return getattr(scenario_class(config), "per_task_metrics", default)


def turns_expected(config: RunConfig, agent_count: int) -> int:
    """Upper bound on agent turns for a progress bar: episodes x agents x rounds."""
    make_env = env_factory(config, config.team.ids[:1])
    return config.run.episodes * episode_turns(make_env, agent_count)


def episode_turns(make_env: EnvMaker, agent_count: int) -> int:
    """Upper bound on the agent turns of one episode: agents x rounds."""
    env = make_env()
    env.close()
    return agent_count * env.max_rounds


class EpisodesDone:
    """An ``on_turns`` callback that counts a phase's episodes for a progress display: it
    calls ``report(k)`` whenever k, the episodes' worth of agent turns played so far (of
    ``episodes``, each at most ``turns_per_episode``), changes; ``report(0)`` at once.

    Episodes play in lockstep (every live episode's turns of a round in one batch), so k is
    a share of the work done, not a count of episodes that have ended; ``finish()`` reports
    ``episodes`` once all have, in case some ended before their last round."""

    def __init__(self, episodes: int, turns_per_episode: int, report: Callable[[int], None]):
        self.episodes = episodes
        self.turns_per_episode = max(1, turns_per_episode)
        self.report = report
        self.turns = 0
        self.shown: int | None = None
        self._show(0)

    def __call__(self, turns: int) -> None:
        self.turns += turns
        self._show(min(self.episodes, self.turns // self.turns_per_episode))

    def finish(self) -> None:
        self._show(self.episodes)

    def _show(self, done: int) -> None:
        if done != self.shown:
            self.shown = done
            self.report(done)


SAMPLES_PER_PHASE = 2  # episodes of each phase a tracker shows as text


def record_phase(folder: RunFolder, phase: Phase, trackers: Trackers | None = None) -> None:
    """Append a phase's episodes to the run folder: a transcript frame and a metrics line
    each (and to ``trackers``, through the folder's listeners, with the first episodes'
    turns as text samples)."""
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
    if trackers:
        rows = [
            row
            for e in phase.episodes[:SAMPLES_PER_PHASE]
            for row in sample_rows(e.turns, f"{phase.name} episode {e.index}")
        ]
        trackers.samples(0, rows)
