"""Clients get RabbitMQ's dialect when they ask which broker this is.

kombu (so Celery) decides how basic.qos behaves from ``server_properties``: a server
whose ``product`` is not ``RabbitMQ`` (or a RabbitMQ older than 3.3) is taken to follow
the spec, where ``global=false`` limits the whole channel
(kombu.transport.pyamqp.Connection.qos_semantics_matches_spec).  Celery then raises its
prefetch with ``global=false``; Hutch, as RabbitMQ, applies that to consumers created
later only, so a worker holding countdown tasks never takes another task.  The same
with a real Celery worker: tests/frameworks/test_celery_delivery.py (prefetch test).
"""

from __future__ import annotations

import time
import uuid

import pytest

kombu = pytest.importorskip("kombu")


def _server_properties(broker_url: str) -> dict:
    with kombu.Connection(broker_url, connect_timeout=5) as conn:
        conn.connect()
        return dict(conn.connection.server_properties)


def test_server_properties_announce_rabbitmq(broker_url):
    props = _server_properties(broker_url)
    assert props["product"] == "RabbitMQ"
    assert tuple(int(p) for p in props["version"].split(".")[:2]) >= (3, 3)


@pytest.mark.hutch_only
def test_hutch_is_named_in_platform_and_information(broker_url):
    props = _server_properties(broker_url)
    assert props["version"] == "3.10.8"  # the release whose behaviour Hutch follows
    assert "Hutch" in props["platform"] and "Hutch" in props["information"]


def test_kombu_raises_the_prefetch_of_a_running_consumer(broker_url):
    """What Celery does for an ETA task: prefetch 1, one message held unacked, then the
    prefetch raised to 2 with kombu's choice of ``global``: the consumer gets the next
    message without acking the first."""
    name = f"dialect.q.{uuid.uuid4().hex[:8]}"
    with kombu.Connection(broker_url, connect_timeout=5) as conn:
        assert conn.qos_semantics_matches_spec is False
        queue = kombu.Queue(name, auto_delete=True)
        got: list[kombu.Message] = []
        with conn.Consumer(queue, callbacks=[lambda body, msg: got.append(msg)]) as consumer:
            apply_global = not conn.qos_semantics_matches_spec  # as celery's worker does
            consumer.qos(prefetch_count=1, apply_global=apply_global)
            producer = conn.Producer()
            for body in ("held", "next"):
                producer.publish(body, routing_key=name)
            _drain_until(conn, lambda: len(got) >= 1)
            assert [m.body for m in got] == ["held"]
            consumer.qos(prefetch_count=2, apply_global=apply_global)
            _drain_until(conn, lambda: len(got) >= 2)
            assert [m.body for m in got] == ["held", "next"]
            for m in got:
                m.ack()


def _drain_until(conn, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        try:
            conn.drain_events(timeout=0.2)
        except TimeoutError:
            pass
