"""LLM agents and the team policy the rollout engine talks to.

A ``Policy`` maps a batch of ``ActRequest`` (agent id, observation text, seed) to one
``Completion`` each. ``Team`` is the LLM policy: every agent turns its observation into
chat messages (its system prompt, then the observation as the user turn), and all requests
for the same backend (base model) go to it in one call, whatever agent or episode
they came from. ``ScriptedPolicy`` answers with a plain function, for tests and baselines;
``MutedAgents`` stands some agents in for no-ops (an empty completion) around another policy.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from agents.backend import Backend, Completion, GenerationRequest, Sampling


@dataclass(frozen=True, slots=True)
class ActRequest:
    agent_id: str
    observation: str
    seed: int


class Policy(Protocol):
    def act(self, requests: Sequence[ActRequest]) -> list[Completion]: ...


@dataclass(frozen=True, slots=True)
class LLMAgent:
    id: str
    role: str
    system_prompt: str
    model: str
    sampling: Sampling
    adapter: str | None = None  # the LoRA adapter this agent acts with; None: base weights
    backend: str | None = None  # the Team backend it generates on; None: the one of its model

    @property
    def generates_on(self) -> str:
        """The key of the ``Team`` backend this agent's requests go to."""
        return self.model if self.backend is None else self.backend

    def messages(self, observation: str) -> list[dict[str, str]]:
        """Chat turns for one observation; ``{id}`` and ``{role}`` fill the system prompt."""
        system = self.system_prompt.replace("{id}", self.id).replace("{role}", self.role)
        return [{"role": "system", "content": system}, {"role": "user", "content": observation}]

    def request(self, observation: str, seed: int) -> GenerationRequest:
        return GenerationRequest(
            self.messages(observation), self.id, self.sampling, seed, self.adapter
        )


class Team:
    """The LLM team: its agents and their backends, keyed by ``LLMAgent.generates_on`` (one
    per base model, or one per agent when each trains full weights of its own)."""

    def __init__(self, agents: Sequence[LLMAgent], backends: Mapping[str, Backend]):
        self.agents = {a.id: a for a in agents}
        missing = {a.generates_on for a in agents} - set(backends)
        if missing:
            raise ValueError(f"no backend for {sorted(missing)}")
        self.backends = dict(backends)

    def act(self, requests: Sequence[ActRequest]) -> list[Completion]:
        by_backend: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            by_backend.setdefault(self.agents[r.agent_id].generates_on, []).append(i)
        out: list[Completion | None] = [None] * len(requests)
        for key, indices in by_backend.items():
            batch = [
                self.agents[requests[i].agent_id].request(requests[i].observation, requests[i].seed)
                for i in indices
            ]
            for i, completion in zip(indices, self.backends[key].generate(batch), strict=True):
                out[i] = completion
        return out  # type: ignore[return-value]


class ScriptedPolicy:
    """A policy from a function ``(agent_id, observation) -> text``; no tokens, no logprobs."""

    def __init__(self, answer: Callable[[str, str], str]):
        self.answer = answer

    def act(self, requests: Sequence[ActRequest]) -> list[Completion]:
        return [
            Completion(self.answer(r.agent_id, r.observation), [], [], [], "stop") for r in requests
        ]


class MutedAgents:
    """``policy``, except that the ``muted`` agents answer with an empty completion.

    The no-op stand-in of `marl eval --ablate` for an agent the scenario cannot run
    without: it still takes its turns (and its role), but says nothing.
    """

    def __init__(self, policy: Policy, muted: Collection[str]):
        self.policy = policy
        self.muted = frozenset(muted)

    def act(self, requests: Sequence[ActRequest]) -> list[Completion]:
        speaking = [r for r in requests if r.agent_id not in self.muted]
        answers = iter(self.policy.act(speaking) if speaking else [])
        return [
            Completion("", [], [], [], "stop") if r.agent_id in self.muted else next(answers)
            for r in requests
        ]
