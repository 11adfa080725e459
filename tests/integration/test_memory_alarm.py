"""The memory alarm on the broker's real resident memory (RSS): it goes on when
queued messages push RSS over the watermark, blocks the publisher, and clears once
a consumer on another connection has drained the queue — which needs the broker to
give freed memory back to the system (broker/alarms.py: malloc_trim).  Hutch only:
RabbitMQ's memory differs too much for the same figures (test_resource_alarms.py has
the tests both run)."""

from __future__ import annotations

import time

import pika
import pytest
from pamqp import body as pbody
from pamqp import commands as cmd
from pamqp import header as pheader

from tests.brokerproc import HutchProcess
from tests.integration.rawamqp import RawConnection
from tests.mgmt import Api

MB = 1024 * 1024
HEADROOM = 48 * MB  # the watermark: RSS at the start plus this


def _node(api: Api) -> dict:
    return api.ok("GET", "nodes")[0]


def _wait_node(api: Api, predicate, what: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        node = _node(api)
        if predicate(node):
            return node
        assert time.monotonic() < deadline, f"{what}: {node['mem_alarm']=} {node['mem_used']=} " \
                                            f"{node['mem_limit']=} {node['queued_message_bytes']=}"
        time.sleep(0.05)


def _set_watermark(api: Api, absolute: int) -> None:
    r = api.put("hutch/vm-memory-high-watermark", json={"absolute": absolute})
    assert r.status_code == 204, r.text


@pytest.fixture
def alarm_hutch():
    proc = HutchProcess(http=True)
    proc.start()
    yield proc
    proc.stop()


@pytest.mark.hutch_only
def test_rss_over_the_watermark_blocks_and_a_drain_clears_it(alarm_hutch) -> None:
    api = Api(alarm_hutch.http_url)
    start = _node(api)
    watermark = start["mem_used"] + HEADROOM
    _set_watermark(api, watermark)
    assert _node(api)["mem_alarm"] is False
    params = pika.URLParameters(alarm_hutch.url)
    params.blocked_connection_timeout = 60
    pub = pika.BlockingConnection(params)
    events: list[tuple[str, float]] = []
    pub.add_on_connection_blocked_callback(
        lambda _c, f: events.append((f.method.reason, time.monotonic())))
    pub.add_on_connection_unblocked_callback(lambda *a: events.append(("unblocked",
                                                                     time.monotonic())))
    ch = pub.channel()
    ch.queue_declare("rss")
    body = b"r" * (16 * 1024)
    sent = 0
    # A look at what the broker said after each publish: a blocked publisher's writes
    # back up in the socket, and pika waits (blocked_connection_timeout) for a write
    # that does not fit, so no more than a socket buffer's worth may follow the block.
    while not events:
        ch.basic_publish("", "rss", body)
        sent += len(body)
        assert sent < 40 * HEADROOM, "RSS grew by 40x the headroom without an alarm"
        pub.process_data_events(time_limit=0)
    assert events[0][0] == "low on memory"
    node = _node(api)
    assert node["mem_alarm"] is True and node["mem_used"] > node["mem_limit"] * 0.95
    # Publishes stop: what the broker holds does not grow while the publisher is blocked.
    queued = node["queued_message_bytes"]
    pub.process_data_events(time_limit=0.5)
    assert _node(api)["queued_message_bytes"] == queued
    assert api.get("health/checks/alarms").status_code == 503

    # A consumer on another connection drains; RSS must come back under the watermark.
    cons = pika.BlockingConnection(pika.URLParameters(alarm_hutch.url))
    cch = cons.channel()
    drained = 0
    while cch.basic_get("rss", auto_ack=True)[0] is not None:
        drained += 1
    drained_at = time.monotonic()
    deadline = drained_at + 10
    while events[-1][0] != "unblocked":
        assert time.monotonic() < deadline, f"not unblocked after the drain: {_node(api)}"
        pub.process_data_events(time_limit=0.05)
        while cch.basic_get("rss", auto_ack=True)[0] is not None:
            drained += 1  # publishes that were in the socket when it was blocked
    node = _wait_node(api, lambda n: not n["mem_alarm"], "alarm still on")
    assert node["mem_used"] < watermark
    assert api.get("health/checks/alarms").json() == {"status": "ok"}
    print(f"\nblocked after {sent / MB:.0f} MiB published ({HEADROOM / MB:.0f} MiB headroom); "
          f"unblocked {events[-1][1] - drained_at:.2f} s after draining {drained} messages")
    ch.basic_publish("", "rss", b"after")
    assert cch.basic_get("rss", auto_ack=True)[2] == b"after"
    pub.close()
    cons.close()


@pytest.mark.hutch_only
def test_half_received_bodies_count_at_once(alarm_hutch) -> None:
    """A body arriving in many frames grows RSS as it arrives: the alarm goes on before
    it is whole (the message-byte estimate samples RSS as soon as it could be over),
    and clears once its publisher goes away half-way."""
    api = Api(alarm_hutch.http_url)
    _set_watermark(api, _node(api)["mem_used"] + 16 * MB)
    raw = RawConnection(alarm_hutch.url, timeout=10).handshake()
    try:
        raw.open_channel(1)
        raw.send(1, cmd.Queue.Declare(queue="partial"))
        raw.expect(1, cmd.Queue.DeclareOk)
        size = 100 * MB
        raw.send(1, cmd.Basic.Publish(exchange="", routing_key="partial"))
        raw.send(1, pheader.ContentHeader(0, size, cmd.Basic.Properties()))
        chunk = b"p" * (raw.frame_max - 8)
        sent = 0
        while sent < 48 * MB:  # three times the headroom, of 100 MiB
            raw.send(1, pbody.ContentBody(chunk))
            sent += len(chunk)
        node = _wait_node(api, lambda n: n["mem_alarm"], "half a body never raised the alarm")
        assert 16 * MB < node["queued_message_bytes"] <= sent
        # The publisher goes away half-way: what it had sent is freed, the alarm clears.
        raw.close_socket()
        node = _wait_node(api, lambda n: not n["mem_alarm"], "alarm not cleared after the close")
        assert node["queued_message_bytes"] == 0
    finally:
        raw.close_socket()

    # A whole multi-frame body is counted exactly once, from receipt to ack.
    conn = pika.BlockingConnection(pika.URLParameters(alarm_hutch.url))
    ch = conn.channel()
    ch.confirm_delivery()
    body = b"w" * 600_000  # five frames
    ch.basic_publish("", "partial", body)
    assert _node(api)["queued_message_bytes"] == len(body)
    got = ch.basic_get("partial", auto_ack=True)[2]
    assert got == body
    assert _node(api)["queued_message_bytes"] == 0
    conn.close()
