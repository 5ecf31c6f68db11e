"""Trainable team policies: which weights each agent acts with, and their log-probabilities.

| `train.policy`  | class                  | weights                               | generation  |
| --------------- | ---------------------- | ------------------------------------- | ----------- |
| `separate`      | ``LoraPolicies``       | a frozen base, an adapter per agent   | mixed batch |
| `shared`        | ``LoraPolicies``       | a frozen base, one adapter, all roles | one batch   |
| `separate_full` | ``FullWeightPolicies`` | a full copy of the model per agent    | own backend |

Both are ``Policies``. They hand the rollout engine a ``Team`` that acts with the current
weights (its backends hold the very same model objects, so an optimiser step is seen by
the next rollout with no copy), and the trainer ``sequence_logprobs``: a fresh forward pass
with gradients over prompt + completion, laid out like the backend's batches (left padded,
positions from the attention mask) so it reproduces the sampled log-probabilities; the
samples of one prompt run that prompt once and share it. ``make_policies`` builds the kind
a config names.

Training in bfloat16 (``training(policy, "bf16")``) runs the passes through a bfloat16 twin
of the model: the policy's fp32 weights are copied into it before the passes, and each of
its gradients is added, in fp32, to the fp32 weight's ``.grad`` as soon as backward makes
it. The optimiser, its states and generation keep the fp32 weights (the "master weights"
of mixed-precision training); the twin costs half a model's memory.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import Any, Protocol

import torch

from agents.models import ModelLoadError
from agents.team import LLMAgent, Team
from agents.transformers_backend import TransformersBackend, load_causal_lm

POLICY_KINDS = ("separate", "separate_full", "shared")
PRECISIONS = ("fp32", "bf16")


def precision_warning(precision: str) -> str | None:
    """Why ``precision`` would be slow on this machine's CPU (policies train there), or
    None. A CPU without bfloat16 instructions (AVX512-BF16 or AMX) emulates them: measured
    on an AVX2-only CPU, a SmolLM2-135M forward and backward pass took 13x as long in bf16
    as in fp32."""
    if precision != "bf16":
        return None
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        return None
    return (
        f"precision bf16 on a CPU without bfloat16 instructions (AVX512-BF16 or AMX; this "
        f"one has {torch.backends.cpu.get_cpu_capability()}): torch emulates them and the "
        f"update runs about 10x slower than in fp32; set train.precision: fp32"
    )


SHARED = "shared"


def adapter_name(policy: str) -> str:
    """peft adapter name of a policy (a bare short name like 'a' would clash with 'lora_')."""
    return f"policy_{policy}"


class WeightSink(Protocol):
    """A generation engine that holds its own copy of the weights (``VLLMBackend``)."""

    def sync_adapter(self, name: str, source: Any) -> None: ...

    def sync_full_weights(self, state_dict: dict[str, torch.Tensor]) -> None: ...


class Policies(ABC):
    """The trainable policies of a team, whatever holds their weights.

    ``policy_of`` maps each agent to its policy's name; ``models`` maps a policy to the
    module that holds it (LoRA policies share one); ``team`` acts with the current weights.
    Subclasses say which tensors are a policy's, how its module is made to run it, what its
    frozen reference is, and how its weights reach an engine with its own copy.
    """

    policy_of: dict[str, str]
    models: dict[str, torch.nn.Module]
    team: Team
    tokenizer: Any
    lora_rank: int | None  # rank of the adapters; None: full weights

    def __init__(self) -> None:
        self._twins: dict[int, torch.nn.Module] = {}  # id(fp32 module) -> its bfloat16 twin
        self._running: dict[str, torch.nn.Module] = {}  # policy -> module inside training()

    @property
    def policies(self) -> list[str]:
        return list(self.models)

    # ------------------------------------------------------------ what differs by kind

    @abstractmethod
    def _named_trainable(self, policy: str) -> list[tuple[str, torch.nn.Parameter]]:
        """The tensors the optimiser of ``policy`` steps, with their names in its module."""

    @abstractmethod
    def _select(self, model: torch.nn.Module, policy: str) -> None:
        """Make ``model`` (the policy's module, or its twin) run and train ``policy`` only."""

    @abstractmethod
    def _reference(self, policy: str) -> AbstractContextManager[torch.nn.Module]:
        """The frozen starting policy, for the KL term."""

    @abstractmethod
    def _is_trainable(self, name: str) -> bool:
        """Whether a parameter of the module (by name) belongs to some policy."""

    @abstractmethod
    def sync_to(self, engines: Mapping[str, WeightSink]) -> None:
        """Copy every policy's current weights into the engines that generate for it,
        keyed like ``team.backends`` (an agent's ``generates_on``)."""

    # ------------------------------------------------------------ shared machinery

    def parameters(self, policy: str) -> list[torch.nn.Parameter]:
        """The trainable tensors of one policy (its adapter, or its whole model)."""
        return [p for _, p in self._named_trainable(policy)]

    @contextmanager
    def training(self, policy: str, precision: str = "fp32") -> Iterator[torch.nn.Module]:
        """The module to run ``policy`` through, in train mode with its weights active;
        ``sequence_logprobs`` of ``policy`` runs through it until the block ends.

        ``precision="bf16"``: a bfloat16 twin holding the policy's current weights, whose
        gradients land, in fp32, on the fp32 weights (see the module docstring).
        """
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{precision}'; known: {', '.join(PRECISIONS)}")
        model = self.models[policy]
        if precision == "bf16":
            model = self._twin(model)
            twin_params = dict(model.named_parameters())
            with torch.no_grad():
                for name, p in self._named_trainable(policy):
                    twin_params[name].copy_(p)  # this step's weights, rounded to bfloat16
        self._select(model, policy)
        model.train()
        self._running[policy] = model
        try:
            yield model
        finally:
            del self._running[policy]
            model.eval()

    def _twin(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model``'s bfloat16 copy, made once; each trainable tensor's gradient is moved
        onto the fp32 original's ``.grad`` (added in fp32) right after backward makes it."""
        if id(model) in self._twins:
            return self._twins[id(model)]
        twin = copy.deepcopy(model).to(torch.bfloat16)
        originals = dict(model.named_parameters())

        def hand_over(original: torch.nn.Parameter):
            def hook(copy_: torch.Tensor) -> None:
                grad = copy_.grad.float()
                original.grad = grad if original.grad is None else original.grad.add_(grad)
                copy_.grad = None

            return hook

        for name, p in twin.named_parameters():
            if self._is_trainable(name):
                trainable = p.requires_grad  # peft freezes the adapters that are not active
                p.requires_grad_(True).register_post_accumulate_grad_hook(
                    hand_over(originals[name])
                )
                p.requires_grad_(trainable)
        self._twins[id(model)] = twin
        return twin

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

        Rows with the same prompt (a group's G samples of one turn) run their prompt once:
        its keys and values are repeated for each completion, so the backward pass goes
        through the prompt once per group instead of G times. Rows with a prompt of their
        own go through one left-padded batch, laid out like the backend's generate() call.
        """
        steps = max(len(c) for c in completions)
        rows_of: dict[tuple[int, ...], list[int]] = {}
        for row, prompt in enumerate(prompts):
            rows_of.setdefault(tuple(prompt), []).append(row)
        alone = [rows[0] for rows in rows_of.values() if len(rows) == 1]
        out: dict[int, torch.Tensor] = {}
        grad = torch.no_grad() if reference else nullcontext()
        with self._module(policy, reference) as model, grad:
            if alone:
                logprobs = padded_logprobs(
                    model,
                    [prompts[r] for r in alone],
                    [completions[r] for r in alone],
                    steps,
                    self.tokenizer.eos_token_id,
                )
                out.update(zip(alone, logprobs, strict=True))
            for prompt, rows in rows_of.items():
                if len(rows) > 1:
                    logprobs = shared_prompt_logprobs(
                        model,
                        prompt,
                        [completions[r] for r in rows],
                        steps,
                        self.tokenizer.eos_token_id,
                    )
                    out.update(zip(rows, logprobs, strict=True))
        mask = torch.zeros((len(prompts), steps))
        for row, completion in enumerate(completions):
            mask[row, steps - len(completion) :] = 1  # an empty completion: an empty slice
        return torch.stack([out[row] for row in range(len(prompts))]) * mask, mask

    @contextmanager
    def _module(self, policy: str, reference: bool) -> Iterator[torch.nn.Module]:
        if reference:
            with self._reference(policy) as model:
                yield model
        else:
            yield self._running.get(policy, self.models[policy])

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
        """Copy ``state`` (keyed like ``state_dict``) into the live weights. A state that
        does not fit them exactly, as a checkpoint saved with another policy kind, LoRA
        rank or model does not, raises ``ModelLoadError`` before any weight changes."""
        own = {
            f"{policy}/{name}": p
            for policy in self.policies
            for name, p in self._named_trainable(policy)
        }
        if (misfit := _misfit(state, own)) is not None:
            raise ModelLoadError(
                f"the checkpoint does not fit these policies: {misfit}; it was saved with "
                "another train.policy, train.lora or model than the config names now: put "
                "those back as they were"
            )
        with torch.no_grad():
            for key, p in own.items():
                p.copy_(state[key])


def _misfit(state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> str | None:
    """How a saved state differs from the tensors it is loaded into (names, then shapes)."""
    missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    if missing:
        return f"it has no tensor '{missing[0]}'{_and_more(missing)}"
    if extra:
        return f"its tensor '{extra[0]}'{_and_more(extra)} is no policy's here"
    for key, p in own.items():
        if state[key].shape != p.shape:
            return f"its tensor '{key}' is {tuple(state[key].shape)}, here {tuple(p.shape)}"
    return None


def _and_more(names: list[str]) -> str:
    return f" (and {len(names) - 1} more)" if len(names) > 1 else ""


class LoraPolicies(Policies):
    """`separate` (an adapter per agent) or `shared` (one adapter, every role) on one frozen
    base model; the team generates in one batch that mixes the adapters."""

    def __init__(
        self,
        agents: Sequence[LLMAgent],
        shared: bool,
        lora: dict,
        max_batch_size: int = 64,
    ):
        from peft import LoraConfig, get_peft_model

        super().__init__()
        models = {a.model for a in agents}
        kind = "shared" if shared else "separate"
        if len(models) != 1:
            raise ValueError(f"'{kind}' policies share one base model; agents use {sorted(models)}")
        (name,) = models
        self.policy_of = {a.id: (SHARED if shared else a.id) for a in agents}
        base, self.tokenizer = load_causal_lm(name)
        base.requires_grad_(False)
        config = LoraConfig(task_type="CAUSAL_LM", **lora)
        self.lora_rank = config.r
        names = list(dict.fromkeys(self.policy_of.values()))
        model = get_peft_model(base, config, adapter_name=adapter_name(names[0]))
        for policy in names[1:]:
            model.add_adapter(adapter_name(policy), config)
        self.models = dict.fromkeys(names, model)
        backend = TransformersBackend(model, self.tokenizer, max_batch_size)
        acting = [replace(a, adapter=adapter_name(self.policy_of[a.id])) for a in agents]
        self.team = Team(acting, {name: backend})

    def _named_trainable(self, policy: str) -> list[tuple[str, torch.nn.Parameter]]:
        marker = f".{adapter_name(policy)}."
        named = self.models[policy].named_parameters()
        return [(n, p) for n, p in named if "lora_" in n and marker in n]

    def _select(self, model: torch.nn.Module, policy: str) -> None:
        model.set_adapter(adapter_name(policy))  # peft: only it runs and takes gradients

    @contextmanager
    def _reference(self, policy: str) -> Iterator[torch.nn.Module]:
        model = self.models[policy]
        with model.disable_adapter():  # the frozen base is the starting policy
            yield model

    def _is_trainable(self, name: str) -> bool:
        return "lora_" in name

    def sync_to(self, engines: Mapping[str, WeightSink]) -> None:
        (engine,) = engines.values()  # one base model, one engine for every adapter
        for policy in self.policies:
            engine.sync_adapter(adapter_name(policy), self.models[policy])


class FullWeightPolicies(Policies):
    """`separate_full`: every agent trains a full copy of its model and generates on a
    backend of its own (``LLMAgent.backend`` is the agent's id)."""

    def __init__(
        self, agents: Sequence[LLMAgent], max_batch_size: int = 64, reference: bool = False
    ):
        super().__init__()
        self.policy_of = {a.id: a.id for a in agents}
        self.lora_rank = None
        self.models = {}
        self.reference_models: dict[str, torch.nn.Module] = {}
        backends = {}
        for agent in agents:
            model, self.tokenizer = load_causal_lm(agent.model)
            self.models[agent.id] = model
            backends[agent.id] = TransformersBackend(model, self.tokenizer, max_batch_size)
            if reference:
                frozen, _ = load_causal_lm(agent.model)
                self.reference_models[agent.id] = frozen.requires_grad_(False).eval()
        self.team = Team([replace(a, backend=a.id) for a in agents], backends)

    def _named_trainable(self, policy: str) -> list[tuple[str, torch.nn.Parameter]]:
        return list(self.models[policy].named_parameters())

    def _select(self, model: torch.nn.Module, policy: str) -> None:
        pass  # the module holds this policy alone

    @contextmanager
    def _reference(self, policy: str) -> Iterator[torch.nn.Module]:
        yield self.reference_models[policy]

    def _is_trainable(self, name: str) -> bool:
        return True

    def sync_to(self, engines: Mapping[str, WeightSink]) -> None:
        for agent in self.team.agents.values():
            engines[agent.generates_on].sync_full_weights(
                self.models[self.policy_of[agent.id]].state_dict()
            )


def make_policies(
    agents: Sequence[LLMAgent],
    kind: str,
    lora: dict | None = None,
    seed: int = 0,
    max_batch_size: int = 64,
    reference: bool = False,
) -> Policies:
    """The policies of ``kind`` (see the table above) for ``agents``. ``seed`` fixes the
    LoRA A matrices' random start, so the trainer and every Ray worker start alike;
    ``reference`` keeps a frozen copy of full weights for the KL term (LoRA policies have
    theirs for free: the base without the adapter)."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy kind '{kind}'; known: {', '.join(POLICY_KINDS)}")
    torch.manual_seed(seed)
    if kind == "separate_full":
        return FullWeightPolicies(agents, max_batch_size, reference)
    return LoraPolicies(agents, kind == "shared", lora or {}, max_batch_size)


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) from logits (..., vocab), in fp32."""
    logits = logits.float()
    return logits.gather(-1, targets[..., None]).squeeze(-1) - logits.logsumexp(-1)


def padded_logprobs(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    completions: Sequence[Sequence[int]],
    steps: int,
    pad_id: int,
) -> torch.Tensor:
    """(rows, steps) completion logprobs, right aligned, from one left-padded batch of
    prompt + completion (positions from the attention mask, as generate() numbers them)."""
    width = max(len(p) + len(c) for p, c in zip(prompts, completions, strict=True))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    targets = torch.zeros((len(prompts), steps), dtype=torch.long)
    for row, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        sequence = list(prompt) + list(completion)
        ids[row, width - len(sequence) :] = torch.tensor(sequence)
        attention[row, width - len(sequence) :] = 1
        if completion:
            targets[row, steps - len(completion) :] = torch.tensor(list(completion))
    positions = (attention.cumsum(-1) - 1).clamp_min(0)
    logits = model(
        input_ids=ids, attention_mask=attention, position_ids=positions, logits_to_keep=steps + 1
    ).logits
    return _token_logprobs(logits[:, :-1], targets)  # position j predicts token j


def shared_prompt_logprobs(
    model: torch.nn.Module,
    prompt: Sequence[int],
    completions: Sequence[Sequence[int]],
    steps: int,
    pad_id: int,
) -> torch.Tensor:
    """(rows, steps) completion logprobs, right aligned, of completions of one prompt.

    The prompt runs once (batch 1); its key/value cache is repeated for every completion
    (a view in the autograd graph, so gradients from every completion flow back through
    the one prompt pass), and the completions run after it, right padded.
    """
    rows, width = len(completions), max(len(c) for c in completions)
    head = model(input_ids=torch.tensor([list(prompt)]), use_cache=True, logits_to_keep=1)
    cache = head.past_key_values
    cache.batch_repeat_interleave(rows)
    ids = torch.full((rows, max(width, 1)), pad_id, dtype=torch.long)
    attention = torch.zeros((rows, len(prompt) + ids.shape[1]), dtype=torch.long)
    attention[:, : len(prompt)] = 1
    for row, completion in enumerate(completions):
        ids[row, : len(completion)] = torch.tensor(list(completion), dtype=torch.long)
        attention[row, len(prompt) : len(prompt) + len(completion)] = 1
    positions = torch.arange(len(prompt), len(prompt) + ids.shape[1]).expand(rows, -1)
    tail = model(
        input_ids=ids, attention_mask=attention, position_ids=positions, past_key_values=cache
    ).logits
    # the prompt's last position predicts completion token 0; completion token j, token j+1
    logits = torch.cat([head.logits[:, -1:].expand(rows, -1, -1), tail[:, :-1]], dim=1)
    logprobs = _token_logprobs(logits, ids)  # (rows, width), left aligned
    aligned = [
        torch.cat([logprobs.new_zeros(steps - len(c)), logprobs[row, : len(c)]])
        for row, c in enumerate(completions)
    ]
    return torch.stack(aligned)
