"""From a config to a world: the checks that need a scenario or a backend, then the env
factory, the team, the policies and the rollouts every command plays with.

This is the one place that knows scenarios, agents and the core together. The core's
schema (``marl.core.config``) knows what a config may say; here it is held against what
is installed and registered:

| check                                   | reported at                               |
| --------------------------------------- | ----------------------------------------- |
| `resources.imports` import              | `resources.imports`                       |
| run folders can be made there           | `run.output_dir`                          |
| the scenario is registered              | `scenario.name`                           |
| every model name is known               | `team.agents[i].model`                    |
| vLLM is installed for `backend: vllm`   | `resources.backend`                       |
| the scenario's own options model        | `scenario.options.<field>`                |
| per-round graphs fit the scenario       | `graph.rounds`                            |
| the scenario accepts this team, graph   | `graph` or `scenario.options`             |

and every problem comes back in one ``ConfigError`` with the schema's own. Then:

| builder          | gives                                                                    |
| ---------------- | ------------------------------------------------------------------------ |
| `env_factory`    | an ``EnvFactory``: fresh envs of the scenario for some of the team       |
| `build_team`     | the config's models as they are, one backend per base model              |
| `build_policies` | the trainable ``Policies`` of `train.policy`                             |
| `build_rollouts` | who plays: in this process (transformers, vLLM) or on Ray workers        |
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
from pettingzoo import ParallelEnv
from pydantic import BaseModel, ValidationError

from agents.backend import Sampling
from agents.models import model_problem
from agents.policies import Policies, make_policies
from agents.team import LLMAgent, Team
from agents.vllm_backend import VLLM_INSTALL_HINT, VLLMPolicies, vllm_available
from marl.core.config import (
    ConfigError,
    Knowledge,
    RunConfig,
    cross_field_problems,
    describe_errors,
    join_path,
    parse_run_config,
)
from marl.core.config_file import read_config_file
from marl.core.graph import GraphError, build_graph_from_config, subgraph_for
from marl.core.runs import output_dir_problem
from marl.rollouts.interface import Rollouts
from marl.rollouts.local import TransformersRollouts, VLLMRollouts
from marl.rollouts.ray_workers import RayRollouts
from marl.trackers import tracker_problem
from scenarios import SCENARIOS, ScenarioContractError, make_env
from scenarios.base import TextTeamEnv

_MODULE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


# ---------------------------------------------------------------- checking a config


def import_modules(names: list[Any], folders: Sequence[str] = ()) -> None:
    """Import each module of ``resources.imports``, ``folders`` (``resources.python_path``)
    first on ``sys.path``; a ValueError says which one failed and where it was looked for."""
    for folder in reversed(list(folders)):
        if isinstance(folder, str) and folder not in sys.path:
            sys.path.insert(0, folder)
    for name in names:
        if not isinstance(name, str) or not _MODULE_PATTERN.fullmatch(name) or len(name) > 200:
            raise ValueError(f"{name!r} is not a module name like pkg.module")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            where = f" in {', '.join(folders)} or" if folders else ""
            raise ValueError(
                f"cannot import '{name}': no module '{err.name}' found{where} on the Python "
                "path (a module beside the config file is found; else set "
                "resources.python_path)"
            ) from None
        except Exception as err:  # anything the module raises: report, do not crash the loader
            raise ValueError(f"cannot import '{name}': {type(err).__name__}: {err}") from None


def resolve_python_path(data: Any, base_dir: str | Path | None) -> Any:
    """``data`` (a raw config mapping) with ``resources.python_path`` made absolute against
    ``base_dir``, and ``base_dir`` itself added when a module of ``resources.imports`` is
    there: the config's own folder works like a script's folder. Anything malformed is
    left for the schema to report."""
    resources = data.get("resources") if isinstance(data, dict) else None
    if base_dir is None or not isinstance(resources, dict):
        return data
    imports, given = resources.get("imports"), resources.get("python_path", [])
    if not isinstance(imports, list) or not isinstance(given, list):
        return data
    base = Path(base_dir).absolute()
    folders = [str(base / f) if isinstance(f, str) and "\0" not in f else f for f in given]
    tops = {name.split(".")[0] for name in imports if isinstance(name, str) and name}
    beside = any((base / f"{top}.py").is_file() or (base / top).is_dir() for top in tops)
    if beside and str(base) not in folders:
        folders.append(str(base))
    if folders == given:
        return data
    return {**data, "resources": {**resources, "python_path": folders}}


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override (``key.path=value``) and validate a YAML run config."""
    path = Path(path)
    return validate_config(read_config_file(path, overrides), str(path), base_dir=path.parent)


