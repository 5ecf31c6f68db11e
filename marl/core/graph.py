"""Interaction graphs: who hears whom.

An edge ``u -> v`` means ``v`` receives what ``u`` sends. Graphs are plain
``networkx.DiGraph`` objects whose nodes are agent ids in team order. A graph comes from
exactly one source:

| source   | edges                                                                  |
| -------- | ---------------------------------------------------------------------- |
| `preset` | a named topology (table below); the default when no source is given    |
| `edges`  | an explicit list of `(u, v)` pairs                                     |
| `file`   | GraphML (`.graphml`) or an edge list (`.edges`, `.edgelist`, `.txt`)   |
| `random` | `gnp` or `watts_strogatz` over the team, reproducible from a seed      |

An edge-list file has one `u v` per line (`#` starts a comment). `gnp` links each pair
with probability `p`; `watts_strogatz` is a ring lattice of `k` neighbours (k/2 on each
side) whose edges are rewired with probability `p`.

| preset     | edges                                                      |
| ---------- | ---------------------------------------------------------- |
| `complete` | every ordered pair of distinct agents                      |
| `star`     | hub <-> every other agent (the hub defaults to the first)  |
| `chain`    | a0 -> a1 -> ... -> a(n-1)                                  |
| `ring`     | chain plus a(n-1) -> a0                                    |
| `none`     | no edges: agents act alone                                 |

Undirected sources (an undirected GraphML file, both random generators) give both
directions of every edge. File nodes must be team agents; agents the file does not mention
have no edges.

A ``GraphSchedule`` holds one graph per round for scenarios that play rounds: round ``r``
routes along ``at(r)``, the last graph repeating. It is itself a ``DiGraph``, the union of
its rounds, so scenarios take it where they take a graph, unchanged: observation sizes
from in-degrees hold for every round, while reachability computed on it (relay_v0's
`solvable`) is over the union, an upper bound. The message bus asks ``graph_at`` for the
round's own edges. ``build_graph`` builds one graph from one source;
``build_graph_from_config`` dispatches a config's ``graph:`` section, rounds included.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from xml.etree.ElementTree import ParseError

import networkx as nx

from marl.core.files import InputFileError, read_bytes, shown

PRESETS = ("complete", "star", "chain", "ring", "none")
RANDOM_KINDS = ("gnp", "watts_strogatz")
GRAPHML_SUFFIXES = (".graphml",)
MAX_GRAPH_FILE_BYTES = 16 * 1024 * 1024  # 64 agents on a complete graph: ~300 KB of GraphML
EDGE_LIST_SUFFIXES = (".edges", ".edgelist", ".txt")


class GraphError(ValueError):
    """A graph description that cannot be built for this team.

    ``field`` is the key of the graph spec at fault (``edges``, ``file``, ``random.k``,
    ``rounds[1].edges``), or ``None`` when the problem spans keys (a hub outside a star).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class RandomSpec(Protocol):
    """A random graph's parameters (``marl.core.config.RandomGraphConfig`` is one)."""

    kind: str
    p: float
    k: int | None
    seed: int


class GraphSpec(Protocol):
    """One graph's description (``marl.core.config.GraphSpec`` is one)."""

    preset: str | None
    hub: str | None
    edges: Sequence[tuple[str, str]] | None
    file: str | None
    random: RandomSpec | None


class GraphScheduleSpec(GraphSpec, Protocol):
    """A config's ``graph:`` section: one graph, or one per round
    (``marl.core.config.GraphConfig`` is one)."""

    rounds: Sequence[GraphSpec] | None


