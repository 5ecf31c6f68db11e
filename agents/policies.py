"""Trainable team policies: which weights each agent acts with, and their log-probabilities.

| kind            | weights                                         | generation                |
| --------------- | ----------------------------------------------- | ------------------------- |
| `separate`      | one frozen base, a LoRA adapter per agent       | one batch, mixed adapters |
| `separate_full` | a full copy of the model per agent              | one backend per agent     |
| `shared`        | one frozen base, one LoRA adapter for all roles | one batch                 |

A ``PolicySet`` hands the rollout engine a ``Team`` that acts with the current weights (the
backend holds the very same model objects, so an optimiser step is seen by the next
rollout with no copy), and hands the trainer ``sequence_logprobs``: a fresh forward pass
with gradients over prompt + completion, laid out like the backend's batches (left padded,
positions from the attention mask) so it reproduces the sampled log-probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import torch

from agents.team import LLMAgent, Team
from agents.transformers_backend import TransformersBackend, load_causal_lm

POLICY_KINDS = ("separate", "separate_full", "shared")
SHARED = "shared"


def adapter_name(policy: str) -> str:
    """peft adapter name of a policy (a bare short name like 'a' would clash with 'lora_')."""
    return f"policy_{policy}"


class PolicySet:
    def __init__(
        self,
        agents: Sequence[LLMAgent],
        kind: str,
        lora: dict | None = None,
        seed: int = 0,
        max_batch_size: int = 64,
        reference: bool = False,
    ):
        if kind not in POLICY_KINDS:
            raise ValueError(f"unknown policy kind '{kind}'; known: {', '.join(POLICY_KINDS)}")
        self.kind = kind
        models = {a.model for a in agents}
        if kind != "separate_full" and len(models) != 1:
            raise ValueError(f"'{kind}' policies share one base model; agents use {sorted(models)}")
        torch.manual_seed(seed)  # LoRA A matrices start random: make them reproducible
        self.policy_of = {a.id: (SHARED if kind == "shared" else a.id) for a in agents}
        self.base_models = {a.id: a.model for a in agents}  # agent id -> model name it starts from
        self.models: dict[str, torch.nn.Module] = {}  # policy name -> the module holding it
        self.reference_models: dict[str, torch.nn.Module] = {}
        if kind == "separate_full":
            backends = {}
            acting = []
            for agent in agents:
                model, tokenizer = load_causal_lm(agent.model)
                self.models[agent.id] = model
                backends[agent.id] = TransformersBackend(model, tokenizer, max_batch_size)
                # each agent is its own "model" for the Team, so requests never cross weights
                acting.append(replace(agent, model=agent.id))
                if reference:
                    frozen, _ = load_causal_lm(agent.model)
                    self.reference_models[agent.id] = frozen.requires_grad_(False).eval()
            self.tokenizer = tokenizer
            self.team = Team(acting, backends)
        else:
            from peft import LoraConfig, get_peft_model

            base, self.tokenizer = load_causal_lm(next(iter(models)))
            base.requires_grad_(False)
            config = LoraConfig(task_type="CAUSAL_LM", **(lora or {}))
            names = list(dict.fromkeys(self.policy_of.values()))
            model = get_peft_model(base, config, adapter_name=adapter_name(names[0]))
            for name in names[1:]:
                model.add_adapter(adapter_name(name), config)
            self.models = dict.fromkeys(names, model)
            backend = TransformersBackend(model, self.tokenizer, max_batch_size)
            acting = [replace(a, adapter=adapter_name(self.policy_of[a.id])) for a in agents]
            self.team = Team(acting, {next(iter(models)): backend})

    @property
    def policies(self) -> list[str]:
        return list(self.models)

    def parameters(self, policy: str) -> list[torch.nn.Parameter]:
        """The trainable tensors of one policy (its adapter, or its whole model)."""
        return [p for _, p in self._named_trainable(policy)]

    @contextmanager
    def training(self, policy: str) -> Iterator[torch.nn.Module]:
        """The module to run ``policy`` through, in train mode with its weights active."""
        model = self.models[policy]
        if self.kind != "separate_full":
            model.set_adapter(adapter_name(policy))  # peft: only it runs and takes gradients
        model.train()
        try:
            yield model
        finally:
            model.eval()

    def sequence_logprobs(
        self,
        policy: str,
        prompts: Sequence[Sequence[int]],
        completions: Sequence[Sequence[int]],
        reference: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log p(completion token) under ``policy`` (or its frozen reference), right aligned.

        Returns ``(logprobs, mask)``, both (batch, longest completion); row b's tokens sit in
        its last ``len(completions[b])`` columns. Gradients flow unless ``reference``.
        """
        width = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
        steps = max(len(c) for c in completions)
        ids = torch.full((len(prompts), width), self.tokenizer.eos_token_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        targets = torch.zeros((len(prompts), steps), dtype=torch.long)
        mask = torch.zeros((len(prompts), steps))
        for row, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            sequence = list(prompt) + list(completion)
            ids[row, width - len(sequence) :] = torch.tensor(sequence)
            attention[row, width - len(sequence) :] = 1
            if completion:
                targets[row, steps - len(completion) :] = torch.tensor(list(completion))
                mask[row, steps - len(completion) :] = 1
        positions = (attention.cumsum(-1) - 1).clamp_min(
            0
        )  # as generate() numbers left-padded rows
        if reference:
            with torch.no_grad(), self._reference(policy) as model:
                logits = model(
                    input_ids=ids,
                    attention_mask=attention,
                    position_ids=positions,
                    logits_to_keep=steps + 1,
                ).logits
        else:
            logits = self.models[policy](
                input_ids=ids,
                attention_mask=attention,
                position_ids=positions,
                logits_to_keep=steps + 1,
            ).logits
        logits = logits[:, :-1].float()  # (batch, steps, vocab): position j predicts token j
        logprobs = logits.gather(-1, targets[:, :, None]).squeeze(-1) - logits.logsumexp(-1)
        return logprobs * mask, mask

    @contextmanager
    def _reference(self, policy: str) -> Iterator[torch.nn.Module]:
        if self.kind == "separate_full":
            yield self.reference_models[policy]
            return
        model = self.models[policy]
        with model.disable_adapter():  # the frozen base is the starting policy
            yield model

    def state_dict(self, copy: bool = True) -> dict[str, torch.Tensor]:
        """Every trainable tensor of every policy, keyed ``policy/parameter name``;
        ``copy=False`` gives views of the live weights, for a caller that serialises them
        at once (a push to Ray workers: 1 GB of full weights need not be cloned first)."""
        return {
            f"{policy}/{name}": p.detach().clone() if copy else p.detach()
            for policy in self.policies
            for name, p in self._named_trainable(policy)
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for policy in self.policies:
            for name, p in self._named_trainable(policy):
                key = f"{policy}/{name}"
                if key not in state:
                    raise KeyError(f"checkpoint has no tensor '{key}'")
                with torch.no_grad():
                    p.copy_(state[key])

    def _named_trainable(self, policy: str) -> list[tuple[str, torch.nn.Parameter]]:
        model = self.models[policy]
        if self.kind == "separate_full":
            return list(model.named_parameters())
        marker = f".{adapter_name(policy)}."
        return [(n, p) for n, p in model.named_parameters() if "lora_" in n and marker in n]
