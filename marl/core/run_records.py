"""What a run folder's files hold, as types: the edge where they are read back.

Transcripts, ``metrics.jsonl`` and ``summary.json`` are written by marl, but a folder on
disk can be damaged, edited or made up, so whatever reads one (``analysis``, ``marl
transcripts``, ``marl report``) checks each record against these models first and skips
what does not fit, instead of failing deep inside a plot on a string where a score goes.

Validation is strict (no conversions: a record that fits is used as it is, so the original
dict is kept) except that an int is a float. Unknown keys are allowed: scenarios add their
own metrics, and newer versions may add fields. ``problem(model, data)`` says in one line
why a record does not fit, or gives None.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class MessageRecord(_Record):
    """One bus message (``marl.core.bus.Message.to_dict``)."""

    sender: str
    recipients: list[str]
    round: int
    content: str
    channel: str = "default"
    meta: dict[str, Any] = Field(default_factory=dict)


class TurnRecord(_Record):
    round: int
    agent: str
    text: str
    token_ids: list[int]
    observation: str = ""
    prompt_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    finish_reason: str = ""
    reward: float = 0.0
    info: dict[str, Any] = Field(default_factory=dict)


class EpisodeMetrics(_Record):
    """The scenario's ``infos["episode"]``: ``score`` and ``score_by_round`` at least; the
    bus counts, when present, are numbers."""

    score: float
    score_by_round: list[float]
    consensus: float | None = None
    messages: float | None = None
    deliveries: float | None = None
    message_chars: float | None = None


class EpisodeRecord(_Record):
    """One frame of ``transcripts.msgpack`` (`marl simulate`, `marl eval`)."""

    phase: str
    seed: int
    agents: list[str]
    turns: list[TurnRecord]
    messages: list[MessageRecord]
    metrics: EpisodeMetrics
    index: int | None = None
    scenario: str | None = None
    rewards: list[float] = Field(default_factory=list)
    return_: float | None = Field(None, alias="return")


class RolloutRecord(_Record):
    turns: list[TurnRecord]
    rewards: dict[str, float]
    returns: dict[str, float]
    metrics: dict[str, Any]
    messages: list[MessageRecord]

    @model_validator(mode="after")
    def _ended_metrics(self) -> RolloutRecord:
        if self.metrics:  # a rollout where the episode ended carries its metrics
            EpisodeMetrics.model_validate(self.metrics)
        return self


class GroupRecord(_Record):
    """One frame of ``transcripts/step-NNNNNN.msgpack`` (`marl train`)."""

    step: int
    seed: int
    round: int
    rollouts: list[RolloutRecord] = Field(min_length=1)


class PhaseSummary(_Record):
    agents: list[str] = Field(min_length=1)
    episodes: int
    score: float
    score_by_round: list[float]
    consensus: float | None = None


class BestSingle(_Record):
    id: str
    score: float


class Contribution(_Record):
    score_without: float
    marginal: float
    method: str
    why: str


class SummaryRecord(_Record):
    """``summary.json`` of `marl simulate` (phases `team`, `single`) or `marl eval` (phases
    `team`, `single:<id>`, ..., and the comparison)."""

    phases: dict[str, PhaseSummary]
    team_gain: float
    best_single: BestSingle | None = None
    singles: dict[str, float] | None = None
    contribution: dict[str, Contribution] | None = None

    @model_validator(mode="after")
    def _phases_read(self) -> SummaryRecord:
        needed = ["team"] if self.best_single is not None else ["team", "single"]
        missing = [p for p in needed if p not in self.phases]
        if missing:
            raise ValueError(f"no phase {', '.join(missing)}")
        if self.best_single is not None and self.singles is None:
            raise ValueError("best_single without singles")
        return self


_NUMBER_KEYS = (
    "score",
    "return",
    "completion_tokens",
    "prompt_tokens",
    "reward_mean",
    "reward_std",
    "score_mean",
    "tokens",
    "seconds",
    "rollout_seconds",
    "tokens_per_s",
    "flat_group_fraction",
    "advantage_abs_mean",
)


class MetricsLine(_Record):
    """One line of ``metrics.jsonl``: an episode (with ``phase``) or a training step (with
    ``step``); the values analysis computes with are numbers, and so is every ``eval/...``
    and ``<policy>/<stat>`` value."""

    step: int | None = None
    phase: str | None = None
    episode: int | None = None
    seed: int | None = None

    @model_validator(mode="after")
    def _numbers(self) -> MetricsLine:
        for key, value in (self.model_extra or {}).items():
            numeric = key in _NUMBER_KEYS or (self.step is not None and "/" in key)
            if numeric and not _is_number(value) and value is not None:
                raise ValueError(f"{key} must be a number, got {type(value).__name__}")
        return self


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def problem(model: type[BaseModel], data: Any) -> str | None:
    """Why ``data`` is not a ``model`` record, in one line (its first error), or None."""
    try:
        model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        return f"{where + ': ' if where else ''}{message}{more}"
    return None
