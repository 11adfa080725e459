"""Randomised in-process check of the paged store with read-aheads in flight."""
from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from hutch.broker.consumer import Consumer
from hutch.broker.message import Message
from hutch.broker.node import Node
from hutch.broker.queue import WINDOW, WINDOW_BYTES, Queue
from tests.broker.test_read_ahead import FakeChannel, GatedReads, _settle, run_paged


def body(i: int) -> bytes:
    return f"m{i:07d}".encode().ljust(WINDOW_BYTES // WINDOW, b".")


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("FUZZ_N", "6"))))
def test_fuzz(tmp_path: Any, seed: int) -> None:
    rng = random.Random(seed)
    files = GatedReads()

    async def test(broker: Node, q: Queue) -> None:
        n = 0
        first: list[int] = []  # first deliveries, in order
        seen: set[int] = set()
        unacked: list[Message] = []
        ch = FakeChannel()
        cons = None
        done: set[int] = set()
        purged: set[int] = set()

        def note(m: Message) -> None:
            i = int(m.body[1:8])
            if m.redelivered:
                assert i in seen, f"redelivered {i} never delivered"
            else:
                assert i not in seen, f"{i} delivered twice as new"
                assert i not in purged, f"{i} delivered after purge"
                first.append(i)
                seen.add(i)

        def collect() -> None:
            """Note what the consumer got; keep what it must still ack."""
            for m in ch.got:
                note(m)
                if m.consumer is not None:
                    unacked.append(m)
            ch.got.clear()

        for _step in range(300):
            op = rng.random()
            if op < 0.25:
                k = rng.choice([1, 10, 500, 3000])
                for _ in range(k):
                    q.enqueue(Message("", "q", b"h", body(n), rng.random() > 0.02))
                    n += 1
            elif op < 0.4:
                for _ in range(rng.choice([1, 50, 1500])):
                    na = rng.random() < 0.5
                    m = q.get(no_ack=na)
                    if m is None:
                        break
                    note(m)
                    if not na:
                        unacked.append(m)
            elif op < 0.5 and unacked:
                rng.shuffle(unacked)
                k = rng.randint(1, len(unacked))
                batch, unacked[:] = unacked[:k], unacked[k:]
                q.requeue(batch)
            elif op < 0.6 and unacked:
                rng.shuffle(unacked)
                k = rng.randint(1, len(unacked))
                batch, unacked[:] = unacked[:k], unacked[k:]
                for m in batch:
                    done.add(int(m.body[1:8]))
                    q.ack(m)
            elif op < 0.63:
                q.purge()
                purged.update(set(range(n)) - seen)
            elif op < 0.7:
                if cons is None:
                    cons = Consumer("c", ch, q, rng.random() < 0.3, False, rng.choice([0, 10, 300]), {})
                    q.add_consumer(cons)
                else:
                    q.remove_consumer(cons)
                    cons = None
            elif op < 0.8:
                if files.gate.is_set():
                    files.gate.clear()
                else:
                    files.gate.set()
            else:
                await asyncio.sleep(0)
                if rng.random() < 0.5:
                    files.gate.set()
                    await _settle(broker)
            collect()
        # wind down
        files.gate.set()
        if cons is not None:
            q.remove_consumer(cons)
        cons = Consumer("c", ch, q, False, False, 0, {})
        q.add_consumer(cons)
        for _ in range(300):
            await _settle(broker)
            collect()
            for m in unacked:
                q.ack(m)
            unacked.clear()
            if not q.message_count and not q.unacked_count:
                break
        assert first == sorted(first), "first deliveries out of publish order"
        assert seen | purged == set(range(n)), f"lost {sorted(set(range(n)) - seen)[:10]}"
        st = q.store
        counts = (q.message_count, q.unacked_count, st.bytes, st.paged, st.paged_bytes, st.held_bytes)
        assert counts == (0, 0, 0, 0, 0, 0)
        assert broker.queued_bytes == 0
    run_paged(tmp_path, test, files=files)
