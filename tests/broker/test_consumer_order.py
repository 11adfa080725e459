"""consumer_order.py's pickers on their own (the wire tests are
tests/integration/test_consumer_priority.py and test_single_active.py)."""

from __future__ import annotations

from typing import Any

from hutch.broker.consumer_order import PriorityLine, SingleActive


class FakeConsumer:
    def __init__(self, tag: str, priority: int = 0) -> None:
        self.tag = tag
        self.priority = priority
        self.room = True
        self.unacked = 0

    def can_take(self) -> bool:
        return self.room

    def __repr__(self) -> str:
        return self.tag


def picks(picker: Any, n: int) -> list[str]:
    out = []
    for _ in range(n):
        c = picker.pick()
        out.append(c.tag if c is not None else None)
    return out


def test_priority_line_serves_highest_then_round_robin() -> None:
    a, b, low = FakeConsumer("a", 5), FakeConsumer("b", 5), FakeConsumer("low", -1)
    line = PriorityLine([low, a])
    line.add(b)
    assert picks(line, 4) == ["a", "b", "a", "b"]
    a.room = b.room = False
    assert picks(line, 2) == ["low", "low"]
    b.room = True
    assert picks(line, 2) == ["b", "b"]
    low.room = b.room = False
    assert line.pick() is None and not line.can_take()


def test_priority_line_unpick_puts_the_line_back() -> None:
    a, b = FakeConsumer("a", 1), FakeConsumer("b", 1)
    line = PriorityLine([a, b, FakeConsumer("z")])
    assert line.pick() is a
    line.unpick()  # no message for a: a is still first
    assert picks(line, 3) == ["a", "b", "a"]


def test_priority_line_becomes_uniform_and_keeps_its_order() -> None:
    a, b, vip = FakeConsumer("a"), FakeConsumer("b"), FakeConsumer("vip", 3)
    line = PriorityLine([a, b, vip])
    assert not line.uniform()
    line.remove(vip)
    assert line.uniform() and list(line.order()) == [a, b]


def test_single_active_classic_never_hands_over_to_a_higher_priority() -> None:
    sac = SingleActive(quorum=False)
    first, vip = FakeConsumer("first"), FakeConsumer("vip", 10)
    sac.add(first)
    sac.add(vip)
    assert picks(sac, 2) == ["first", "first"]
    first.room = False
    assert sac.pick() is None and not sac.can_take()  # the waiting vip gets nothing
    assert sac.remove(first) is True and sac.active is vip


def test_single_active_promotes_by_priority_then_registration() -> None:
    sac = SingleActive(quorum=False)
    cs = [FakeConsumer("a"), FakeConsumer("b"), FakeConsumer("c", 2), FakeConsumer("d", 2)]
    for c in cs:
        sac.add(c)
    order = []
    while sac.active is not None:
        order.append(sac.active.tag)
        sac.remove(sac.active)
    assert order == ["a", "c", "d", "b"]


def test_single_active_waiting_consumer_removed_changes_nothing() -> None:
    sac = SingleActive(quorum=True)
    a, b = FakeConsumer("a"), FakeConsumer("b")
    sac.add(a)
    sac.add(b)
    assert sac.remove(b) is False and sac.active is a and sac.waiting == []


def test_single_active_quorum_quiesces_until_settled() -> None:
    sac = SingleActive(quorum=True)
    low, high = FakeConsumer("low"), FakeConsumer("high", 1)
    sac.add(low)
    low.unacked = 2
    sac.add(high)
    assert sac.quiescing and sac.pick() is None
    low.unacked = 0
    assert sac.pick() is high and sac.waiting == [low]
    assert sac.remove(high) is True and sac.active is low


def test_single_active_quorum_quiescing_survives_the_higher_one_leaving() -> None:
    """rabbit_fifo leaves the active consumer quiescing; once it has settled the best
    waiting consumer (itself here) is active again."""
    sac = SingleActive(quorum=True)
    low, high = FakeConsumer("low"), FakeConsumer("high", 1)
    sac.add(low)
    low.unacked = 1
    sac.add(high)
    sac.remove(high)
    assert sac.pick() is None
    low.unacked = 0
    assert sac.pick() is low and not sac.quiescing