class GraphSchedule(nx.DiGraph):
    """One graph per round; round ``r`` routes along ``at(r)``, the last graph repeating.

    As a ``DiGraph`` it is the union of its rounds (same nodes, in team order). networkx
    views and copies made by its algorithms keep the union only; restrict a schedule to
    some agents with ``subgraph_for``, which keeps the rounds.
    """

    def __init__(self, rounds: Sequence[nx.DiGraph] = ()):
        super().__init__()
        self.rounds = [nx.DiGraph(graph) for graph in rounds]
        if not self.rounds:
            return
        nodes = list(self.rounds[0].nodes)
        self.add_nodes_from(nodes)  # first, so the union keeps round 0's (team) order
        for r, graph in enumerate(self.rounds):
            if set(graph.nodes) != set(nodes):
                raise GraphError(
                    f"round {r} has nodes {list(graph.nodes)}, round 0 has {nodes}; "
                    "every round's graph must be over the same agents",
                    f"rounds[{r}]",
                )
            self.add_edges_from(graph.edges)

    def at(self, round: int) -> nx.DiGraph:
        """The graph round ``round`` (0-based) routes along."""
        if not self.rounds:
            raise GraphError("this GraphSchedule has no rounds (a networkx view or copy?)")
        if round < 0:
            raise ValueError(f"round must be 0 or more, got {round}")
        return self.rounds[min(round, len(self.rounds) - 1)]

    def copy(self, as_view: bool = False) -> GraphSchedule:
        if as_view:
            return super().copy(as_view=True)
        copied = GraphSchedule(self.rounds)
        copied.graph.update(self.graph)
        return copied


def graph_at(graph: nx.DiGraph, round: int) -> nx.DiGraph:
    """The edges ``round`` routes along: a schedule's graph of that round, else ``graph``."""
    return graph.at(round) if isinstance(graph, GraphSchedule) else graph


def build_graph(
    agent_ids: Sequence[str],
    preset: str | None = "complete",
    edges: Sequence[tuple[str, str]] | None = None,
    hub: str | None = None,
    *,
    file: str | Path | None = None,
    random: RandomSpec | None = None,
) -> nx.DiGraph:
    """Build the interaction graph over ``agent_ids`` from one source.

    ``edges``, ``file`` and ``random`` exclude each other; when one is given the preset is
    not used. Raises ``GraphError`` naming the offending edge, node, file or option.
    """
    ids = list(agent_ids)
    if len(set(ids)) != len(ids):
        raise GraphError(f"agent ids must be unique, got {ids}")
    given = {"edges": edges, "file": file, "random": random}
    sources = [name for name, value in given.items() if value is not None]
    if len(sources) > 1:
        raise GraphError(f"give one graph source, got {' and '.join(sources)}")
    graph = nx.DiGraph()
    graph.add_nodes_from(ids)
    if sources:
        (source,) = sources
        if hub is not None:
            raise GraphError("'hub' only applies to the star preset, not to an edge list")
        where = ""
        if file is not None:
            edges, where = read_graph_file(file, ids), f"{shown(file)}: "
        elif random is not None:
            edges = random_edges(ids, random)
        known = set(ids)
        for u, v in edges:
            for end in (u, v):
                if end not in known:
                    raise GraphError(
                        f"{where}edge {u}->{v}: '{end}' is not a team agent; agents: {ids}", source
                    )
            if u == v:
                raise GraphError(f"{where}edge {u}->{v}: self-loops are not allowed", source)
            graph.add_edge(u, v)
        return graph
    if preset not in PRESETS:
        raise GraphError(f"unknown graph preset '{preset}'; known: {', '.join(PRESETS)}", "preset")
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