def validate_config(
    data: dict[str, Any], source: str = "config", base_dir: str | Path | None = None
) -> RunConfig:
    """Validate a config mapping against the schema, then against the scenarios and
    backends here (the table above).

    Relative graph file paths are taken relative to ``base_dir`` (the config file's folder;
    the working directory when ``None``). ``resources.imports`` are imported first: they
    register the scenarios the rest is checked against.
    """
    data = resolve_python_path(data, base_dir)
    resources = data.get("resources") if isinstance(data, dict) else None
    if isinstance(resources, dict) and isinstance(resources.get("imports"), list):
        folders = resources.get("python_path", [])
        try:
            import_modules(resources["imports"], folders if isinstance(folders, list) else [])
        except ValueError as err:
            raise ConfigError([("resources.imports", str(err))], source) from None
    knowledge = Knowledge(base_dir=base_dir, scenarios=SCENARIOS, model_problem=model_problem)
    config = parse_run_config(data, source, knowledge)
    problems = cross_field_problems(config)
    if (where := output_dir_problem(config.run.output_dir)) is not None:
        problems.append(("run.output_dir", where))
    problems += [
        ("run.report_to", why)
        for name in config.run.report_to
        if (why := tracker_problem(name)) is not None
    ]
    if config.resources.backend == "vllm" and not vllm_available():
        problems.append(
            (
                "resources.backend",
                f"'vllm' is not installed here ({VLLM_INSTALL_HINT}); or use transformers",
            )
        )
    try:
        options = scenario_options(config)
    except ValidationError as err:
        options_model = SCENARIOS[config.scenario.name].options
        problems += [
            (join_path("scenario.options", path), msg)
            for path, msg in describe_errors(err, options_model)
        ]
    else:
        problems += _graph_rounds_problems(config, options)
    if not problems:
        problems += _scenario_accepts_team(config, options)
    if problems:
        raise ConfigError(problems, source)
    return config


def _scenario_accepts_team(config: RunConfig, options: BaseModel) -> list[tuple[str, str]]:
    """Build the scenario once for the team and its graph: what only the scenario can judge
    (a debate judge without edges from every debater, a speaker not on the team) is found
    here, at load time, instead of when a run starts."""
    graph = build_graph_from_config(config.team.ids, config.graph)
    try:
        make_env(config.scenario.name, config.team.ids, graph, options).close()
    except ScenarioContractError as err:
        return [("scenario.name", str(err))]
    except GraphError as err:
        return [("graph", f"{config.scenario.name}: {err}")]
    except ValueError as err:
        return [("scenario.options", f"{config.scenario.name}: {err}")]
    except Exception as err:  # a user's scenario failing to build: theirs to fix, one line
        where = f"{type(err).__name__}: {err}"
        return [("scenario.name", f"building '{config.scenario.name}' failed: {where}")]
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


def scenario_options(config: RunConfig) -> BaseModel:
    """The scenario's options, validated by its own model (defaults filled in)."""
    return SCENARIOS[config.scenario.name].options.model_validate(config.scenario.options)


def scenario_class(config: RunConfig) -> type[TextTeamEnv]:
    """The env class of the config's scenario (what it declares: baselines, vote scoring)."""
    return SCENARIOS[config.scenario.name].env


def resolved_config(config: RunConfig) -> dict[str, Any]:
    """The config with every default filled in, as written to a run folder."""
    data = config.model_dump(mode="json")
    data["scenario"]["options"] = scenario_options(config).model_dump(mode="json")
    return data


# ---------------------------------------------------------------- building the world


@dataclass(frozen=True)
class EnvFactory:
    """Fresh envs of one scenario for ``agent_ids`` on their part of the team's graph; plain
    data, so it travels to Ray workers as it is."""

    scenario: str
    agent_ids: tuple[str, ...]
    graph: nx.DiGraph
    options: BaseModel

    def __call__(self) -> ParallelEnv:
        return make_env(self.scenario, list(self.agent_ids), self.graph, self.options)


