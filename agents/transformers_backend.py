"""The transformers backend: left-padded batches through ``model.generate`` on CPU or GPU.

Requests from many agents and episodes are sorted by prompt length (less padding), cut into
batches of ``max_batch_size`` and generated together. Sampling is done by ``RowSampler``, a
logits processor that draws each row's token from that request's own seeded generator with
that request's temperature/top-p/top-k and hands ``generate`` a one-hot choice; ``generate``
itself runs greedy over it. That keeps the KV cache, padding and stopping logic of
transformers while making every request reproducible on its own. ``RowLimits`` stops each
row at its own ``max_new_tokens``. Prompts are encoded by ``chat_prompt_ids``, where only
the chat template writes control tokens: text in a message is always plain text.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence

import tokenizers
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.utils import logging as hf_logging

from agents.attention import ATTENTION
from agents.backend import Completion, GenerationRequest, Sampling
from agents.models import ModelLoadError, describe_error, resolve_model, short_name


class RowSampler(LogitsProcessor):
    """Chooses each row's next token with that row's own generator and sampling settings."""

    def __init__(self, samplings: Sequence[Sampling], seeds: Sequence[int], device: torch.device):
        self.temperature = torch.tensor([s.temperature for s in samplings], device=device)
        self.top_p = torch.tensor([s.top_p for s in samplings], device=device)
        self.top_k = torch.tensor([s.top_k for s in samplings], device=device)
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device=device)
            gen.manual_seed(seed % (2**63))
            self.generators.append(gen)
        self.logprobs: list[torch.Tensor] = []  # per step, (batch,): raw logprob of the choice

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # one uniform draw per row from that row's own generator: the only per-row work
        uniform = torch.cat(
            [torch.rand(1, generator=g, device=scores.device) for g in self.generators]
        )
        chosen = sample_tokens(scores, self.temperature, self.top_p, self.top_k, uniform)
        # the chosen token's log-probability under the raw logits, kept instead of the whole
        # (batch, vocab) row per step that output_logits would hold (1.2 GB for the demo)
        self.logprobs.append(
            scores.gather(1, chosen[:, None]).squeeze(1) - scores.float().logsumexp(-1)
        )
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(1, chosen[:, None], 0.0)


def sample_tokens(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    top_k: torch.Tensor,
    uniform: torch.Tensor,
    candidates: int = 1024,
) -> torch.Tensor:
    """Next tokens (batch,) from logits (batch, vocab) by inverse-CDF sampling with ``uniform``.

    Per row: temperature (0 = greedy), then keep the ``top_k`` most likely tokens (0 = all),
    then the smallest most-likely prefix whose mass reaches ``top_p``; sample from what is left.
    A row that keeps everything (no top-k, top-p 1) is sampled over the vocabulary in its own
    order, with no sort. Otherwise only the ``candidates`` most likely tokens are sorted (the
    largest top_k, when every row has one); a row whose kept set could reach past them is
    sampled over the full sort.
    """
    scaled = logits.float() / temperature.clamp_min(1e-6)[:, None]
    probs = torch.softmax(scaled, dim=-1)  # (batch, vocab)
    sampled = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    whole = (top_k == 0) & (top_p >= 1.0)
    if whole.any():  # a full sort per row per step cost 16% of a decode step
        cdf = torch.cumsum(probs[whole], dim=-1)
        index = torch.searchsorted(cdf, uniform[whole, None] * cdf[:, -1:])
        sampled[whole] = index.squeeze(-1).clamp_max(probs.shape[-1] - 1)
    if not whole.all():
        rest = ~whole
        sampled[rest] = _sample_truncated(
            probs[rest], top_p[rest], top_k[rest], uniform[rest], candidates
        )
    greedy = temperature == 0
    if greedy.any():  # an argmax over the vocabulary only when some row needs it
        sampled = torch.where(greedy, torch.argmax(logits, dim=-1), sampled)
    return sampled


def _sample_truncated(
    probs: torch.Tensor,
    top_p: torch.Tensor,
    top_k: torch.Tensor,
    uniform: torch.Tensor,
    candidates: int,
) -> torch.Tensor:
    """``sample_tokens`` for rows with a top-k or top-p cut: over the most likely first."""
    k = min(candidates, probs.shape[-1])
    if bool((top_k > 0).all()):  # every row keeps at most its top_k: sort no more than that
        k = min(k, int(top_k.max()))
    top, order = torch.topk(probs, k, dim=-1)  # (batch, k), most likely first
    rank = torch.arange(k, device=probs.device)[None, :]
    mass = torch.cumsum(top, dim=-1)
    before = mass - top  # mass of the more likely tokens
    drop = ((top_k[:, None] > 0) & (rank >= top_k[:, None])) | (before >= top_p[:, None])
    top = top.masked_fill(drop, 0.0)
    cdf = torch.cumsum(top, dim=-1)
    index = torch.searchsorted(cdf, uniform[:, None] * cdf[:, -1:]).clamp_max(k - 1)
    sampled = order.gather(-1, index).squeeze(-1)
    if k == probs.shape[-1]:
        return sampled
    # rows whose kept set may go on past the candidates: redo those over the whole vocabulary
    spills = ((top_k == 0) | (top_k > k)) & (mass[:, -1] < top_p)
    for row in torch.nonzero(spills).flatten().tolist():
        sampled[row] = _sample_truncated(
            probs[row : row + 1],
            top_p[row : row + 1],
            top_k[row : row + 1],
            uniform[row : row + 1],
            probs.shape[-1],
        )[0]
    return sampled


class RowLimits(StoppingCriteria):
    """Stops row i once it has ``limits[i]`` new tokens."""

    def __init__(self, prompt_len: int, limits: Sequence[int], device: torch.device):
        self.prompt_len = prompt_len
        self.limits = torch.tensor(list(limits), device=device)

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs
    ) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.prompt_len) >= self.limits


def chat_prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a chat prompt with the model's template and the assistant header.

    Every backend encodes prompts through this, so the same request is the same tokens.
    Control tokens (the tokenizer's special and added tokens, ``<|im_end|>``...) come from
    the template only. A message's content holds other agents' replies and program output,
    so the text of a control token in it is encoded as the plain text it is, never as that
    token: otherwise a reply could end a turn and open a system turn in its reader's prompt.
    A prompt whose contents hold no such text is exactly ``apply_chat_template``'s tokens.
    """
    control = _control_tokens(tokenizer)
    if any(control.text.search(m["content"]) for m in messages):
        return _prompt_ids_with_plain_contents(tokenizer, messages, control)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)


