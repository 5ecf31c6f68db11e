"""Graph sources beyond presets: GraphML and edge-list files, seeded random graphs, graphs
that change per round, and the config errors that name the field at fault."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
import yaml

from marl.assembly import load_config, resolved_config, validate_config
from marl.core.config import ConfigError, GraphConfig, RandomGraphConfig
from marl.core.graph import (
    GraphError,
    GraphSchedule,
    build_graph,
    build_graph_from_config,
    graph_at,
    subgraph_for,
)
from scenarios import make_env

TEAM = ["a", "b", "c", "d", "e", "f"]
CONFIG = {
    "name": "t",
    "scenario": {"name": "debate_v0", "options": {"rounds": 2}},
    "team": {"agents": [{"id": a} for a in TEAM[:3]]},
}


def graph(spec: dict, team: list[str] = TEAM) -> nx.DiGraph:
    return build_graph_from_config(team, GraphConfig.model_validate(spec))


def problems(graph_section: dict, **scenario_options: object) -> list[str]:
    data = {**CONFIG, "graph": graph_section}
    if scenario_options:
        data["scenario"] = {"name": "debate_v0", "options": scenario_options}
    with pytest.raises(ConfigError) as err:
        validate_config(data)
    return [f"{path}: {msg}" for path, msg in err.value.problems]


# ---------------------------------------------------------------- files


def test_directed_graphml_file(tmp_path: Path) -> None:
    path = tmp_path / "team.graphml"
    nx.write_graphml(nx.DiGraph([("c", "a"), ("a", "b")]), path)
    built = graph({"file": str(path)})
    assert set(built.edges) == {("c", "a"), ("a", "b")}
    assert list(built.nodes) == TEAM  # team order, agents the file leaves out included


def test_undirected_graphml_gives_both_directions(tmp_path: Path) -> None:
    path = tmp_path / "team.graphml"
    nx.write_graphml(nx.Graph([("a", "b"), ("b", "c")]), path)
    assert set(graph({"file": str(path)}).edges) == {("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")}


@pytest.mark.parametrize("suffix", [".edges", ".edgelist", ".txt"])
def test_edge_list_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"team{suffix}"
    path.write_text("# who hears whom\na b\nb c {'weight': 2}\nc a\n")
    assert set(graph({"file": str(path)}).edges) == {("a", "b"), ("b", "c"), ("c", "a")}


def test_file_node_outside_the_team_names_the_node_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "team.edges"
    path.write_text("a b\nb zed\n")
    with pytest.raises(GraphError, match=r"team\.edges: node 'zed' is not a team agent") as err:
        graph({"file": str(path)})
    assert err.value.field == "file"


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match=r"cannot read graph file .*missing\.graphml"):
        graph({"file": str(tmp_path / "missing.graphml")})
    odd = tmp_path / "team.csv"
    odd.write_text("a,b\n")
    with pytest.raises(
        GraphError, match=r"team\.csv: unknown graph file type '\.csv'; use \.graphml"
    ):
        graph({"file": str(odd)})
    broken = tmp_path / "broken.graphml"
    broken.write_text("<graphml><graph")
    with pytest.raises(GraphError, match=r"broken\.graphml is not a valid graph file"):
        graph({"file": str(broken)})
    loop = tmp_path / "loop.edges"
    loop.write_text("a a\n")
    with pytest.raises(GraphError, match=r"loop\.edges: edge a->a: self-loops"):
        graph({"file": str(loop)})


def test_config_file_path_is_relative_to_the_config(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "chain.edges").write_text("a b\nb c\n")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "graph": {"file": "graphs/chain.edges"}}))
    monkeypatch.chdir("/")
    config = load_config(path)
    assert config.graph.file == str(tmp_path / "graphs" / "chain.edges")
    assert set(build_graph_from_config(config.team.ids, config.graph).edges) == {
        ("a", "b"),
        ("b", "c"),
    }


# ---------------------------------------------------------------- random graphs


@pytest.mark.parametrize(
    "spec", [{"kind": "gnp", "p": 0.5}, {"kind": "watts_strogatz", "k": 2, "p": 0.5}]
)
def test_random_graph_is_reproducible_from_its_seed(spec: dict) -> None:
    def edges(seed: int) -> set:
        return set(graph({"random": {**spec, "seed": seed}}).edges)

    assert edges(0) == edges(0)
    assert edges(0) != edges(1)
    built = graph({"random": {**spec, "seed": 3}})
    assert list(built.nodes) == TEAM
    assert all(built.has_edge(v, u) for u, v in built.edges)  # undirected: both ways


def test_gnp_extremes() -> None:
    assert graph({"random": {"kind": "gnp", "p": 0.0}}).number_of_edges() == 0
    assert graph({"random": {"kind": "gnp", "p": 1.0}}).number_of_edges() == 6 * 5


def test_watts_strogatz_without_rewiring_is_the_ring_lattice() -> None:
    built = graph({"random": {"kind": "watts_strogatz", "k": 2, "p": 0.0}})
    ring = build_graph(TEAM, "ring")
    assert set(built.edges) == set(ring.edges) | {(v, u) for u, v in ring.edges}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"kind": "watts_strogatz", "p": 0.1}, "got k=None"),
        ({"kind": "watts_strogatz", "k": 3, "p": 0.1}, "even k"),
        ({"kind": "watts_strogatz", "k": 6, "p": 0.1}, "2 <= k < 6"),
        ({"kind": "gnp", "k": 2, "p": 0.1}, "k only applies to watts_strogatz"),
    ],
)
def test_random_k_problems_name_random_k(spec: dict, says: str) -> None:
    with pytest.raises(GraphError, match=says) as err:
        graph({"random": spec})
    assert err.value.field == "random.k"


# ---------------------------------------------------------------- per-round graphs


def test_rounds_make_a_schedule_whose_last_graph_repeats() -> None:
    built = graph({"rounds": [{"preset": "none"}, {"edges": [["a", "b"]]}, {"preset": "chain"}]})
    assert isinstance(built, GraphSchedule)
    assert built.at(0).number_of_edges() == 0
    assert set(built.at(1).edges) == {("a", "b")}
    assert set(built.at(2).edges) == set(built.at(7).edges) == set(build_graph(TEAM, "chain").edges)
    assert set(built.edges) == set(build_graph(TEAM, "chain").edges)  # the union of rounds
    assert list(built.nodes) == TEAM
    assert graph_at(built, 1) is built.at(1)
    plain = build_graph(TEAM, "ring")
    assert graph_at(plain, 5) is plain


def test_subgraph_for_keeps_the_schedule() -> None:
    built = graph({"rounds": [{"edges": [["a", "b"]]}, {"preset": "complete"}]})
    pair = subgraph_for(built, ["a", "b"])
    assert isinstance(pair, GraphSchedule)
    assert set(pair.at(0).edges) == {("a", "b")}
    assert set(pair.at(1).edges) == {("a", "b"), ("b", "a")}
    alone = subgraph_for(built, ["c"])
    assert list(alone.nodes) == ["c"] and alone.at(0).number_of_edges() == 0


def test_a_schedule_survives_copies() -> None:
    import copy

    built = graph({"rounds": [{"preset": "none"}, {"preset": "complete"}]})
    for twin in (built.copy(), copy.deepcopy(built)):
        assert isinstance(twin, GraphSchedule)
        assert twin.at(0).number_of_edges() == 0 and twin.at(1).number_of_edges() == 30


def test_debate_routes_each_round_along_its_own_graph() -> None:
    """Round 0 on no edges, round 1 on the complete graph: only round 1's answers travel."""
    team = ["a", "b", "c"]
    schedule = graph({"rounds": [{"preset": "none"}, {"preset": "complete"}]}, team)
    env = make_env("debate_v0", team, schedule, {"rounds": 3})
    observations, _ = env.reset(seed=0)
    observations, *_ = env.step(dict.fromkeys(team, "Answer: 1"))
    assert "Answers from other agents" not in observations["a"]
    observations, *_ = env.step(dict.fromkeys(team, "Answer: 2"))
    assert "Answers from other agents" in observations["a"]
    *_, infos = env.step(dict.fromkeys(team, "Answer: 3"))
    metrics = infos["a"]["episode"]
    assert metrics["messages"] == 3 * 2  # rounds 1 and 2 (the last graph repeats)
    assert metrics["deliveries"] == 3 * 2 * 2
    assert metrics["refused"] == 0