def env_factory(config: RunConfig, agent_ids: Sequence[str]) -> EnvFactory:
    """The config's scenario for ``agent_ids`` (a subset plays alone: its own subgraph)."""
    graph = subgraph_for(build_graph_from_config(config.team.ids, config.graph), agent_ids)
    return EnvFactory(config.scenario.name, tuple(agent_ids), graph, scenario_options(config))


def llm_agents(config: RunConfig, agent_ids: Sequence[str] | None = None) -> list[LLMAgent]:
    """The config's agents (those of ``agent_ids``, in team order), as the backends see them."""
    return [
        LLMAgent(a.id, a.role, a.system_prompt, a.model, Sampling(**a.sampling.model_dump()))
        for a in config.team.agents
        if agent_ids is None or a.id in agent_ids
    ]


def build_team(config: RunConfig) -> Team:
    """The config's models as they are: one backend (``resources.backend``) per base model."""
    agents = llm_agents(config)
    models = dict.fromkeys(a.model for a in agents)
    if config.resources.backend == "vllm":
        from agents.vllm_backend import VLLMBackend

        backends = {
            model: VLLMBackend(model, max_batch_size=config.run.batch_size, seed=config.run.seed)
            for model in models
        }
    else:
        from agents.transformers_backend import TransformersBackend

        backends = {
            model: TransformersBackend.load(model, max_batch_size=config.run.batch_size)
            for model in models
        }
    return Team(agents, backends)


def training_agents(config: RunConfig) -> list[str]:
    """Who trains: the team, or for `grpo` the first agent alone (the single-agent task)."""
    ids = config.team.ids
    return ids[:1] if config.train.algorithm == "grpo" else ids


def build_policies(config: RunConfig, agent_ids: Sequence[str], reference: bool) -> Policies:
    """The trainable policies of ``agent_ids`` as ``train.policy`` says; built the same way
    (same seed, so the same starting adapters) in the trainer and in every Ray worker."""
    lora = config.train.lora
    return make_policies(
        llm_agents(config, agent_ids),
        config.train.policy,
        lora={
            "r": lora.r,
            "lora_alpha": lora.alpha,
            "lora_dropout": lora.dropout,
            "target_modules": lora.target_modules,
        },
        seed=config.run.seed,
        max_batch_size=config.run.batch_size,
        reference=reference,
    )


def build_rollouts(
    config: RunConfig, policies: Policies | None = None, version: int | None = 0
) -> Rollouts:
    """Who plays, by ``resources``: with ``policies`` (training), Ray workers (``workers``),
    vLLM engines mirroring them (``backend: vllm``), or the policies' own transformers
    backends, holding ``version`` of their weights; without, the config's models as they
    are, in this process (`marl simulate` and `marl eval`)."""
    resources, batch = config.resources, config.run.batch_size
    if policies is None:
        team = build_team(config)
        if resources.backend == "vllm":
            return VLLMRollouts(team, batch)
        return TransformersRollouts(team, batch)
    if resources.workers:
        build = functools.partial(worker_rollouts, config, list(policies.policy_of))
        return RayRollouts(build, policies, resources, version=version or 0)
    if resources.backend == "vllm":
        mirror = VLLMPolicies(policies, max_batch_size=batch, seed=config.run.seed)
        return VLLMRollouts(mirror, batch, version)
    return TransformersRollouts(policies.team, batch, version)


def worker_rollouts(config: RunConfig, agent_ids: list[str]) -> tuple[Rollouts, Policies]:
    """What one Ray worker builds in its own process: its torch threads, the user's modules,
    a copy of the policies and in-process rollouts on them (``marl.rollouts.ray_workers``)."""
    import torch

    torch.set_num_threads(config.resources.cpus_per_worker)
    # before the config's scenario is built
    import_modules(config.resources.imports, config.resources.python_path)
    policies = build_policies(config, agent_ids, reference=False)
    here = config.resources.model_copy(update={"workers": 0})
    # version None: the first push of the trainer's weights is loaded, whatever it holds
    return build_rollouts(config.model_copy(update={"resources": here}), policies, None), policies
