"""Generation backends: one batched call turns many agents' prompts into completions.

Contract (shared by every backend): ``generate(requests) -> completions`` in request order.
A request carries chat messages, the agent id (and LoRA adapter, when there is one),
sampling settings and a seed; a completion carries the text, the completion token ids and
the log-probability of each sampled token under the model's raw distribution (temperature
1, no truncation), which is what a policy-gradient trainer needs.

Every request draws its tokens from its own ``torch.Generator`` seeded by its own seed, so
a completion does not depend on which other requests shared its batch: an episode replays
the same whether it ran alone, in a batch of 64, or on another Ray worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Sampling(BaseModel):
    """How one agent samples. ``temperature: 0`` is greedy decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.7, ge=0.0, le=5.0, description="0 means greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    top_k: int = Field(
        0, ge=0, le=1_000_000, description="keep the k most likely tokens; 0 keeps all"
    )
    max_new_tokens: int = Field(128, ge=1, le=4096, description="completion length cap")


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    messages: list[dict[str, str]]  # chat turns: {"role": ..., "content": ...}
    agent_id: str
    sampling: Sampling
    seed: int
    adapter: str | None = None  # LoRA adapter name; None uses the base weights


@dataclass(slots=True)
class Completion:
    text: str
    token_ids: list[int]  # completion tokens, the stop token included when one was produced
    logprobs: list[float]  # log p(token) under the raw model distribution, one per token id
    prompt_token_ids: list[int] = field(default_factory=list)
    finish_reason: Literal["stop", "length"] = "length"


class Backend(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]: ...