def read_graph_file(path: str | Path, agent_ids: Sequence[str]) -> list[tuple[str, str]]:
    """The edges of a GraphML or edge-list file whose nodes are all team agents."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in GRAPHML_SUFFIXES + EDGE_LIST_SUFFIXES:
        raise GraphError(
            f"{shown(path)}: unknown graph file type '{suffix}'; use .graphml, or "
            f"{', '.join(EDGE_LIST_SUFFIXES)} for an edge list (one 'u v' per line)",
            "file",
        )
    try:
        data = io.BytesIO(read_bytes(path, MAX_GRAPH_FILE_BYTES))
    except InputFileError as err:
        raise GraphError(f"cannot read graph file {shown(path)}: it {err.reason}", "file") from None
    try:
        if suffix in GRAPHML_SUFFIXES:
            graph = nx.read_graphml(data)
        else:
            graph = nx.read_edgelist(data, create_using=nx.DiGraph, nodetype=str)
    except (ParseError, nx.NetworkXError, TypeError, ValueError) as err:  # ValueError: not UTF-8
        raise GraphError(f"{shown(path)} is not a valid graph file: {err}", "file") from None
    except KeyError as err:  # GraphML: an unknown attr.type, or a value it cannot convert
        raise GraphError(f"{path} is not a valid graph file: unknown {err}", "file") from None
    known = set(agent_ids)
    unknown = [str(node) for node in graph.nodes if node not in known]
    if unknown:
        names = ", ".join(f"'{node}'" for node in unknown)
        raise GraphError(
            f"{path}: node{'s' * (len(unknown) > 1)} {names} "
            f"{'are not team agents' if len(unknown) > 1 else 'is not a team agent'}; "
            f"agents: {list(agent_ids)}",
            "file",
        )
    edges = list(graph.edges)
    if not graph.is_directed():
        edges += [(v, u) for u, v in edges]
    return edges


def random_edges(agent_ids: Sequence[str], spec: RandomSpec) -> list[tuple[str, str]]:
    """A seeded random graph over ``agent_ids``, both directions of every edge."""
    n = len(agent_ids)
    if spec.kind == "gnp":
        if spec.k is not None:
            raise GraphError("k only applies to watts_strogatz; gnp takes p and seed", "random.k")
        graph = nx.gnp_random_graph(n, spec.p, seed=spec.seed)
    elif spec.kind == "watts_strogatz":
        # networkx silently rounds an odd k down; refuse it instead
        if spec.k is None or spec.k % 2 or not 2 <= spec.k < n:
            raise GraphError(
                f"watts_strogatz needs an even k (k/2 neighbours on each side of the ring) "
                f"with 2 <= k < {n} (the team size), got k={spec.k}",
                "random.k",
            )
        graph = nx.watts_strogatz_graph(n, spec.k, spec.p, seed=spec.seed)
    else:
        raise GraphError(
            f"unknown random graph kind '{spec.kind}'; known: {', '.join(RANDOM_KINDS)}",
            "random.kind",
        )
    edges = [(agent_ids[u], agent_ids[v]) for u, v in graph.edges]
    return edges + [(v, u) for u, v in edges]


def build_graph_from_config(agent_ids: Sequence[str], spec: GraphScheduleSpec) -> nx.DiGraph:
    """The graph a config's ``graph:`` section describes: one graph, or a ``GraphSchedule``."""
    if spec.rounds is None:
        return _build_one(agent_ids, spec)
    graphs = []
    for r, round_spec in enumerate(spec.rounds):
        try:
            graphs.append(_build_one(agent_ids, round_spec))
        except GraphError as err:
            field = f"rounds[{r}]" + (f".{err.field}" if err.field else "")
            raise GraphError(str(err), field) from None
    return GraphSchedule(graphs)


def _build_one(agent_ids: Sequence[str], spec: GraphSpec) -> nx.DiGraph:
    return build_graph(
        agent_ids, spec.preset, spec.edges, spec.hub, file=spec.file, random=spec.random
    )


def subgraph_for(graph: nx.DiGraph, agent_ids: Sequence[str]) -> nx.DiGraph:
    """The graph restricted to ``agent_ids`` (e.g. one agent alone for its single-agent run).

    A ``GraphSchedule`` stays one: each round's graph is restricted.
    """
    missing = [a for a in agent_ids if a not in graph]
    if missing:
        raise GraphError(f"agents {missing} are not in the graph")
    if isinstance(graph, GraphSchedule):
        return GraphSchedule([subgraph_for(g, agent_ids) for g in graph.rounds])
    return nx.DiGraph(graph.subgraph(agent_ids))
