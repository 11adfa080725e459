"""PriorityStore (one store per level) against a simple model, in-process.

The wire tests (tests/integration/test_priority.py) check what clients see; this
drives the store through random pushes, takes, requeues, settles and purges and
compares every step with a sorted list, including the memory-alarm byte count."""

from __future__ import annotations

import struct

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hutch.broker.message import Message
from hutch.broker.queue_store.memory import MemoryStore
from hutch.broker.queue_store.priority import PriorityStore, header_priority, levels_for
from hutch.protocol.properties import encode_properties


def content_header(body_size: int, **props) -> bytes:
    return struct.pack(">HHQ", 60, 0, body_size) + encode_properties(props)


@pytest.mark.parametrize("props, expected", [
    ({}, None),
    ({"priority": 7}, 7),
    ({"priority": 0}, 0),
    ({"priority": 255}, 255),
    ({"delivery_mode": 2}, None),
    ({"content_type": "text/plain", "content_encoding": "gzip", "headers": {"a": [1, "x"]},
      "delivery_mode": 2, "priority": 9, "expiration": "100", "app_id": "me"}, 9),
    ({"headers": {}, "priority": 3, "correlation_id": "c"}, 3),
])
def test_header_priority(props, expected):
    assert header_priority(content_header(5, **props)) == expected


def test_header_priority_of_a_truncated_header_is_absent():
    h = content_header(5, content_type="text/plain", priority=9)
    assert header_priority(h[:16]) is None


@pytest.mark.parametrize("max_priority, qtype, expected", [
    (None, "classic", None),
    (0, "classic", (1, 0)),
    (1, "classic", (1, 0)),
    (10, "classic", (10, 0)),
    (255, "classic", (255, 0)),
    (None, "quorum", (31, 4)),
])
def test_levels_for(max_priority, qtype, expected):
    assert levels_for(max_priority, qtype) == expected


def make(top: int, default: int, counted: list[int]) -> PriorityStore:
    def account(n: int) -> None:
        counted[0] += n
    return PriorityStore(lambda: MemoryStore(account), top, default)


def message(i: int, prio: int | None) -> Message:
    body = b"m%d" % i
    props = {} if prio is None else {"priority": prio}
    return Message("", "q", content_header(len(body), **props), body, False)


def level(prio: int | None, top: int, default: int) -> int:
    return default if prio is None else min(prio, top)


class PriorityModel(RuleBasedStateMachine):
    """The model: ready messages as (level, publish number), served highest level
    first, lowest number first (a requeued message keeps its number, so it goes
    back to its place)."""

    def __init__(self) -> None:
        super().__init__()
        self.top, self.default = 5, 0
        self.counted = [0]
        self.store = make(self.top, self.default, self.counted)
        self.ready: list[tuple[int, int]] = []
        self.taken: dict[int, Message] = {}
        self.levels: dict[int, int] = {}
        self.n = 0

    def expected_order(self) -> list[int]:
        return [i for _lvl, i in sorted(self.ready, key=lambda x: (-x[0], x[1]))]

    @rule(prio=st.one_of(st.none(), st.integers(0, 255)))
    def push(self, prio):
        msg = message(self.n, prio)
        lvl = level(prio, self.top, self.default)
        self.levels[self.n] = lvl
        self.ready.append((lvl, self.n))
        assert self.store.push(msg)
        self.n += 1

    @rule()
    def shift(self):
        msg = self.store.shift()
        order = self.expected_order()
        if not order:
            assert msg is None
            return
        assert msg is not None
        i = int(msg.body[1:])
        assert i == order[0]
        self.ready.remove((self.levels[i], i))
        self.taken[i] = msg

    @precondition(lambda self: self.taken)
    @rule(data=st.data())
    def requeue(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.taken)), min_size=1, unique=True))
        msgs = [self.taken.pop(i) for i in ids]
        self.store.requeue(msgs)
        for i in ids:
            self.ready.append((self.levels[i], i))
        assert all(m.redelivered for m in msgs)

    @precondition(lambda self: self.taken)
    @rule(data=st.data())
    def settle(self, data):
        i = data.draw(st.sampled_from(sorted(self.taken)))
        self.store.settle(self.taken.pop(i))

    @rule()
    def purge(self):
        assert self.store.purge() == len(self.ready)
        self.ready.clear()

    @invariant()
    def counts(self):
        assert len(self.store) == len(self.ready)
        ready_bytes = sum(len(b"m%d" % i) for _lvl, i in self.ready)
        assert self.store.bytes == ready_bytes
        # The memory alarm counts every body the queue holds: ready and taken-unsettled.
        assert self.counted[0] == ready_bytes + sum(len(m.body) for m in self.taken.values())
        head = self.store.head()
        order = self.expected_order()
        assert (head is None and not order) or (head is not None and int(head.body[1:]) == order[0])
        lengths = self.store.lengths()
        for lvl in range(self.top + 1):
            assert lengths.get(lvl, 0) == sum(1 for x, _ in self.ready if x == lvl)


PriorityModel.TestCase.settings = settings(max_examples=150, stateful_step_count=60,
                                           deadline=None)
TestPriorityModel = PriorityModel.TestCase


def test_quorum_levels_absent_is_4_and_above_31_is_31():
    store = make(*levels_for(None, "quorum"), [0])  # type: ignore[misc]
    for i, prio in enumerate([3, None, 31, 200, 4, 5, 0]):
        store.push(message(i, prio))
    got = []
    while (msg := store.shift()) is not None:
        got.append(int(msg.body[1:]))
    assert got == [2, 3, 5, 1, 4, 0, 6]


def test_levels_are_created_on_first_use():
    store = make(255, 0, [0])
    assert store.lengths() == {}
    store.push(message(0, 7))
    store.push(message(1, 200))
    assert store.lengths() == {200: 1, 7: 1}
    assert sum(s is not None for s in store.stores) == 3  # 0 (the base), 7 and 200


def test_restore_splits_entries_by_level():
    calls = []

    class Recording:
        paged = paged_bytes = bytes = 0

        def __len__(self) -> int:
            return 0

        def restore(self, entries, size, delivered):
            calls.append((entries, size))

    store = PriorityStore(Recording, 9, 0)  # type: ignore[arg-type]
    store.restore([10, 11, 12, 13], 40, set(), [3, 0, 3, 9], {3: 20, 0: 5, 9: 15})
    assert sorted(calls) == [([10, 12], 20), ([11], 5), ([13], 15)]
