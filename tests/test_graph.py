"""Interaction graphs: presets, explicit edge lists and the errors a user sees."""

import pytest

from marl.core.graph import PRESETS, GraphError, build_graph, subgraph_for

TEAM = ["a", "b", "c"]


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("complete", {("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")}),
        ("star", {("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")}),
        ("chain", {("a", "b"), ("b", "c")}),
        ("ring", {("a", "b"), ("b", "c"), ("c", "a")}),
        ("none", set()),
    ],
)
def test_preset_edges(preset, expected):
    graph = build_graph(TEAM, preset)
    assert set(graph.edges) == expected
    assert list(graph.nodes) == TEAM  # team order is kept: the bus delivers in it


def test_complete_on_three_agents_has_six_edges():
    assert build_graph(TEAM, "complete").number_of_edges() == 6


def test_star_around_a_chosen_hub():
    graph = build_graph(TEAM, "star", hub="c")
    assert set(graph.edges) == {("c", "a"), ("a", "c"), ("c", "b"), ("b", "c")}


def test_ring_of_two_goes_both_ways_and_ring_of_one_has_no_self_loop():
    assert set(build_graph(["a", "b"], "ring").edges) == {("a", "b"), ("b", "a")}
    assert build_graph(["a"], "ring").number_of_edges() == 0


def test_explicit_edges_win_over_the_preset():
    graph = build_graph(TEAM, "complete", edges=[("a", "c"), ("c", "b")])
    assert set(graph.edges) == {("a", "c"), ("c", "b")}
    assert list(graph.nodes) == TEAM  # agents without edges are still in the team


def test_edge_to_unknown_agent_names_the_edge():
    with pytest.raises(GraphError, match=r"edge a->z: 'z' is not a team agent"):
        build_graph(TEAM, edges=[("a", "b"), ("a", "z")])


def test_self_loop_names_the_edge():
    with pytest.raises(GraphError, match=r"edge b->b: self-loops"):
        build_graph(TEAM, edges=[("b", "b")])


def test_unknown_preset_lists_the_allowed_ones():
    with pytest.raises(GraphError, match="unknown graph preset 'mesh'") as info:
        build_graph(TEAM, "mesh")
    assert all(name in str(info.value) for name in PRESETS)


def test_hub_is_refused_outside_star():
    with pytest.raises(GraphError, match="'hub' only applies to the star preset"):
        build_graph(TEAM, "chain", hub="a")


def test_hub_must_be_a_team_agent():
    with pytest.raises(GraphError, match="star hub 'z'"):
        build_graph(TEAM, "star", hub="z")


def test_duplicate_agent_ids_are_refused():
    with pytest.raises(GraphError, match="unique"):
        build_graph(["a", "b", "a"])


def test_subgraph_for_one_agent_keeps_it_alone():
    alone = subgraph_for(build_graph(TEAM, "complete"), ["b"])
    assert list(alone.nodes) == ["b"]
    assert alone.number_of_edges() == 0
    with pytest.raises(GraphError, match="'z'"):
        subgraph_for(build_graph(TEAM), ["z"])
