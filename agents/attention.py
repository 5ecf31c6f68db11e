"""Grouped-query attention without copying the KV cache: ``attn_implementation="sdpa_gqa"``.

transformers' stock ``sdpa`` path expands every key/value head to all query heads
(``repeat_kv``) whenever an attention mask is present, which is always the case for
left-padded batches. For SmolLM2 (9 query heads on 3 KV heads) that copies the whole KV
cache three times per layer per generated token, and measured here it was the largest
single cost of batched generation on CPU. ``torch``'s SDPA takes ``enable_gqa=True`` and
reads the shared heads in place, with identical results. Registered once on import.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import sdpa_mask

ATTENTION = "sdpa_gqa"


def sdpa_gqa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (batch, heads, q_len, head_dim)
    key: torch.Tensor,  # (batch, kv_heads, kv_len, head_dim)
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    causal = module.is_causal if is_causal is None else is_causal
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scaling,
        is_causal=bool(causal and attention_mask is None and query.shape[2] > 1),
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None  # (batch, q_len, heads, head_dim)


AttentionInterface.register(ATTENTION, sdpa_gqa_attention)
AttentionMaskInterface.register(ATTENTION, sdpa_mask)
