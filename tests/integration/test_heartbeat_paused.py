"""Heartbeats while the broker is not reading a connection.

When the broker stops reading a client's socket (memory alarm, flow control, a
client that does not read what it is sent), the client's heartbeats wait unread
in the socket: that silence must not get the client dropped for "missed
heartbeats".  RabbitMQ pauses its heartbeat receiver while a connection is
blocked (rabbit_reader / rabbit_heartbeat:pause_monitor).
"""

from __future__ import annotations

import socket
import struct
import time

import pika
import pika.exceptions
import pytest
from pamqp import commands as cmd
from pamqp import frame as pframe
from pamqp import heartbeat as pheartbeat

from tests.brokerproc import HutchProcess
from tests.integration.rawamqp import PROTOCOL_HEADER, RawConnection
from tests.mgmt import Api

HEARTBEAT = 1  # seconds: the broker drops a silent client after 2 of them


@pytest.mark.hutch_only
def test_blocked_publisher_survives_many_heartbeat_periods_then_publishes() -> None:
    # A watermark of one byte: the memory alarm is on from the start.
    proc = HutchProcess("--memory-high-watermark", "1", http=True)
    proc.start()
    try:
        params = pika.URLParameters(proc.url)
        params.heartbeat = HEARTBEAT
        params.blocked_connection_timeout = 120
        pub = pika.BlockingConnection(params)
        events: list[str] = []
        pub.add_on_connection_blocked_callback(lambda *a: events.append("blocked"))
        pub.add_on_connection_unblocked_callback(lambda *a: events.append("unblocked"))
        ch = pub.channel()
        ch.queue_declare("hb-blocked")
        for _ in range(150):  # the first publish blocks it (the rest wait in the socket)
            ch.basic_publish("", "hb-blocked", b"x" * 1000)
        deadline = time.monotonic() + 10
        while "blocked" not in events:
            assert time.monotonic() < deadline, "the memory alarm never blocked the publisher"
            pub.process_data_events(time_limit=0.1)

        # Stay blocked for several heartbeat timeouts; pika keeps sending heartbeats
        # the broker does not read.
        until = time.monotonic() + 8 * HEARTBEAT
        while time.monotonic() < until:
            pub.process_data_events(time_limit=0.1)
        assert pub.is_open
        assert "missed heartbeats" not in proc.log_text()

        cons = pika.BlockingConnection(pika.URLParameters(proc.url))
        cch = cons.channel()
        # The watermark back to the default: the alarm clears.
        r = Api(proc.http_url).put("hutch/vm-memory-high-watermark", json={"relative": 0.6})
        assert r.status_code == 204, r.text
        deadline = time.monotonic() + 10
        while not events or events[-1] != "unblocked":
            assert time.monotonic() < deadline, f"never unblocked: {events}"
            pub.process_data_events(time_limit=0.1)
        while cch.basic_get("hb-blocked", auto_ack=True)[0] is not None:
            pass  # the publishes that waited in the socket
        # The same connection publishes (confirmed) after the alarm.
        ch.confirm_delivery()
        ch.basic_publish("", "hb-blocked", b"after the alarm")
        assert cch.basic_get("hb-blocked", auto_ack=True)[2] == b"after the alarm"
        assert "missed heartbeats" not in proc.log_text()
        pub.close()
        cons.close()
    finally:
        proc.stop()


def _raw_consumer(url: str, queue: str, heartbeat: int) -> RawConnection:
    """A no-ack consumer with a small receive buffer, so the broker's writes back up."""
    conn = RawConnection(url, timeout=10)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    conn.send_bytes(PROTOCOL_HEADER)
    conn.expect(0, cmd.Connection.Start)
    conn.send(0, cmd.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                        response=f"\0{conn.user}\0{conn.password}"))
    tune = conn.expect(0, cmd.Connection.Tune)
    conn.send(0, cmd.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max,
                                       heartbeat=heartbeat))
    conn.send(0, cmd.Connection.Open(virtual_host="/"))
    conn.expect(0, cmd.Connection.OpenOk)
    conn.open_channel(1)
    conn.send(1, cmd.Basic.Consume(queue=queue, no_ack=True))
    return conn


def _frames(buf: bytes) -> tuple[list[object], bytes]:
    out = []
    while len(buf) >= 7:
        size = struct.unpack_from(">I", buf, 3)[0]
        if len(buf) < size + 8:
            break
        _n, _ch, value = pframe.unmarshal(buf[: size + 8])
        out.append(value)
        buf = buf[size + 8:]
    return out, buf


def test_slow_reader_is_not_dropped_while_the_broker_waits_for_it(
        broker_url: str, qname: str) -> None:
    """A consumer that reads slowly makes the broker stop reading it (TCP backpressure);
    it keeps sending heartbeats and must not be dropped for missing them."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.queue_declare(qname, auto_delete=False)
    body = b"s" * 10_000
    total = 1000  # 10 MB: far more than the socket buffers hold
    for _ in range(total):
        ch.basic_publish("", qname, body)
    deadline = time.monotonic() + 10
    while ch.queue_declare(qname, passive=True).method.message_count < total:
        assert time.monotonic() < deadline, "publishes never all arrived"
        time.sleep(0.05)

    raw = _raw_consumer(broker_url, qname, HEARTBEAT)
    hb = pframe.marshal(pheartbeat.Heartbeat(), 0)
    received = 0
    buf = b""
    try:
        # Slowly: ~8 KB/s for several heartbeat timeouts, heartbeats every 0.25 s.
        raw.sock.settimeout(0.25)
        until = time.monotonic() + 6 * HEARTBEAT
        while time.monotonic() < until:
            raw.send_bytes(hb)
            try:
                data = raw.sock.recv(2048)
            except TimeoutError:
                data = b""
            buf += data
            time.sleep(0.25)
        # Then at full speed: every message arrives and the connection is alive.
        deadline = time.monotonic() + 30
        while received < total:
            assert time.monotonic() < deadline, f"only {received} of {total} delivered"
            raw.send_bytes(hb)
            data = raw.sock.recv(1 << 20)
            assert data, "the broker closed the connection"
            frames, buf = _frames(buf + data)
            for f in frames:
                assert not isinstance(f, cmd.Connection.Close), f
                if isinstance(f, cmd.Basic.Deliver):
                    received += 1
        raw.sock.settimeout(5)
        raw.close()
    finally:
        raw.close_socket()
        ch.queue_delete(qname)
        conn.close()


@pytest.mark.hutch_only
def test_client_that_neither_reads_nor_sends_is_still_dropped() -> None:
    """The other side of the slow-reader case: a hung client (takes nothing from its
    socket, sends nothing) is dropped after two heartbeat intervals, backpressure or not."""
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("hung")
        for _ in range(1000):
            ch.basic_publish("", "hung", b"h" * 10_000)
        ch.queue_declare("hung", passive=True)
        raw = _raw_consumer(proc.url, "hung", HEARTBEAT)
        try:
            assert proc.wait_for_log("missed heartbeats from client", timeout=15)
        finally:
            raw.close_socket()
        conn.close()
    finally:
        proc.stop()
