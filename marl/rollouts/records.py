"""What a rollout leaves behind: turns, episodes, the groups a trainer learns from.

``Episode`` is one task played to its end (a transcript frame of `marl simulate` and
`marl eval`); ``Group`` is G sibling ``JointRollout``s from the same history (the unit of
MAGRPO's group-relative baseline, a transcript frame of `marl train`). Both turn into
msgpack-friendly dicts and back (``to_record`` / ``from_record``, ``group_record`` /
``group_from_record``): that is how they cross from a Ray worker to the trainer and onto
disk. ``aggregate`` is the mean of episodes that every score in a summary comes from.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Turn:
    """One agent's action in one round of one episode."""

    round: int
    agent: str
    observation: str
    text: str
    prompt_ids: list[int]
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    reward: float
    info: dict[str, Any]


@dataclass(slots=True)
class Episode:
    index: int
    seed: int  # the task seed: episodes of one training group share it
    sample: int  # which rollout of that task (sampling seeds differ per sample)
    scenario: str
    agents: list[str]
    turns: list[Turn] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)  # team reward per round
    messages: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # the scenario's infos["episode"]
    policy_version: int | None = None  # the training step whose weights played it (Ray)

    @property
    def team_return(self) -> float:
        return float(sum(self.rewards))

    @property
    def completion_tokens(self) -> int:
        return sum(len(t.token_ids) for t in self.turns)

    @property
    def prompt_tokens(self) -> int:
        return sum(len(t.prompt_ids) for t in self.turns)

    def to_record(self) -> dict[str, Any]:
        """A msgpack-friendly dict (one transcript frame)."""
        record = asdict(self)
        record["return"] = self.team_return
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Episode:
        """The episode of a ``to_record`` dict (from a Ray worker); ``ValueError`` if not one."""
        try:
            data = {k: v for k, v in record.items() if k != "return"}
            data["turns"] = [Turn(**t) for t in data.get("turns", [])]
            return cls(**data)
        except (TypeError, AttributeError) as err:
            raise ValueError(f"not an episode record: {err}") from None


# Facts about how episodes were scored rather than how well (coding_v0's sandbox
# ``isolation``: "bwrap" or "rlimits-only"); a summary keeps the values seen, not a mean.
RUN_FACTS = ("isolation",)


def aggregate(episodes: Sequence[Episode], per_task: Collection[str] = ()) -> dict[str, Any]:
    """Means over episodes: score, score by round, the scenario's numeric metrics but those
    ``per_task`` (a target, an answer: no mean of them means anything), cost; and the
    ``RUN_FACTS`` seen (one value, or the sorted list when they differ)."""
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
        if key in RUN_FACTS:
            seen = sorted({str(v) for v in values})
            out[key] = seen[0] if len(seen) == 1 else seen
        elif key in per_task or key in out:
            continue
        elif all(isinstance(v, int | float) for v in values):
            out[key] = sum(float(v) for v in values) / n
    return out


# ------------------------------------------------------------------ training groups


@dataclass(slots=True)
class JointRollout:
    """One joint action of a group: each agent's turn, its reward and its return."""

    turns: list[Turn]
    rewards: dict[str, float]  # per agent: the team reward, or its own (igrpo)
    returns: dict[str, float] = field(default_factory=dict)
    child: Group | None = None  # tree mode: the group that branches from here
    metrics: dict[str, Any] = field(default_factory=dict)  # the episode's, when it ended here
    messages: list[dict[str, Any]] = field(default_factory=list)  # the bus log, when it ended here


@dataclass(slots=True)
class Group:
    """G sibling joint rollouts from the same history: the unit of a group-relative baseline."""

    seed: int
    round: int
    rollouts: list[JointRollout]
    policy_version: int | None = None  # the training step whose weights played it

    @property
    def agents(self) -> list[str]:
        return list(self.rollouts[0].rewards)


def group_record(group: Group) -> dict[str, Any]:
    """A msgpack-friendly dict of a group (a transcript frame, or a Ray worker's reply);
    tree links (``child``) are left out: returns already hold what they carried."""
    return {
        "seed": group.seed,
        "round": group.round,
        "policy_version": group.policy_version,
        "rollouts": [
            {
                "turns": [asdict(t) for t in r.turns],
                "rewards": r.rewards,
                "returns": r.returns,
                "metrics": r.metrics,
                "messages": r.messages,
            }
            for r in group.rollouts
        ],
    }


def group_from_record(record: dict[str, Any]) -> Group:
    """The group of a ``group_record`` dict; ``ValueError`` naming the problem if not one."""
    try:
        rollouts = [
            JointRollout(
                [Turn(**t) for t in r["turns"]],
                dict(r["rewards"]),
                dict(r["returns"]),
                metrics=dict(r["metrics"]),
                messages=list(r["messages"]),
            )
            for r in record["rollouts"]
        ]
        group = Group(int(record["seed"]), int(record["round"]), rollouts)
        group.policy_version = record["policy_version"]
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"not a group record: {type(err).__name__} {err}") from None
    if not rollouts:
        raise ValueError("not a group record: no rollouts")
    return group
