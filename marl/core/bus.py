"""The message bus: every message between agents travels here, and only along graph edges.

A message is ``(sender, recipients, round, channel, content, meta)``. ``MessageBus.send``
routes it along the interaction graph: a recipient that is not an out-neighbour of the
sender is refused and counted, never delivered. On a ``marl.core.graph.GraphSchedule`` a
message of round ``r`` travels only along round ``r``'s graph. Inboxes are read in a
deterministic order (round, then the sender's position in the team, then send order), so
an episode replays the same way whatever order its agents' messages were produced in.

The bus keeps a log of delivered messages for transcripts and counts what talking cost
(messages, characters, refusals, per-edge volume). Wire encoding lives in ``marl.core.codec``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from marl.core.graph import graph_at

DEFAULT_MAX_CONTENT_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Message:
    """One message on the bus. ``meta`` holds small scenario-specific facts (parsed answer...)."""

    sender: str
    recipients: tuple[str, ...]
    round: int
    channel: str
    content: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "recipients": list(self.recipients),
            "round": self.round,
            "channel": self.channel,
            "content": self.content,
            "meta": dict(self.meta),
        }


@dataclass(slots=True)
class BusStats:
    """What the team's talking cost so far; reset with the bus."""

    sent: int = 0  # send() calls that delivered to at least one recipient
    deliveries: int = 0  # (message, recipient) pairs delivered
    refused: int = 0  # (message, recipient) pairs refused: no such edge
    chars: int = 0  # characters of content sent (counted once per message)
    truncated: int = 0  # messages cut to the bus's content limit
    per_edge: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "deliveries": self.deliveries,
            "refused": self.refused,
            "chars": self.chars,
            "truncated": self.truncated,
            "per_edge": {f"{u}->{v}": n for (u, v), n in sorted(self.per_edge.items())},
        }


class MessageBus:
    """Routes messages along the edges of ``graph`` (of each round's graph, for a
    ``GraphSchedule``) into per-agent inboxes."""

    def __init__(self, graph: nx.DiGraph, max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS):
        if max_content_chars < 1:
            raise ValueError("max_content_chars must be at least 1")
        self.graph = graph
        self.max_content_chars = max_content_chars
        self._order = {agent: i for i, agent in enumerate(graph.nodes)}
        self.reset()

    def reset(self) -> None:
        """Empty every inbox, the log and the counters (a new episode)."""
        self._inboxes: dict[str, list[tuple[int, int, int, Message]]] = {a: [] for a in self._order}
        self._seq = 0
        self._log: list[tuple[int, int, int, Message]] = []
        self.stats = BusStats()

    def neighbours(self, agent: str, round: int | None = None) -> list[str]:
        """Who hears ``agent`` in ``round``: its out-neighbours, in team order.

        ``round=None`` asks the whole graph: for a schedule, who hears ``agent`` in any round.
        """
        graph = self.graph if round is None else graph_at(self.graph, round)
        return sorted(graph.successors(agent), key=self._order.__getitem__)

    def send(
        self,
        sender: str,
        content: str,
        round: int,
        recipients: Iterable[str] | None = None,
        channel: str = "message",
        meta: Mapping[str, Any] | None = None,
    ) -> Message | None:
        """Route one message; ``recipients=None`` means every out-neighbour of ``sender``
        in ``round``.

        Returns the delivered message (recipients cut to those reachable), or ``None`` if no
        recipient could be reached. Refused recipients are counted in ``stats.refused``.
        """
        if sender not in self._order:
            raise KeyError(f"unknown sender '{sender}'; agents: {list(self._order)}")
        if isinstance(recipients, str):
            raise TypeError(
                f"recipients must be a list of agent ids, not the string '{recipients}'"
            )
        graph = graph_at(self.graph, round)
        wanted = (
            self.neighbours(sender, round)
            if recipients is None
            else list(dict.fromkeys(recipients))
        )
        allowed = [r for r in wanted if r in self._order and graph.has_edge(sender, r)]
        self.stats.refused += len(wanted) - len(allowed)
        if not allowed:
            return None
        if len(content) > self.max_content_chars:
            content = content[: self.max_content_chars]
            self.stats.truncated += 1
        message = Message(sender, tuple(allowed), round, channel, content, dict(meta or {}))
        key = (round, self._order[sender], self._seq)
        self._seq += 1
        for recipient in allowed:
            self._inboxes[recipient].append((*key, message))
            self.stats.per_edge[(sender, recipient)] += 1
        self.stats.sent += 1
        self.stats.deliveries += len(allowed)
        self.stats.chars += len(content)
        self._log.append((*key, message))
        return message

    @property
    def log(self) -> list[Message]:
        """Every delivered message in delivery order (round, sender's team position, send order)."""
        return [entry[-1] for entry in sorted(self._log, key=lambda e: e[:3])]

    def inbox(self, agent: str) -> list[Message]:
        """Messages waiting for ``agent`` in delivery order, without removing them."""
        return [entry[-1] for entry in sorted(self._inboxes[agent], key=lambda e: e[:3])]

    def drain(self, agent: str) -> list[Message]:
        """Messages waiting for ``agent`` in delivery order; the inbox is emptied."""
        messages = self.inbox(agent)
        self._inboxes[agent].clear()
        return messages
