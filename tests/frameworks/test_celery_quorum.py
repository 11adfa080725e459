"""Celery with quorum queues (``task_default_queue_type='quorum'``), publisher confirms
(``confirm_publish``) and Celery's native delayed delivery: one worker for the module.

With a quorum queue the worker declares kombu's delay tree at start-up
(kombu.transport.native_delayed_delivery): topic exchanges and quorum queues
``celery_delayed_0..27`` whose x-message-ttl is 2**level s, each dead-lettering
(at-least-once) into the next level's exchange, exchange-to-exchange bindings that skip
the levels whose bit is 0, and ``celery_delayed_delivery`` bound to the task queue's
(topic) exchange.  A countdown task is published to ``celery_delayed_27`` with its
whole seconds spelt in binary in the routing key; the broker holds it (TTL + DLX),
the worker only waits out the fraction of a second.  RabbitMQ 3.10 has all of this
(quorum TTL, at-least-once dead-lettering, e2e bindings), so this runs on both brokers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

pytest.importorskip("celery")
pika = pytest.importorskip("pika")

from celery import chord  # noqa: E402

from tests.frameworks.celery_support import ON_TIME, CeleryApp, delete_objects, lateness  # noqa: E402
from tests.frameworks.workerproc import Workers, forget_app, import_app  # noqa: E402

TREE_QUEUES = tuple(f"celery_delayed_{level}" for level in range(28))
TREE_EXCHANGES = (*TREE_QUEUES, "celery_delayed_delivery")


@pytest.fixture(scope="module")
def celery(module_workers: Workers, broker_url: str) -> Iterator[SimpleNamespace]:
    results = module_workers.directory / "results"
    results.mkdir()
    app = CeleryApp(
        module_workers.directory, broker_url, prefix="quorum",
        # the file backend has chords (rpc:// has none): chord_unlock polls with
        # countdown=1, so the chord goes through the delay tree too
        backend=f"file://{results}",
        task_default_queue_type="quorum",
        task_default_exchange_type="topic",
        broker_transport_options={"confirm_publish": True},
        worker_prefetch_multiplier=4)
    mod = import_app(module_workers.directory, app.module)
    module_workers.graceful = False  # teardown: SIGKILL, no 2 s warm shutdown
    try:
        worker = app.worker(module_workers)
        yield SimpleNamespace(app=app, mod=mod, worker=worker, url=broker_url)
    finally:
        module_workers.close()
        delete_objects(mod.app, app.queue, *TREE_QUEUES, exchanges=(app.queue, *TREE_EXCHANGES))
        mod.app.close()
        forget_app(app.module)


def _declare_fails(url: str, queue: str, arguments: dict) -> int | None:
    """queue.declare's reply code on a fresh connection (None: declared fine)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        conn.channel().queue_declare(queue, durable=True, arguments=arguments)
        return None
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code
    finally:
        conn.close()


def _ready(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def test_task_queue_and_delay_tree_are_quorum_queues(celery):
    # the same name declared as a classic queue is 406: it exists, and is a quorum queue
    assert _declare_fails(celery.url, celery.app.queue, {"x-queue-type": "classic"}) == 406
    assert _declare_fails(celery.url, celery.app.queue, {"x-queue-type": "quorum"}) is None
    assert _declare_fails(celery.url, "celery_delayed_27", {
        "x-queue-type": "quorum", "x-overflow": "reject-publish",
        "x-message-ttl": 2**27 * 1000, "x-dead-letter-exchange": "celery_delayed_26",
        "x-dead-letter-strategy": "at-least-once"}) is None


def test_delay_with_publisher_confirms(celery):
    assert celery.mod.stamp.delay("delay").get(timeout=15) == "delay"
    assert celery.app.record("delay")["redelivered"] is False


def test_native_delayed_delivery_countdowns_within_100ms(celery):
    sent = {f"cd{c}": celery.mod.stamp.apply_async((f"cd{c}",), countdown=c)
            for c in (1, 1.5, 2, 3)}
    sent["eta"] = celery.mod.stamp.apply_async(
        ("eta",), eta=datetime.now(UTC) + timedelta(seconds=2.5))
    # The broker holds them, not the worker: 2 s, 2.5 s and 3 s (0b10, 0b10, 0b11) sit
    # in the 2 s level; 1 s and 1.5 s in the 1 s level.
    time.sleep(0.3)
    held = {level: _ready(celery.url, f"celery_delayed_{level}") for level in (1, 0)}
    assert held == {1: 3, 0: 2}, held
    assert celery.app.record("cd1") is None
    late = {tag: lateness(celery.app.wait_record(tag, celery.worker, timeout=10)) for tag in sent}
    print("quorum (native delayed delivery) lateness (s):",
          {k: round(v, 4) for k, v in late.items()})
    assert all(-0.005 <= v <= ON_TIME for v in late.values()), late
    assert _ready(celery.url, "celery_delayed_1") == 0


def test_retries_go_through_the_delay_tree(celery):
    once, flaky = celery.mod.retry_once.delay("retry", 1), celery.mod.flaky.delay("flaky", 2)
    assert (once.get(timeout=15), flaky.get(timeout=15)) == (1, 2)
    r = [celery.app.wait_record(f"retry-{i}", celery.worker) for i in range(2)]
    f = [celery.app.wait_record(f"flaky-{i}", celery.worker) for i in range(3)]
    gaps = [r[1]["t"] - r[0]["t"], f[1]["t"] - f[0]["t"], f[2]["t"] - f[1]["t"]]
    late = [lateness(rec) for rec in (r[1], f[1], f[2])]
    print("quorum retry gaps (s):", [round(g, 4) for g in gaps],
          "lateness (s):", [round(v, 4) for v in late])
    # The backoff is honoured, and each retry runs close to the ETA Celery gave it.  The
    # bound is looser than for countdowns: a retry is published by the task's thread of
    # the threads pool, with a confirm wait, while the worker's main thread drains the
    # same connection; up to ~90 ms of that shows up here on a busy 2-core machine, on
    # both brokers (the broker's own part, TTL + dead-lettering, is a few ms).
    for gap, want in zip(gaps, (1, 1, 2), strict=True):
        assert want <= gap <= want + 0.5, gaps
    assert all(-0.005 <= v <= 2 * ON_TIME for v in late), late


def test_chord_with_a_result_backend_that_has_chords(celery):
    add, tsum = celery.mod.add, celery.mod.tsum
    assert chord(add.s(i, i) for i in range(5))(tsum.s()).get(timeout=20) == 20
