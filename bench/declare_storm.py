"""Durable declares against everybody else: how long a pipelined storm of durable
queue.declare takes, what a bystander's publish -> confirm costs meanwhile, and what one
durable declare costs once many queues exist (the definitions file is rewritten whole).

    python bench/declare_storm.py [--queues 10000]

Hutch only (RabbitMQ's declares go through Mnesia/Khepri, another story).  Uses pika
for the bystander and a raw socket (pamqp frames) to pipeline the declares.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import threading
import time

import pika
from pamqp import commands as cmd
from pamqp import frame as pframe

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brokers import Hutch
from rawamqp import RawAMQP


def bystander(url: str, stop: threading.Event, latencies: list[float]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare("bystander", durable=True)
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2)
    while not stop.is_set():
        t = time.monotonic()
        ch.basic_publish("", "bystander", b"x", props)
        latencies.append(time.monotonic() - t)
    conn.close()


def pipelined_declares(port: int, names: list[str]) -> float:
    """Send every declare in one go, wait for the last declare-ok; seconds taken."""
    raw = RawAMQP("127.0.0.1", port)
    sock: socket.socket = raw.sock
    payload = b"".join(pframe.marshal(cmd.Queue.Declare(queue=n, durable=True), 1) for n in names)
    t = time.monotonic()
    sock.sendall(payload)
    # Count the method frames that come back (each declare-ok), without decoding them.
    buf, off, got = b"", 0, 0
    while got < len(names):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf = buf[off:] + chunk
        off = 0
        while len(buf) - off >= 7:
            ftype, _channel, size = struct.unpack_from(">BHI", buf, off)
            if len(buf) - off < 8 + size:
                break
            got += ftype == 1
            off += 8 + size
    took = time.monotonic() - t
    raw.close()
    return took


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queues", type=int, default=10000)
    args = ap.parse_args()
    broker = Hutch()
    broker.start()
    try:
        latencies: list[float] = []
        stop = threading.Event()
        t = threading.Thread(target=bystander, args=(broker.url, stop, latencies))
        t.start()
        while not latencies:
            time.sleep(0.01)
        before = len(latencies)
        took = pipelined_declares(broker.port, [f"storm-{i}" for i in range(args.queues)])
        stop.set()
        t.join()
        during = latencies[before:]
        print(f"{args.queues} pipelined durable declares: {took:.2f} s to the last declare-ok")
        print(f"bystander publish->confirm meanwhile: {len(during)} confirms, p50 "
              f"{pct(during, 0.5):.1f} ms, p99 {pct(during, 0.99):.1f} ms, max "
              f"{max(during) * 1000:.1f} ms")
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        ch = conn.channel()
        one = []
        for i in range(20):
            t0 = time.monotonic()
            ch.queue_declare(f"one-{i}", durable=True)
            one.append(time.monotonic() - t0)
        conn.close()
        print(f"one durable declare with {args.queues} queues defined: median "
              f"{pct(one, 0.5):.0f} ms, max {max(one) * 1000:.0f} ms")
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
