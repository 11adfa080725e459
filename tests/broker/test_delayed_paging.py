"""A durable delayed exchange keeps no body in memory for a persistent message due
later than PAGE_AFTER_MS: one int in a heap, the body read back from the log ahead
of its due time; it still fires on time, in order, and across a clean restart (the
snapshot lists paged messages) — with the paging thresholds shrunk so it runs fast.
An in-process broker (hutch.Broker) so the test can look inside the store."""

from __future__ import annotations

import time

import pika
import pytest

import hutch
from hutch.broker import delayed_store
from hutch.broker.users import Permission

X = "dx.paging"
Q = "dx.paging.q"


@pytest.fixture
def fast_paging(monkeypatch):
    monkeypatch.setattr(delayed_store, "PAGE_AFTER_MS", 300)
    monkeypatch.setattr(delayed_store, "READ_AHEAD_MS", 150)
    monkeypatch.setattr(delayed_store, "READ_CHUNK", 16)  # several reads


def _store(b: hutch.Broker) -> delayed_store.DelayStore:
    return b.broker.vhosts["/"].exchanges[X].store


def _publish_batch(url: str, n: int, base_delay: int) -> dict[str, float]:
    """n persistent messages due base_delay .. base_delay + 20n ms from now, published
    in reverse due order; returns each body's due time (wall clock seconds)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(X, "x-delayed-message", durable=True, arguments={"x-delayed-type": "fanout"})
    ch.queue_declare(Q, durable=True)
    ch.queue_bind(Q, X, "")
    due = {}
    for i in reversed(range(n)):
        delay = base_delay + 20 * i
        due[f"m{i:03d}"] = time.time() + delay / 1000
        ch.basic_publish(X, "", f"m{i:03d}".encode(), pika.BasicProperties(
            delivery_mode=2, headers={"x-delay": delay}))
    conn.close()
    return due


def _receive(url: str, n: int, timeout: float) -> list[tuple[str, float]]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    got: list[tuple[str, float]] = []
    end = time.monotonic() + timeout
    for method, _props, body in ch.consume(Q, auto_ack=True, inactivity_timeout=0.01):
        if method is not None:
            got.append((body.decode(), time.time()))
        if len(got) == n or time.monotonic() > end:
            break
    conn.close()
    return got


def test_paged_delayed_messages_fire_in_order_and_on_time(tmp_path, fast_paging) -> None:
    with hutch.Broker(data_dir=str(tmp_path), management=False) as b:
        due = _publish_batch(b.url, 60, 600)
        store = _store(b)
        deadline = time.monotonic() + 2
        while store._unwritten and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(store._paged) == 60 and not store._msgs  # no body in memory
        assert store.count == 60
        got = _receive(b.url, 60, 5)
    assert [body for body, _at in got] == sorted(due)  # due order, not publish order
    late = [at - due[body] for body, at in got]
    assert min(late) >= -0.002  # never early (clock granularity)
    assert max(late) < 0.1, late  # read back in time (bench/delayed.py measures the 10 ms target)


def test_paged_delayed_messages_survive_a_clean_restart(tmp_path, fast_paging) -> None:
    with hutch.Broker(data_dir=str(tmp_path), management=False) as b:
        due = _publish_batch(b.url, 40, 1200)
        b.restart_sync()
        store = _store(b)
        assert store.count == 40
        assert len(store._paged) == 40  # paged again after the restart
        got = _receive(b.url, 40, 5)
    assert sorted(body for body, _at in got) == sorted(due)
    assert min(at - due[body] for body, at in got) >= -0.002


def test_deleting_the_vhost_releases_its_delayed_messages(tmp_path) -> None:
    """Their bodies leave the memory accounting and their records are acked (the
    segment they pin can go), as when the exchange itself is deleted."""
    with hutch.Broker(data_dir=str(tmp_path), management=False) as b:
        node = b.broker
        b._call(_in_vhost(node))
        conn = pika.BlockingConnection(pika.URLParameters(b.url.rstrip("/") + "/dxv"))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare(X, "x-delayed-message", durable=True,
                            arguments={"x-delayed-type": "direct"})
        for delay in (100_000, 1_000):  # one paged, one in memory
            ch.basic_publish(X, "k", b"x" * 1000, pika.BasicProperties(
                delivery_mode=2, headers={"x-delay": delay}))
        conn.close()
        store = node.vhosts["dxv"].exchanges[X].store
        assert store.count == 2 and node.queued_bytes >= 1000
        b._call(_drop_vhost(node))
        assert store.closed and store.count == 0
        assert node.queued_bytes == 0


async def _in_vhost(node) -> None:
    node.add_vhost("dxv")
    node.users.set_permission("dxv", "guest", Permission())


async def _drop_vhost(node) -> None:
    node.delete_vhost("dxv")


def test_a_paged_item_keeps_a_log_id_past_32_bits() -> None:
    """Log ids are 63-bit seqs: the packing must not cut them once the log has
    written more than 2**32 records."""
    due, msg_id, offset = 1_900_000_000_000, (1 << 62) + 12345, 0xFFFFFFF0
    item = (due << delayed_store.ENTRY_BITS) | (msg_id << 32) | offset
    assert item >> delayed_store.ENTRY_BITS == due
    assert (item & delayed_store.ENTRY_MASK) >> 32 == msg_id
    assert item & 0xFFFFFFFF == offset
