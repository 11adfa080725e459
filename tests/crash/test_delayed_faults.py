"""Disk full and I/O errors while delayed messages fire: a fire whose batch does not
reach the disk is not delivered (no consumer sees a copy a crash could take back);
the delayed message stays and fires once the disk takes writes again — exactly once,
also across a kill -9 afterwards.  hutch_only: RabbitMQ 3.10 has no delayed plugin."""

from __future__ import annotations

import json
import time

import pika
import pytest

from tests.brokerproc import HutchProcess

X = "dx.faults"
Q = "dx.faults.q"


def _count(url: str) -> list[str]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    bodies = []
    while True:
        method, _props, body = ch.basic_get(Q, auto_ack=False)
        if method is None:
            break
        bodies.append(body.decode())
    conn.close()  # unacked: they go back to the queue
    return bodies


def _faulty_broker(marker) -> HutchProcess:
    """A broker whose store fails as ``marker`` says (seams.FaultFiles), started."""
    env = {"HUTCH_STORE_FILES": "tests.crash.seams:FaultFiles", "HUTCH_FAULT_FILE": str(marker)}
    proc = HutchProcess(env=env)
    proc.start()
    return proc


def _delayed_setup(url: str) -> tuple[object, object]:
    """A durable delayed exchange bound to a durable queue; (connection, channel)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(X, "x-delayed-message", durable=True,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_declare(Q, durable=True)
    ch.queue_bind(Q, X, "k")
    return conn, ch


@pytest.mark.hutch_only
@pytest.mark.parametrize("errname", ["ENOSPC", "EIO"])
def test_fires_wait_for_the_disk_and_happen_once(tmp_path, errname: str) -> None:
    marker = tmp_path / "fault"
    proc = _faulty_broker(marker)
    try:
        conn, ch = _delayed_setup(proc.url)
        for i in range(20):
            ch.basic_publish(X, "k", f"d{i}".encode(), pika.BasicProperties(
                delivery_mode=2, headers={"x-delay": 400 + 10 * i}))
        conn.close()
        marker.write_text(errname)  # before any of them is due
        time.sleep(1.2)  # all due now, the disk failing
        assert proc.wait_for_log("message store write failed")
        assert (tmp_path / "fault.hits").exists()  # a fire's batch met the fault
        assert _count(proc.url) == []  # no copy handed out that is not on disk
        marker.unlink()
        deadline = time.monotonic() + 10
        while len(_count(proc.url)) < 20:
            assert time.monotonic() < deadline, "the delayed messages never fired"
            time.sleep(0.2)
        assert proc.wait_for_log("message store writes succeed again")
        assert sorted(_count(proc.url)) == sorted(f"d{i}" for i in range(20))
        proc.kill()
        proc.start()
        time.sleep(0.3)  # anything that wrongly stayed delayed is due by now
        assert sorted(_count(proc.url)) == sorted(f"d{i}" for i in range(20))
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_start_with_a_disk_failing_reads_keeps_the_delayed_messages(tmp_path) -> None:
    """The waiting records are read at start for their due times; a disk failing reads
    then must not stop the broker (it did: "cannot open the message store"): they are
    read again once it can, and fire at their own time, not early (review find)."""
    marker = tmp_path / "fault"
    proc = _faulty_broker(marker)
    try:
        conn, ch = _delayed_setup(proc.url)
        ch.basic_publish(X, "k", b"later", pika.BasicProperties(
            delivery_mode=2, headers={"x-delay": 4000}))
        due = time.time() + 4.0
        conn.close()
        proc.kill()
        marker.write_text(json.dumps({"errno": "EIO", "ops": ["pread"]}))
        proc.start()  # reads fail: it starts all the same
        assert proc.wait_for_log("could not be read at start")
        time.sleep(0.5)
        marker.unlink()
        assert _count(proc.url) == []  # not early
        deadline = time.monotonic() + 10
        got: list[str] = []
        while not got:
            assert time.monotonic() < deadline, "the delayed message never fired"
            time.sleep(0.1)
            got = _count(proc.url)
        assert time.time() >= due - 0.05
        assert got == ["later"]
    finally:
        proc.stop()
