"""Config loading: every example loads; every broken config names the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from marl.assembly import load_config, resolved_config, validate_config
from marl.core.config import ConfigError
from marl.core.config_file import apply_override
from tests.conftest import CONFIGS

VALID = {
    "name": "t",
    "scenario": {"name": "debate_v0", "options": {"rounds": 2}},
    "team": {"agents": [{"id": "a"}, {"id": "b"}, {"id": "c"}]},
}


def with_change(path: str, value: object) -> dict:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    apply_override(data, f"{path}={yaml.safe_dump(value, default_flow_style=True).strip()}")
    return data


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_example_config_loads(path: Path) -> None:
    config = load_config(path)
    assert config.team.agents
    assert resolved_config(config)["scenario"]["options"]  # defaults filled in


def test_valid_minimal_config_fills_defaults() -> None:
    config = validate_config(VALID)
    assert config.team.ids == ["a", "b", "c"]
    assert config.single_agent_id == "a"
    assert config.graph.preset == "complete"
    assert resolved_config(config)["scenario"]["options"]["task"]["operands"] >= 2


BROKEN = [
    (
        "team.agents.2.model",
        "smolm2",
        "team.agents[2].model",
        "unknown model 'smolm2'; known: smollm2",
    ),
    (
        "team.agents.0.sampling.temperature",
        -1,
        "team.agents[0].sampling.temperature",
        "greater than or equal to 0 (got -1)",
    ),
    (
        "team.agents.1.colour",
        "red",
        "team.agents[1].colour",
        "unknown key 'colour'; allowed: id, role",
    ),
    ("team.agents.1.id", "a", "team.agents", "duplicate agent id 'a'"),
    ("team.agents.0.id", "has space", "team.agents[0].id", "should match pattern"),
    (
        "scenario.name",
        "chess",
        "scenario.name",
        "unknown scenario 'chess'; known: coding_v0, debate_v0, referential_v0",
    ),
    ("scenario.options.rounds", 0, "scenario.options.rounds", "greater than or equal to 1"),
    ("scenario.options.turns", 3, "scenario.options.turns", "allowed: rounds, task"),
    ("scenario.options.task", "impossible", "scenario.options.task", "unknown arithmetic preset"),
    ("graph.preset", "mesh", "graph.preset", "complete"),
    ("graph.edges", [["a", "z"]], "graph.edges", "'z' is not a team agent"),
    ("graph.edges", [["a", "a"]], "graph.edges", "self-loops"),
    ("graph.hub", "z", "graph", "'z' is not a team agent"),
    ("run.episodes", 0, "run.episodes", "greater than or equal to 1"),
    ("run.single_agent", "z", "run.single_agent", "'z' is not a team agent"),
    ("run.seeds", 1, "run.seeds", "unknown key 'seeds'; allowed: seed"),
]


@pytest.mark.parametrize(
    ("change", "value", "where", "says"), BROKEN, ids=[b[0] + "=" + str(b[1]) for b in BROKEN]
)
def test_broken_config_names_field(change: str, value: object, where: str, says: str) -> None:
    data = with_change(change, value)
    if change == "graph.hub":
        data["graph"]["preset"] = "star"
    with pytest.raises(ConfigError) as err:
        validate_config(data)
    lines = [f"{path}: {msg}" for path, msg in err.value.problems]
    assert any(line.startswith(where + ":") and says in line for line in lines), lines


def test_missing_sections_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"name": "t"})
    paths = {path for path, _ in err.value.problems}
    assert {"scenario", "team"} <= paths


def test_yaml_problems(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\nname: b\n")
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_config(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text("team: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listing)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_reach_nested_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(VALID))
    config = load_config(
        path, ["run.episodes=3", "team.agents.1.sampling.temperature=0", "graph.preset=ring"]
    )
    assert config.run.episodes == 3
    assert config.team.agents[1].sampling.temperature == 0
    assert config.graph.preset == "ring"
    bracketed = load_config(path, ["team.agents[0].sampling.temperature=0.5"])
    assert bracketed.team.agents[0].sampling.temperature == 0.5
    with pytest.raises(ConfigError, match=r"team\.agents\[0\]\.samplin: unknown key"):
        load_config(path, ["team.agents[0].samplin.top_p=0.5"])
    with pytest.raises(ConfigError, match=r"is not key\.path=value"):
        load_config(path, ["run.episodes"])
    with pytest.raises(ConfigError, match="not an index"):
        load_config(path, ["team.agents.9.id=x"])


def test_scenario_specific_graph_problems_are_found_at_load_time() -> None:
    data = with_change("scenario.options.judge", "c")
    data["graph"] = {"preset": "chain"}  # a -> b -> c: a is not heard by the judge
    with pytest.raises(ConfigError) as err:
        validate_config(data)
    (path, msg), *_ = err.value.problems
    assert path == "graph" and "missing edges: a->c" in msg


def test_the_schema_sampling_and_the_backends_sampling_agree() -> None:
    """The config's `sampling:` (the core schema) and what the backends receive
    (``agents.backend.Sampling``) are declared apart, so that the core imports no agents:
    they must hold the same fields with the same defaults and bounds."""
    from agents.backend import Sampling
    from marl.core.config import SamplingConfig

    def shape(model) -> dict:
        schema = model.model_json_schema()["properties"]
        return {
            name: {k: v for k, v in field.items() if k != "title"} for name, field in schema.items()
        }

    assert shape(SamplingConfig) == shape(Sampling)
    config = validate_config({**VALID, "team": {"agents": [{"id": "a", "sampling": {"top_k": 5}}]}})
    from marl.assembly import llm_agents

    (agent,) = llm_agents(config)
    assert agent.sampling == Sampling(top_k=5)
