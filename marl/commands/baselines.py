"""Baselines a team must beat for "it collaborates" to mean something, on the same tasks.

| baseline           | what plays                                             | extra generation   |
| ------------------ | ------------------------------------------------------ | ------------------ |
| `vote`             | the team's round-1 answers (before any message was     | none               |
|                    | read), majority-voted: the ensemble without talking    |                    |
| `self_consistency` | the single agent (`run.single_agent`) answers each     | k - 1 answers per  |
|                    | task k times independently, the majority counts (ties: | task (the first is |
|                    | the earliest of the tied); k brings its tokens per     | its alone phase's  |
|                    | task closest to the team's, measured on the same tasks | round-1 answer)    |
| `solo_rounds`      | the single agent alone for as many rounds, each round  | none: its alone    |
|                    | seeing only its own earlier answers (self-refinement)  | phase              |

A scenario says which apply (``TextTeamEnv.baselines_not_applicable``: baseline -> why
not) and how answers are voted (``TextTeamEnv.vote_score(answers, metrics)``; an agent's
answer is ``info["answer"]`` of its turn). What does not apply is reported as not
applicable, with the reason, never as a score.

Every gain is the team's score minus the baseline's, per task, with a paired bootstrap
95% interval over tasks (``marl.core.stats.paired_gain``: no interval from fewer than 10
tasks). Sampling uses the per-request seeds: answer j of task s is sample j of s, so a
rerun gives the same numbers, and answer 0 is the one the single agent gave alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from marl.assembly import env_factory, scenario_class, scenario_options
from marl.core.config import RunConfig
from marl.core.stats import paired_gain
from marl.rollouts.interface import Rollouts
from marl.rollouts.records import Episode
from scenarios.base import TextTeamEnv

BASELINES = ("vote", "self_consistency", "solo_rounds")
MAX_K = 64  # answers per task for self_consistency


def not_applicable(config: RunConfig) -> dict[str, str]:
    """Baseline -> why it does not apply to this config's scenario (and team)."""
    env = scenario_class(config)
    default = TextTeamEnv.baselines_not_applicable  # a scenario not built on TextTeamEnv
    out = dict(getattr(env, "baselines_not_applicable", default))
    if len(config.team.agents) < 2:
        out |= dict.fromkeys(BASELINES, "a team of one is its own baseline")
    if (
        "self_consistency" not in out
        and "rounds" not in type(scenario_options(config)).model_fields
    ):
        out["self_consistency"] = f"{config.scenario.name} has no rounds option to answer once"
    return out


def by_seed(episodes: Sequence[Episode], score: Callable[[Episode], float]) -> dict[int, float]:
    """Mean of ``score`` per task seed."""
    values: dict[int, list[float]] = {}
    for episode in episodes:
        values.setdefault(episode.seed, []).append(score(episode))
    return {seed: sum(v) / len(v) for seed, v in values.items()}


def episode_score(episode: Episode) -> float:
    return float(episode.metrics["score"])


def round_one(episode: Episode) -> list[Any]:
    """The answers of the round-1 turns, in turn order."""
    return [t.info.get("answer") for t in episode.turns if t.round == 0]


def round_one_tokens(episode: Episode) -> int:
    return sum(len(t.token_ids) for t in episode.turns if t.round == 0)


def entry(team: dict[int, float], scores: dict[int, float], tokens: float, **extra) -> dict:
    mean = sum(scores.values()) / len(scores)
    return {
        "score": mean,
        "tokens_per_episode": tokens,
        **extra,
        **paired_gain(team, scores).as_dict(),
    }


def decomposition(
    team: Sequence[Episode],
    singles: Mapping[str, Sequence[Episode]],
    voted: Mapping[int, float] | None,
    compared: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The team's gain over its mean member in parts, each a paired gain over tasks:
    ``voting`` = vote - mean member (what the ensemble adds without a word), ``talking`` =
    team - vote (what reading each other added), ``equal_compute`` = team -
    self_consistency. ``voted``: the vote's score per task, None where it does not apply;
    a part whose baseline does not apply is left out."""
    members = [by_seed(episodes, episode_score) for episodes in singles.values()]
    mean_member = {s: sum(m[s] for m in members) / len(members) for s in members[0]}
    out: dict[str, dict[str, Any]] = {
        "team_vs_mean_member": paired_gain(by_seed(team, episode_score), mean_member).as_dict()
    }
    keep = ("gain", "gain_ci95", "tasks")
    if voted is not None:
        out["voting"] = paired_gain(voted, mean_member).as_dict()
        out["talking"] = {k: compared["vote"][k] for k in keep}
    if "gain" in compared["self_consistency"]:
        out["equal_compute"] = {k: compared["self_consistency"][k] for k in keep}
    return out


def baselines(
    config: RunConfig,
    rollouts: Rollouts,
    seeds: Sequence[int],
    team: Sequence[Episode],
    singles: Mapping[str, Sequence[Episode]],
    on_turns: Callable[[int], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[Episode]]:
    """The three baselines against ``team`` (its episodes on ``seeds``), with ``singles``
    (each member's episodes alone on the same seeds; ``run.single_agent``'s is the alone
    side); returns the summary entries, the decomposition of the team's gain and the extra
    episodes played (self_consistency's answers 1..k-1), to be recorded."""
    alone = singles[config.single_agent_id]
    skip = not_applicable(config)
    env = scenario_class(config)
    team_scores = by_seed(team, episode_score)
    team_tokens = sum(e.completion_tokens for e in team) / len(team)
    out: dict[str, dict[str, Any]] = {}
    extra: list[Episode] = []
    voted = None
    if "vote" in skip:
        out["vote"] = {"not_applicable": skip["vote"]}
    else:
        voted = by_seed(team, lambda e: env.vote_score(round_one(e), e.metrics))
        tokens = sum(round_one_tokens(e) for e in team) / len(team)
        out["vote"] = entry(team_scores, voted, tokens)
    if "self_consistency" in skip:
        out["self_consistency"] = {"not_applicable": skip["self_consistency"]}
    else:
        per_answer = sum(round_one_tokens(e) for e in alone) / len(alone)
        k = max(1, min(MAX_K, round(team_tokens / max(per_answer, 1e-9))))
        once = config.model_copy(deep=True)
        once.scenario.options = {**once.scenario.options, "rounds": 1}
        if k > 1:
            extra = rollouts.episodes(
                env_factory(once, [config.single_agent_id]),
                [s for s in seeds for _ in range(1, k)],
                samples=[j for _ in seeds for j in range(1, k)],
                on_turns=on_turns,
            )
        answers = {e.seed: [(round_one(e), e)] for e in alone}
        for episode in extra:
            answers[episode.seed].append((round_one(episode), episode))
        scores = {
            seed: env.vote_score([a for got, _ in drawn for a in got], drawn[0][1].metrics)
            for seed, drawn in answers.items()
        }
        tokens = sum(round_one_tokens(e) for drawn in answers.values() for _, e in drawn) / len(
            answers
        )
        out["self_consistency"] = entry(
            team_scores, scores, tokens, k=k, team_tokens_per_episode=team_tokens
        )
    if "solo_rounds" in skip:
        out["solo_rounds"] = {"not_applicable": skip["solo_rounds"]}
    else:
        solo = by_seed(alone, episode_score)
        out["solo_rounds"] = entry(
            team_scores, solo, sum(e.completion_tokens for e in alone) / len(alone)
        )
    return out, decomposition(team, singles, voted, out), extra