# ---------------------------------------------------------------- config errors


def test_one_source_per_graph_spec() -> None:
    lines = problems({"preset": "ring", "edges": [["a", "b"]]})
    assert any(
        line.startswith("graph: give one graph source, got preset and edges") for line in lines
    )
    lines = problems({"rounds": [{"preset": "chain", "random": {"kind": "gnp", "p": 0.5}}]})
    assert any(line.startswith("graph.rounds[0]: give one graph source") for line in lines)
    lines = problems({"preset": "ring", "rounds": [{"preset": "chain"}]})
    assert any("got preset and rounds" in line for line in lines)


def test_no_source_means_complete_and_resolves_so() -> None:
    config = validate_config({**CONFIG, "graph": {}})
    assert config.graph.preset == "complete"
    assert validate_config({**CONFIG, "graph": {"edges": [["a", "b"]]}}).graph.preset is None


@pytest.mark.parametrize(
    ("section", "where", "says"),
    [
        ({"random": {"kind": "gnp", "p": 1.5}}, "graph.random.p", "less than or equal to 1"),
        ({"random": {"kind": "erdos", "p": 0.5}}, "graph.random.kind", "'gnp' or 'watts_strogatz'"),
        ({"random": {"kind": "gnp"}}, "graph.random.p", "required, but missing"),
        ({"random": {"kind": "gnp", "p": 0.5, "n": 3}}, "graph.random.n", "allowed: kind, p, k"),
        ({"random": {"kind": "watts_strogatz", "k": 4, "p": 0.5}}, "graph.random.k", "2 <= k < 3"),
        ({"file": "nowhere.graphml"}, "graph.file", "cannot read graph file"),
        ({"rounds": [{"preset": "ring"}, {"edges": [["a", "z"]]}]}, "graph.rounds[1].edges", "'z'"),
        ({"rounds": [{"preset": "mesh"}]}, "graph.rounds[0].preset", "'complete'"),
        ({"rounds": [{"rounds": []}]}, "graph.rounds[0].rounds", "unknown key 'rounds'"),
        ({"rounds": []}, "graph.rounds", "at least 1 item"),
        ({"rounds": [{}, {}, {}]}, "graph.rounds", "3 graphs for 2 rounds"),
    ],
)
def test_graph_config_errors_name_the_field(section: dict, where: str, says: str) -> None:
    lines = problems(section)
    assert any(line.startswith(where + ":") and says in line for line in lines), lines


def test_random_graph_config_accepts_the_documented_forms() -> None:
    assert RandomGraphConfig(kind="gnp", p=0.5).seed == 0
    config = validate_config(
        {**CONFIG, "graph": {"random": {"kind": "watts_strogatz", "k": 2, "p": 0.1, "seed": 4}}}
    )
    assert resolved_config(config)["graph"]["random"] == {
        "kind": "watts_strogatz",
        "p": 0.1,
        "k": 2,
        "seed": 4,
    }


def test_runs_build_envs_on_the_schedule_for_the_team_and_each_agent_alone() -> None:
    from marl.assembly import env_factory

    config = validate_config(
        {**CONFIG, "graph": {"rounds": [{"preset": "none"}, {"preset": "ring"}]}}
    )
    team_env = env_factory(config, config.team.ids)()
    assert isinstance(team_env.bus.graph, GraphSchedule)
    assert set(team_env.bus.graph.at(1).edges) == {("a", "b"), ("b", "c"), ("c", "a")}
    alone = env_factory(config, ["b"])()
    assert isinstance(alone.bus.graph, GraphSchedule) and list(alone.bus.graph.nodes) == ["b"]
