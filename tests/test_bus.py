"""The message bus: routing along graph edges, refusals, delivery order and its counters."""

import random

import pytest

from marl.core.bus import MessageBus
from marl.core.graph import GraphSchedule, build_graph

TEAM = ["a", "b", "c", "d"]


def chain_bus() -> MessageBus:
    return MessageBus(build_graph(["a", "b", "c"], "chain"))


def test_broadcast_follows_the_graph():
    bus = chain_bus()
    sent = bus.send("a", "hello", round=0)
    assert sent is not None and sent.recipients == ("b",)
    assert [m.content for m in bus.inbox("b")] == ["hello"]
    assert bus.inbox("c") == []
    assert bus.inbox("a") == []


def test_recipient_without_an_edge_is_refused_and_counted():
    bus = chain_bus()
    assert bus.send("a", "psst", round=0, recipients=["c"]) is None
    assert bus.inbox("c") == []
    assert bus.stats.refused == 1
    assert bus.stats.sent == 0 and bus.log == []


def test_partial_refusal_delivers_to_the_allowed_recipients():
    bus = MessageBus(build_graph(TEAM, "star"))  # hub a
    sent = bus.send("b", "hi", round=0, recipients=["a", "c", "nobody"])
    assert sent is not None and sent.recipients == ("a",)
    assert [m.content for m in bus.inbox("a")] == ["hi"]
    assert bus.inbox("c") == []
    assert bus.stats.refused == 2
    assert bus.stats.deliveries == 1


def test_delivery_order_is_round_then_team_order_whatever_the_send_order():
    sends = [(sender, rnd) for rnd in (0, 1, 2) for sender in ("b", "c", "d")]
    random.Random(7).shuffle(sends)
    bus = MessageBus(build_graph(TEAM, "complete"))
    for sender, rnd in sends:
        bus.send(sender, f"{sender}{rnd}", round=rnd, recipients=["a"])
    order = [m.content for m in bus.inbox("a")]
    assert order == [f"{s}{r}" for r in (0, 1, 2) for s in ("b", "c", "d")]


def test_same_sender_and_round_keep_send_order():
    bus = MessageBus(build_graph(TEAM, "complete"))
    for text in ("first", "second", "third"):
        bus.send("c", text, round=1, recipients=["a"])
    assert [m.content for m in bus.inbox("a")] == ["first", "second", "third"]


def test_drain_returns_then_empties_the_inbox():
    bus = chain_bus()
    bus.send("a", "one", round=0)
    bus.send("a", "two", round=1)
    assert [m.content for m in bus.drain("b")] == ["one", "two"]
    assert bus.drain("b") == []
    assert bus.inbox("b") == []


def test_long_content_is_truncated_and_counted():
    bus = MessageBus(build_graph(["a", "b"], "complete"), max_content_chars=10)
    bus.send("a", "x" * 25, round=0)
    bus.send("a", "short", round=0)
    assert [m.content for m in bus.inbox("b")] == ["x" * 10, "short"]
    assert bus.stats.truncated == 1
    assert bus.stats.chars == 15


def test_per_edge_counts():
    bus = MessageBus(build_graph(TEAM[:3], "complete"))
    bus.send("a", "to all", round=0)
    bus.send("a", "to b", round=0, recipients=["b"])
    bus.send("c", "to a", round=0, recipients=["a"])
    assert bus.stats.as_dict()["per_edge"] == {"a->b": 2, "a->c": 1, "c->a": 1}
    assert bus.stats.sent == 3 and bus.stats.deliveries == 4


def test_unknown_sender_raises():
    with pytest.raises(KeyError, match="unknown sender 'z'"):
        chain_bus().send("z", "hi", round=0)


def test_reset_starts_a_new_episode():
    bus = chain_bus()
    bus.send("a", "hi", round=0, recipients=["b", "c"])
    bus.reset()
    assert bus.inbox("b") == [] and bus.log == []
    assert bus.stats.as_dict()["refused"] == 0 and bus.stats.sent == 0


def schedule_bus() -> MessageBus:
    """Round 0: a -> b only; round 1 and later: a -> c only."""
    team = ["a", "b", "c"]
    return MessageBus(
        GraphSchedule(
            [build_graph(team, edges=[("a", "b")]), build_graph(team, edges=[("a", "c")])]
        )
    )


def test_an_edge_of_a_later_round_is_refused_and_counted_before_it():
    bus = schedule_bus()
    assert bus.send("a", "too early", round=0, recipients=["c"]) is None
    assert bus.stats.refused == 1 and bus.inbox("c") == []
    sent = bus.send("a", "on time", round=1, recipients=["b", "c"])
    assert sent is not None and sent.recipients == ("c",)
    assert bus.stats.refused == 2  # b's edge was round 0's only
    assert [m.content for m in bus.inbox("c")] == ["on time"]


def test_broadcast_follows_the_rounds_graph_and_the_last_graph_repeats():
    bus = schedule_bus()
    assert bus.send("a", "r0", round=0).recipients == ("b",)
    assert bus.send("a", "r5", round=5).recipients == ("c",)
    assert bus.stats.refused == 0
    assert bus.neighbours("a", round=0) == ["b"]
    assert bus.neighbours("a") == ["b", "c"]  # any round: the union
