"""Persistent messages in a durable x-delayed-message exchange survive restarts
(clean stop with its snapshot, and kill -9 with a log scan), due before or after
the restart, and fire once; transient ones and non-durable exchanges do not
survive (as in memory).  A private broker per test; hutch_only (RabbitMQ 3.10 in
CI has no delayed-message plugin)."""

from __future__ import annotations

import time
from typing import Any

import pika
import pytest

from tests.brokerproc import HutchProcess

pytestmark = pytest.mark.hutch_only

X = "dx.restart"
Q = "dx.restart.q"


def connect(proc: HutchProcess) -> tuple[Any, Any]:
    conn = pika.BlockingConnection(pika.URLParameters(proc.url))
    ch = conn.channel()
    ch.confirm_delivery()
    return conn, ch


def setup(ch, durable: bool = True) -> None:
    ch.exchange_declare(X, "x-delayed-message", durable=durable,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_declare(Q, durable=True)
    ch.queue_bind(Q, X, "k")


def publish(ch, body: str, delay: int, persistent: bool = True) -> None:
    ch.basic_publish(X, "k", body.encode(), pika.BasicProperties(
        headers={"x-delay": delay}, delivery_mode=2 if persistent else 1))


def collect(ch, until: float) -> list[tuple[str, float, Any]]:
    got = []
    while time.monotonic() < until:
        method, props, body = ch.basic_get(Q, auto_ack=True)
        if method is None:
            time.sleep(0.01)
            continue
        got.append((body.decode(), time.time(), props.headers))
    return got


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_delayed_messages_survive_a_restart_and_fire_once(tmp_path, how):
    proc = HutchProcess(data_dir=str(tmp_path))
    proc.start()
    try:
        conn, ch = connect(proc)
        setup(ch)
        published_at = time.time()
        publish(ch, "before", 300)  # due while the broker is down
        publish(ch, "after", 2500)  # due after it is back
        publish(ch, "transient", 2500, persistent=False)  # lost with the memory
        publish(ch, "now", 0)  # routed at once into the durable queue
        conn.close()
        if how == "kill":
            proc.kill()
        else:
            proc.stop()
        time.sleep(0.5)
        proc.start()
        if how == "stop":  # the snapshot lists the waiting messages: no log scan
            assert "(shutdown snapshot)" in proc.log_text()
        assert "recovered 2 delayed messages" in proc.log_text()
        conn, ch = connect(proc)
        got = collect(ch, time.monotonic() + 3.5)
        bodies = [b for b, _at, _h in got]
        assert sorted(bodies) == ["after", "before", "now"]
        at = {b: t for b, t, _h in got}
        assert at["after"] >= published_at + 2.5  # never early, also after a restart
        headers = {b: h for b, _t, h in got}
        assert headers["after"] == {"x-delay": -2500}
        conn.close()
        # Fired once: nothing comes back after yet another restart.
        proc.kill() if how == "kill" else proc.stop()
        proc.start()
        conn, ch = connect(proc)
        assert collect(ch, time.monotonic() + 0.5) == []
        conn.close()
    finally:
        proc.stop()


def test_non_durable_exchange_keeps_nothing(tmp_path):
    proc = HutchProcess(data_dir=str(tmp_path))
    proc.start()
    try:
        conn, ch = connect(proc)
        setup(ch, durable=False)
        publish(ch, "gone", 800)
        conn.close()
        proc.stop()
        proc.start()
        conn, ch = connect(proc)
        setup(ch, durable=False)
        assert collect(ch, time.monotonic() + 1.2) == []
        conn.close()
    finally:
        proc.stop()


def test_deleted_exchange_messages_do_not_come_back(tmp_path):
    proc = HutchProcess(data_dir=str(tmp_path))
    proc.start()
    try:
        conn, ch = connect(proc)
        setup(ch)
        publish(ch, "dropped", 600)
        ch.exchange_delete(X)
        setup(ch)  # a new incarnation: a new store id
        conn.close()
        proc.kill()
        proc.start()
        conn, ch = connect(proc)
        assert collect(ch, time.monotonic() + 1.0) == []
        conn.close()
    finally:
        proc.stop()


def test_fired_copy_keeps_its_queue_ttl_across_a_restart() -> None:
    """A fired copy is logged before it reaches its queue: the queue's message-ttl must
    be in its record, or after a restart it never expires (review find)."""
    proc = HutchProcess()
    proc.start()
    try:
        conn, ch = connect(proc)
        ch.exchange_declare(X, "x-delayed-message", durable=True,
                            arguments={"x-delayed-type": "direct"})
        ch.queue_declare(Q, durable=True, arguments={"x-message-ttl": 1500})
        ch.queue_bind(Q, X, "k")
        publish(ch, "fired", 100)
        time.sleep(0.5)  # fired: in the queue now
        assert ch.queue_declare(Q, passive=True).method.message_count == 1
        conn.close()
        proc.stop()
        proc.start()
        time.sleep(1.5)  # past its TTL
        conn, ch = connect(proc)
        assert ch.basic_get(Q, auto_ack=True)[0] is None
        conn.close()
    finally:
        proc.stop()


def test_clean_stop_while_messages_fall_due_logs_no_traceback_and_loses_none() -> None:
    """Fire timers went on after the log closed at a clean stop ("cannot schedule new
    futures after shutdown" in the log); now they stop, and every message fires once
    after the restart (review find)."""
    proc = HutchProcess()
    proc.start()
    try:
        conn, ch = connect(proc)
        setup(ch)
        n = 2000
        start = time.time() + 1.5  # due one after the other from then on, 1.5 ms apart
        for i in range(n):
            publish(ch, f"m{i}", max(1, int((start + i * 0.0015 - time.time()) * 1000)))
        conn.close()
        time.sleep(max(0.0, start + 1.0 - time.time()))  # stop in the middle of the fires
        proc.stop()
        assert "Traceback" not in proc.log_text()
        assert "Exception in callback" not in proc.log_text()
        proc.start()
        conn, ch = connect(proc)
        got = collect(ch, time.monotonic() + 3.0)
        conn.close()
        assert sorted(b for b, _t, _h in got) == sorted(f"m{i}" for i in range(n))
    finally:
        proc.stop()
