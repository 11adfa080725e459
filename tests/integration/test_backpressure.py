"""A consumer that stops reading its socket must not make the broker buffer its backlog."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import pika
from pamqp import commands, frame


def _open_raw_consumer(url: str, queue: str) -> socket.socket:
    """A raw no-ack consumer that, once subscribed, never reads another byte."""
    u = urlparse(url)
    sock = socket.create_connection((u.hostname, u.port or 5672), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    buf = b""

    def recv():
        nonlocal buf
        while True:
            try:
                consumed, _ch, value = frame.unmarshal(buf)
                buf = buf[consumed:]
                return value
            except Exception:
                buf += sock.recv(4096)

    sock.sendall(b"AMQP\x00\x00\x09\x01")
    recv()
    sock.sendall(frame.marshal(commands.Connection.StartOk(
        client_properties={}, mechanism="PLAIN", response="\0guest\0guest"), 0))
    tune = recv()
    sock.sendall(frame.marshal(commands.Connection.TuneOk(
        channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0), 0))
    sock.sendall(frame.marshal(commands.Connection.Open(virtual_host="/"), 0))
    recv()
    sock.sendall(frame.marshal(commands.Channel.Open(), 1))
    recv()
    sock.sendall(frame.marshal(commands.Basic.Consume(queue=queue, no_ack=True), 1))
    return sock


def test_slow_no_ack_consumer_leaves_backlog_in_queue(broker_url: str, qname: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.queue_declare(qname)
    body = b"z" * 10_000
    total = 3000  # 30 MB
    for _ in range(total):
        ch.basic_publish("", qname, body)
    deadline = time.monotonic() + 10  # RabbitMQ counts publishes asynchronously
    while ch.queue_declare(qname, passive=True).method.message_count < total:
        assert time.monotonic() < deadline, "publishes never all arrived"
        time.sleep(0.05)
    sock = _open_raw_consumer(broker_url, qname)
    try:
        time.sleep(1.5)
        ready = ch.queue_declare(qname, passive=True).method.message_count
        # Only what fits in socket buffers may have left the queue (a few MB at most).
        assert ready > total * 0.6, f"broker pushed {total - ready} messages into a stalled socket"
    finally:
        sock.close()
        ch.queue_delete(qname)
        conn.close()
