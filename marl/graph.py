"""Interaction graphs: who hears whom.

An edge ``u -> v`` means ``v`` receives what ``u`` sends. Graphs are plain
``networkx.DiGraph`` objects whose nodes are agent ids in team order; presets cover the
common topologies and an explicit edge list covers the rest.

| preset     | edges                                                      |
| ---------- | ---------------------------------------------------------- |
| `complete` | every ordered pair of distinct agents                      |
| `star`     | hub <-> every other agent (the hub defaults to the first)  |
| `chain`    | a0 -> a1 -> ... -> a(n-1)                                  |
| `ring`     | chain plus a(n-1) -> a0                                    |
| `none`     | no edges: agents act alone                                 |
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import networkx as nx

PRESETS = ("complete", "star", "chain", "ring", "none")


class GraphError(ValueError):
    """A graph description that cannot be built for this team."""


def build_graph(
    agent_ids: Sequence[str],
    preset: str | None = "complete",
    edges: Sequence[tuple[str, str]] | None = None,
    hub: str | None = None,
) -> nx.DiGraph:
    """Build the interaction graph over ``agent_ids`` from a preset or an explicit edge list.

    Exactly one of ``preset`` and ``edges`` is used; ``edges`` wins when both are given.
    Raises ``GraphError`` naming the offending edge or option.
    """
    ids = list(agent_ids)
    if len(set(ids)) != len(ids):
        raise GraphError(f"agent ids must be unique, got {ids}")
    graph = nx.DiGraph()
    graph.add_nodes_from(ids)
    if edges is not None:
        if hub is not None:
            raise GraphError("'hub' only applies to the star preset, not to an edge list")
        known = set(ids)
        for u, v in edges:
            for end in (u, v):
                if end not in known:
                    raise GraphError(f"edge {u}->{v}: '{end}' is not a team agent; agents: {ids}")
            if u == v:
                raise GraphError(f"edge {u}->{v}: self-loops are not allowed")
            graph.add_edge(u, v)
        return graph
    if preset not in PRESETS:
        raise GraphError(f"unknown graph preset '{preset}'; known: {', '.join(PRESETS)}")
    if hub is not None and preset != "star":
        raise GraphError(f"'hub' only applies to the star preset, not '{preset}'")
    if preset == "complete":
        graph.add_edges_from((u, v) for u in ids for v in ids if u != v)
    elif preset == "star":
        centre = ids[0] if hub is None else hub
        if centre not in ids:
            raise GraphError(f"star hub '{centre}' is not a team agent; agents: {ids}")
        for other in ids:
            if other != centre:
                graph.add_edge(centre, other)
                graph.add_edge(other, centre)
    elif preset in ("chain", "ring"):
        graph.add_edges_from(itertools.pairwise(ids))
        if preset == "ring" and len(ids) > 1:  # two agents: a0 <-> a1; one: no self-loop
            graph.add_edge(ids[-1], ids[0])
    return graph


def subgraph_for(graph: nx.DiGraph, agent_ids: Sequence[str]) -> nx.DiGraph:
    """The graph restricted to ``agent_ids`` (e.g. one agent alone for its single-agent run)."""
    missing = [a for a in agent_ids if a not in graph]
    if missing:
        raise GraphError(f"agents {missing} are not in the graph")
    return nx.DiGraph(graph.subgraph(agent_ids))