class _ControlTokens:
    """A tokenizer's control tokens: a pattern for their text, their ids, and an encoder
    for which every one of them is plain text."""

    def __init__(self, tokenizer):
        texts = {t.content for t in tokenizer.added_tokens_decoder.values()}
        texts |= set(tokenizer.all_special_tokens)
        longest_first = sorted(texts, key=len, reverse=True)
        self.text = re.compile("|".join(map(re.escape, longest_first)) or "(?!)")
        self.ids = set(tokenizer.added_tokens_decoder) | set(
            tokenizer.convert_tokens_to_ids(sorted(texts))
        )
        # A copy of the tokenizer's pipeline in which every added token is special, with
        # special tokens read as text: no added token is matched, the rest encodes the same.
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        for token in spec["added_tokens"]:
            token["special"] = True
        self.plain = tokenizers.Tokenizer.from_str(json.dumps(spec))
        self.plain.encode_special_tokens = True
        self.plain.no_truncation()
        self.plain.no_padding()

    def plain_ids(self, text: str) -> list[int]:
        return self.plain.encode(text, add_special_tokens=False).ids if text else []


@functools.cache  # a tokenizer is not changed once loaded
def _control_tokens(tokenizer) -> _ControlTokens:
    return _ControlTokens(tokenizer)


