"""Backlogs larger than the in-memory window: order, counts and restarts stay right."""

from __future__ import annotations

import os
import time

import pika
import pytest

from hutch.broker.queue import WINDOW, WINDOW_BYTES, WINDOW_MAX
from tests.brokerproc import HutchProcess, drain
from tests.toolproc import hutch_cmd

N = WINDOW * 3 + 123
# Bodies this big fill WINDOW_BYTES with WINDOW messages, so paging starts at WINDOW
# (smaller ones may stay in memory up to WINDOW_MAX).
PAD = WINDOW_BYTES // WINDOW


def _padded(tag: str) -> bytes:
    return tag.encode().ljust(PAD, b".")


def _publish(ch, queue: str, bodies: list[bytes], persistent: bool = True) -> None:
    props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
    for b in bodies:
        ch.basic_publish("", queue, b, props)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.hutch_only
def test_large_backlog_keeps_order_across_paging_and_restart() -> None:
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("big", durable=True)
        bodies = [_padded(f"m{i:06d}") for i in range(N)]
        _publish(ch, "big", bodies[: N // 2])
        _publish(ch, "big", [b"transient-in-the-middle"], persistent=False)
        _publish(ch, "big", bodies[N // 2 :])
        assert ch.queue_declare("big", durable=True, passive=True).method.message_count == N + 1
        # Take a few from the head, leave one unacked, then restart.
        _m1, _, b1 = ch.basic_get("big")
        _m2, _, b2 = ch.basic_get("big", auto_ack=True)
        assert (b1, b2) == (bodies[0], bodies[1])
        conn.close()  # b1 goes back to the head, redelivered
        proc.stop()
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        assert ch.queue_declare("big", durable=True, passive=True).method.message_count == N - 1
        got = drain(ch, "big")
        assert [b for b, _ in got] == [bodies[0], *bodies[2:]]  # transient one is gone
        assert got[0][1] is True and not any(r for _, r in got[1:])
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_paged_backlog_consumed_with_a_consumer_in_order_and_purge() -> None:
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("big2", durable=True)
        bodies = [_padded(f"x{i}") for i in range(N)]
        _publish(ch, "big2", bodies)
        ch.queue_declare("big2", durable=True, passive=True)  # a round trip: all routed
        ch.basic_qos(prefetch_count=500)
        seen = []
        for method, _, body in ch.consume("big2", inactivity_timeout=2):
            if method is None:
                break
            seen.append(body)
            ch.basic_ack(method.delivery_tag, multiple=True)
            if len(seen) == N // 2:
                break
        ch.cancel()
        assert seen == bodies[: N // 2]
        # Purge what is left, paged-out entries included; nothing comes back after a restart.
        assert ch.queue_purge("big2").method.message_count == N - N // 2
        conn.close()
        proc.stop()
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        assert conn.channel().queue_declare("big2", durable=True, passive=True).method.message_count == 0
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_max_length_drop_head_with_paged_backlog() -> None:
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        limit = WINDOW + 500
        ch.queue_declare("capped", durable=True, arguments={"x-max-length": limit})
        bodies = [_padded(f"c{i}") for i in range(limit + 700)]
        _publish(ch, "capped", bodies)
        assert ch.queue_declare("capped", durable=True, passive=True).method.message_count == limit
        got = [b for b, _ in drain(ch, "capped")]
        assert got == bodies[-limit:]
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_memory_stays_bounded_with_a_backlog() -> None:
    """100k persistent 1 KB messages (100 MB of bodies) must not live in RAM."""
    proc = HutchProcess("--log-level", "warning")
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("mem", durable=True)
        body = os.urandom(1000)
        before = _rss_kb(proc.proc.pid)
        for _ in range(100_000):
            ch.basic_publish("", "mem", body, pika.BasicProperties(delivery_mode=2))
        assert ch.queue_declare("mem", durable=True, passive=True).method.message_count == 100_000
        grown_mb = (_rss_kb(proc.proc.pid) - before) / 1024
        assert grown_mb < 60, f"RSS grew {grown_mb:.0f} MB for 100 MB of queued bodies"
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_large_persistent_bodies_survive_kill9() -> None:
    """20 MiB bodies go to disk without being re-joined and come back intact."""
    proc = HutchProcess()
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("large", durable=True)
        bodies = [os.urandom(20 * 1024 * 1024), b"", os.urandom(131072)]
        for b in bodies:
            ch.basic_publish("", "large", b, pika.BasicProperties(delivery_mode=2))
        proc.kill()
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        assert [b for b, _ in drain(ch, "large")] == bodies
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_operators_see_paged_and_recovered_messages() -> None:
    """list_queues / the management API count messages that are paged out or were just
    recovered (not only those held in memory)."""
    import subprocess

    proc = HutchProcess(http=True)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("seen", durable=True)
        _publish(ch, "seen", [_padded("s")] * (WINDOW + 700))
        conn.close()
        assert _queue_info(proc, "seen")["messages_paged_out"] > 0
        proc.stop()
        proc.start()
        out = subprocess.run([*hutch_cmd(), "ctl", "--url", proc.http_url, "--user", "guest",
                              "--password", "guest", "-q", "list_queues", "name", "messages_ready"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        assert f"seen\t{WINDOW + 700}" in out
        info = _queue_info(proc, "seen")
        assert info["messages_ready"] == WINDOW + 700
        assert info["messages_paged_out"] == WINDOW + 700  # recovered: all on disk until read
    finally:
        proc.stop()


def _queue_info(proc: HutchProcess, queue: str) -> dict:
    import json
    import urllib.request

    req = urllib.request.Request(proc.http_url + "api/queues/%2F/" + queue,
                                 headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.hutch_only
def test_small_messages_stay_in_memory_up_to_the_larger_window() -> None:
    """A consumer just behind the producer should not make the queue page out what it is
    about to deliver: small messages stay in memory up to WINDOW_MAX, big ones page at
    WINDOW (WINDOW_BYTES of bodies)."""
    proc = HutchProcess(http=True)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("small", durable=True)
        ch.queue_declare("large", durable=True)
        _publish(ch, "small", [b"tiny"] * (WINDOW * 2))
        _publish(ch, "large", [_padded("big")] * (WINDOW * 2))
        ch.queue_declare("large", durable=True, passive=True)  # a round trip: all routed
        # Written and paged out (polled, not slept on: the writer thread takes its time).
        large = _wait_queue(proc, "large", lambda i: i["messages_paged_out"] > WINDOW // 2,
                            "large messages paged out")
        small = _queue_info(proc, "small")
        assert (small["messages_ready"], small["messages_paged_out"]) == (WINDOW * 2, 0)
        assert large["messages_ready"] == WINDOW * 2
        assert WINDOW // 2 < large["messages_paged_out"] <= WINDOW
        assert large["messages_ram"] == WINDOW * 2 - large["messages_paged_out"]
        assert WINDOW * 2 < WINDOW_MAX  # the premise of the "small" half
        conn.close()
    finally:
        proc.stop()


def _wait_queue(proc: HutchProcess, queue: str, predicate, what: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = _queue_info(proc, queue)
        if predicate(info):
            return info
        assert time.monotonic() < deadline, (
            f"{what}: ram {info['messages_ram']}, paged out {info['messages_paged_out']}")
        time.sleep(0.05)


@pytest.mark.hutch_only
def test_large_messages_page_out_by_bytes_not_count() -> None:
    """1 MiB messages: the in-memory window holds WINDOW_BYTES of them (4), not WINDOW
    (2,048, i.e. 2 GiB); the rest are paged out and come back in order."""
    proc = HutchProcess(http=True)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("huge", durable=True)
        size = 1024 * 1024
        bodies = [f"h{i:04d}".encode().ljust(size, b"-") for i in range(40)]
        _publish(ch, "huge", bodies)
        in_ram = WINDOW_BYTES // size
        info = _wait_queue(proc, "huge", lambda q: q["messages_paged_out"] == len(bodies) - in_ram,
                           "large messages stayed in memory")
        assert (info["messages_ready"], info["messages_ram"]) == (len(bodies), in_ram)
        # The queue's "memory" counts what is in memory, not the 36 MiB on disk.
        assert in_ram * size <= info["memory"] < (in_ram + 1) * size
        # Readable in order, refilled a few at a time.
        assert [b for b, _ in drain(ch, "huge")] == bodies
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_tail_of_a_burst_pages_out_without_another_publish() -> None:
    """Messages beyond the window wait in memory only until the store has written
    them, not until the next publish comes along to page them out."""
    proc = HutchProcess(http=True)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("burst", durable=True)
        extra = 700
        _publish(ch, "burst", [_padded(f"b{i}") for i in range(WINDOW + extra)])
        ch.queue_declare("burst", durable=True, passive=True)  # a round trip: all routed
        info = _wait_queue(proc, "burst", lambda q: q["messages_paged_out"] == extra,
                           "the tail of the burst stayed in memory")
        assert info["messages_ram"] == WINDOW
        conn.close()
    finally:
        proc.stop()