def _prompt_ids_with_plain_contents(
    tokenizer, messages: list[dict[str, str]], control: _ControlTokens
) -> list[int]:
    """``chat_prompt_ids`` of messages whose contents hold control-token text.

    Each such text is replaced by a marker (a private-use character absent from every
    content, around its index) and the template is rendered around those inert contents,
    so every control token in the rendered text is the template's own. The text between
    them, markers put back, is encoded with no control token matched; for a byte-level BPE
    tokenizer (SmolLM2, Qwen, Llama 3) that is how the tokenizer encodes the text between
    special tokens anyway.
    """
    mark = next(
        chr(c) for c in range(0xE000, 0xF900) if all(chr(c) not in m["content"] for m in messages)
    )
    held: list[str] = []

    def hold(found: re.Match[str]) -> str:
        held.append(found.group())
        return f"{mark}{len(held) - 1}{mark}"

    inert = [{**m, "content": control.text.sub(hold, m["content"])} for m in messages]
    text = tokenizer.apply_chat_template(inert, add_generation_prompt=True, tokenize=False)
    marker = re.compile(f"{mark}([0-9]+){mark}")

    def plain(start: int, end: int) -> list[int]:
        return control.plain_ids(marker.sub(lambda m: held[int(m.group(1))], text[start:end]))

    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = []
    start = 0
    for token, (begin, end) in zip(encoding["input_ids"], encoding["offset_mapping"], strict=True):
        if token in control.ids:  # the template's: no content holds control text now
            ids += plain(start, begin)
            ids.append(token)
            start = end
    return ids + plain(start, len(text))


def stop_token_ids(model_generation_config, tokenizer) -> set[int]:
    """The tokens that end a completion: the generation config's EOS ids and the tokenizer's."""
    eos = model_generation_config.eos_token_id
    stop = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    stop.add(tokenizer.eos_token_id)
    return stop


def load_causal_lm(model: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """(model, tokenizer) for a model name from a config, with the GQA-friendly attention.

    ``model_problem`` has looked at the files already; what only loading finds (a tokenizer
    file that does not parse, weights that do not fit their config.json) is a one-line
    ``ModelLoadError`` naming the model, not the loader's traceback."""
    hf_logging.disable_progress_bar()
    path = resolve_model(model)
    named = f"'{short_name(model)}'" + (f" ({path})" if path != model else "")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:  # whatever the tokenizer's own loader raises
        raise ModelLoadError(
            f"cannot load the tokenizer of {named}: {describe_error(err)}; copy its tokenizer "
            "files (tokenizer.json, tokenizer_config.json) again"
        ) from err
    # Tensors the weights lack or hold in other shapes are found here and said in one line:
    # transformers would start them random, or raise, after logging a table of them. A
    # filter drops that table (setting the logger's level would not: transformers then
    # runs checks that log more).
    report = logging.getLogger("transformers.modeling_utils")
    report.addFilter(_errors_only)
    try:
        lm, loaded = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            attn_implementation=ATTENTION,
            output_loading_info=True,
            ignore_mismatched_sizes=True,
        )
    except Exception as err:  # whatever the model's own loader raises
        raise ModelLoadError(
            f"cannot load the weights of {named}: {describe_error(err)}; check that "
            "config.json belongs to these weights, or copy the model again"
        ) from err
    finally:
        report.removeFilter(_errors_only)
    if misfit := _weights_misfit(loaded):
        raise ModelLoadError(
            f"cannot load the weights of {named}: {misfit}; give the config.json these "
            "weights came with, or copy the weight files again"
        )
    return lm.to(device), tokenizer


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def _weights_misfit(loaded: dict) -> str | None:
    """What ``from_pretrained``'s loading info says the weights lack for their config."""
    if loaded["mismatched_keys"]:
        (key, saved, wanted), *rest = sorted(loaded["mismatched_keys"])
        more = f" (and {len(rest)} more)" if rest else ""
        return f"size mismatch: {key} is {list(saved)} in them, {list(wanted)} by config.json{more}"
    if loaded["missing_keys"]:
        key, *rest = sorted(loaded["missing_keys"])
        more = f" (and {len(rest)} more)" if rest else ""
        return f"they lack {key}{more}, which config.json needs (it would start random)"
    return None


class TransformersBackend:
    """Batched generation with a transformers model (plain, or a peft model with adapters).

    With a peft model, each request's ``adapter`` names the LoRA adapter its row runs with
    (``None``: the base weights), and one batch mixes adapters freely.
    """

    def __init__(self, model, tokenizer, max_batch_size: int = 64):
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.max_batch_size = max_batch_size
        self.stop_ids = stop_token_ids(model.generation_config, tokenizer)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id

    @classmethod
    def load(cls, model: str, device: str = "cpu", max_batch_size: int = 64) -> TransformersBackend:
        """A backend on a fresh copy of ``model`` (an embedded name, a folder or a hub id)."""
        lm, tokenizer = load_causal_lm(model, device)
        lm.eval()
        return cls(lm, tokenizer, max_batch_size)

    def encode_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        return chat_prompt_ids(self.tokenizer, messages)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.model.eval()  # a trainer may have left it in train mode; peft mixes adapters in eval
        prompts = [self.encode_prompt(r.messages) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        results: list[Completion | None] = [None] * len(requests)
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            done = self._generate_batch([prompts[i] for i in chunk], [requests[i] for i in chunk])
            for i, completion in zip(chunk, done, strict=True):
                results[i] = completion
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def _generate_batch(
        self, prompts: list[list[int]], requests: list[GenerationRequest]
    ) -> list[Completion]:
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: the prompt ends at the last column
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            attention[row, width - len(prompt) :] = 1
        limits = [r.sampling.max_new_tokens for r in requests]
        adapters = {}
        if any(r.adapter is not None for r in requests):
            adapters["adapter_names"] = [r.adapter or "__base__" for r in requests]
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(limits),
            eos_token_id=sorted(self.stop_ids),
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
        )
        sampler = RowSampler(
            [r.sampling for r in requests], [r.seed for r in requests], self.device
        )
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        cache = self._shared_prefill(prompts, input_ids, attention, adapters.get("adapter_names"))
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            generation_config=config,
            logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=StoppingCriteriaList([RowLimits(width, limits, self.device)]),
            **({"past_key_values": cache} if cache is not None else {}),
            **adapters,
        )
        new_tokens = out.sequences[:, width:].cpu()  # (batch, steps)
        logprobs = torch.stack(sampler.logprobs, dim=1).float().cpu()  # (batch, steps)
        completions = []
        for row, prompt in enumerate(prompts):
            tokens = new_tokens[row, : limits[row]].tolist()
            finish = "length"
            for t, token in enumerate(tokens):
                if token in self.stop_ids:
                    tokens, finish = tokens[: t + 1], "stop"
                    break
            completions.append(
                Completion(
                    text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                    token_ids=tokens,
                    logprobs=logprobs[row, : len(tokens)].tolist(),
                    prompt_token_ids=prompt,
                    finish_reason=finish,
                )
            )
        return completions

    def _shared_prefill(
        self,
        prompts: list[list[int]],
        input_ids: torch.Tensor,
        attention: torch.Tensor,
        adapter_names: list[str] | None,
    ):
        """The key/value cache of every row's prompt but its last token, each distinct
        (prompt, adapter) run once; None when no two rows share one.

        A training group's G samples of one turn have the same prompt, most of the tokens a
        turn processes (a 250-token observation, a 32-token answer): running it once and
        repeating its cache row for each sample cuts that prefill G-fold. generate() then
        starts from the cache and runs only the last prompt token of every row.
        """
        names = adapter_names or [None] * len(prompts)
        slot: dict[tuple, int] = {}  # (prompt, adapter) -> its index among the distinct ones
        unique: list[int] = []  # a row standing for each distinct one
        source: list[int] = []  # row -> the distinct one whose cache it takes
        for row, key in enumerate(zip(map(tuple, prompts), names, strict=True)):
            if key not in slot:
                slot[key] = len(unique)
                unique.append(row)
            source.append(slot[key])
        if len(unique) == len(prompts) or input_ids.shape[1] < 2:
            return None
        mask = attention[unique, :-1]
        extra = {"adapter_names": [names[i] for i in unique]} if adapter_names else {}
        cache = self.model(
            input_ids=input_ids[unique, :-1],
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp_min(0),
            use_cache=True,
            logits_to_keep=1,
            **extra,
        ).past_key_values
        cache.batch_select_indices(torch.tensor(source, device=self.device))
        return cache
