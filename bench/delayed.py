"""Delayed messages (the x-delayed-message exchange): memory and recovery with a large
backlog, and how exactly messages fire while the broker is busy with other work.

1. Memory: a private ``hutch serve`` (own data dir, free ports) declares a durable
   x-delayed-message exchange and takes N persistent 100-byte messages, with publisher
   confirms in windows, each with an ``x-delay`` spread over 1-2 hours (so none fires
   during the run), published in shuffled due order.  Reports the broker's RSS
   (/proc/<pid>/status VmRSS) before and after and the bytes per delayed message; then
   a clean restart and a kill -9 restart: time until the broker is ready, time until
   the management API shows all N messages delayed again, and RSS.
2. Firing accuracy, with that backlog still waiting: F messages due over S seconds,
   published through the same exchange, while another process publishes and consumes
   persistent messages on another queue (--load-rate msgs/s).  A consumer stamps each
   arrival; lateness = arrival - due, where due = the publisher's clock when it sent
   the message + its x-delay (the broker's due is later by the publish latency, so an
   arrival before it is a real early firing).  Reports p50/p99/max lateness, early
   arrivals (must be 0), duplicates (must be 0) and missing ones.

RabbitMQ in CI has no delayed-message plugin (it answers 503 unknown exchange type), so
this reports Hutch only.

    python3 bench/delayed.py                                 # 1,000,000 delayed, 2,000 fired
    python3 bench/delayed.py --messages 20000 --fire 500 --fire-seconds 5   # quick run
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import select
import signal
import statistics
import struct
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brokers import Hutch, free_port, machine, rss_mb
from pamqp import body as pbody
from pamqp import commands, frame, header
from rawamqp import RawAMQP

_ACK = b"\x00\x3c\x00\x50"
EXCHANGE = "bench.delayed"
HOUR_MS = 3_600_000


def publish_frame(exchange: str, key: str, body: bytes, delay_ms: int | None,
                  persistent: bool = True) -> bytes:
    props = commands.Basic.Properties(delivery_mode=2 if persistent else 1,
                                      headers={"x-delay": delay_ms} if delay_ms is not None else None)
    return (frame.marshal(commands.Basic.Publish(exchange=exchange, routing_key=key), 1)
            + frame.marshal(header.ContentHeader(0, len(body), props), 1)
            + frame.marshal(pbody.ContentBody(body), 1))


def publish(c: RawAMQP, n: int, make, window: int = 2000, base: int = 0,
            chunk: int = 200, pace: float = 0.0) -> float:
    """Publish ``make(i)`` for i < n with confirms, at most ``window`` unconfirmed,
    ``chunk`` messages per send; returns the seconds it took.  (Confirm.Select must
    have been sent; ``base`` is the number of messages this channel published before,
    as delivery tags go on.)  With ``chunk=1`` each message is made just before it is
    sent, ``pace`` seconds after the one before, and the confirms are read only when
    there are some: so a message's x-delay is computed within a fraction of a
    millisecond of the broker reading it (a burst would queue up in the broker, whose
    countdown starts when it reads the message, as the plugin's does)."""
    sent = confirmed = 0
    buf = b""
    start = time.perf_counter()
    while confirmed < n:
        frames = []
        while sent < n and sent - confirmed < window and len(frames) < chunk:
            frames.append(make(sent))
            sent += 1
        if frames:
            c.sock.sendall(b"".join(frames))
            if pace:
                time.sleep(pace)
        if sent < n and sent - confirmed < window and not select.select([c.sock], [], [], 0)[0]:
            continue  # nothing to read: send the next one now
        buf += c.sock.recv(1 << 20)
        off = 0
        while len(buf) - off >= 8:
            _t, _c, fsize = struct.unpack_from(">BHI", buf, off)
            if len(buf) - off < fsize + 8:
                break
            if buf[off + 7: off + 11] == _ACK:
                (tag,) = struct.unpack_from(">Q", buf, off + 11)
                confirmed = max(confirmed, tag - base)
            elif buf[off + 7: off + 11] == b"\x00\x3c\x00\x78":
                raise RuntimeError("a publish was nacked")
            off += fsize + 8
        buf = buf[off:]
    return time.perf_counter() - start


def setup(c: RawAMQP, queue: str, key: str) -> None:
    c.send(1, commands.Exchange.Declare(exchange=EXCHANGE, exchange_type="x-delayed-message",
                                        durable=True, arguments={"x-delayed-type": "direct"}))
    c.recv()
    c.declare(queue, durable=True)
    c.send(1, commands.Queue.Bind(queue=queue, exchange=EXCHANGE, routing_key=key))
    c.recv()


def delayed_count(http_port: int) -> int | None:
    """messages_delayed of the exchange from the management API (None if not shown)."""
    req = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/exchanges/%2F/{EXCHANGE}")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            value = json.load(r).get("messages_delayed")
    except OSError:
        return None
    return value if isinstance(value, int) else None


def wait_delayed(http_port: int, n: int, timeout: float) -> tuple[float | None, int | None]:
    """(seconds until messages_delayed reads n, or None if it never did in ``timeout``;
    the last count read, None if the API does not show the field)."""
    start = time.monotonic()
    got = None
    while time.monotonic() - start < timeout:
        got = delayed_count(http_port)
        if got == n:
            return time.monotonic() - start, got
        time.sleep(0.05)
    return None, got


def settle_rss(pid: int, seconds: float = 3.0) -> float:
    time.sleep(seconds)
    return rss_mb(pid)


class Peak(threading.Thread):
    """The broker's peak RSS while something runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.2)


def memory(broker: Hutch, http_port: int, n: int, size: int) -> None:
    c = RawAMQP("127.0.0.1", broker.port)
    setup(c, "bench.due", "due")
    c.send(1, commands.Confirm.Select())
    c.recv()
    empty = settle_rss(broker.pid(), 1.0)
    variants = 10_000  # distinct delays over 1-2 h, pre-encoded; published shuffled
    body = b"x" * size
    frames = [publish_frame(EXCHANGE, "due", body, HOUR_MS + HOUR_MS * j // variants)
              for j in range(variants)]
    peak = Peak(broker.pid())
    peak.start()
    took = publish(c, n, lambda i: frames[(i * 7919) % variants])
    peak.stop.set()
    c.close()
    full = settle_rss(broker.pid())
    shown = delayed_count(http_port)
    print(f"publish: {n:,} persistent delayed messages of {size} B in {took:.1f} s "
          f"({n / took:,.0f}/s, confirmed); messages_delayed = {shown}")
    print(f"RSS: {empty:.0f} MB before, {full:.0f} MB after (peak {peak.peak:.0f} MB) -> "
          f"{(full - empty) * 2**20 / n:,.0f} bytes per delayed message")
    for how in ("clean restart", "kill -9"):
        proc = broker.proc
        assert proc is not None
        t0 = time.monotonic()
        if how == "clean restart":
            proc.send_signal(signal.SIGTERM)
        else:
            proc.kill()
        proc.wait(300)
        stopped = time.monotonic() - t0
        t0 = time.monotonic()
        broker.start()
        ready = time.monotonic() - t0
        counted, last = wait_delayed(http_port, n, timeout=max(30.0, n / 5000))
        rss = settle_rss(broker.pid())
        if counted is not None:
            print(f"{how}: stop {stopped:.1f} s, ready after {ready:.1f} s, all {n:,} delayed "
                  f"again after {ready + counted:.1f} s", end="")
        else:
            print(f"{how}: stop {stopped:.1f} s, ready after {ready:.1f} s, but messages_delayed "
                  f"reads {last} of {n:,}", end="")
        print(f"; RSS {rss:.0f} MB ({(rss - empty) * 2**20 / n:,.0f} bytes per message)")


def load(port: int, role: str, rate: int, stop: mp.Event, done: mp.Value) -> None:  # type: ignore[valid-type]
    """Background work on another queue: publish persistent messages with confirms at
    ``rate`` per second (0 = as fast as possible), or consume them (no-ack)."""
    c = RawAMQP("127.0.0.1", port)
    c.declare("bench.load", durable=True)
    if role == "consume":
        c.send(1, commands.Basic.Consume(queue="bench.load", no_ack=True))
        c.recv()
        c.sock.settimeout(0.5)
        while not stop.is_set():
            try:
                data = c.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not data:
                return
            done.value += data.count(b"\x00\x3c\x00\x3c")  # basic.deliver method ids (close enough)
        return
    c.send(1, commands.Confirm.Select())
    c.recv()
    one = publish_frame("", "bench.load", b"x" * 100, None)
    batch = 100
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        publish(c, batch, lambda _i: one, window=batch, base=sent)
        sent += batch
        done.value = sent
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def spaced(port: int, n: int, gap: float, first: int, size: int) -> None:
    """The no-delay baseline's publisher, in a process of its own: ``n`` messages
    routed at once, ``gap`` seconds apart, each carrying the moment it was sent.  From
    another process, as the broker's fires are, so the consumer's wake-up (slow on an
    idle VM) is in the baseline too."""
    c = RawAMQP("127.0.0.1", port)
    c.send(1, commands.Confirm.Select())
    c.recv()
    for i in range(n):
        publish(c, 1, lambda _i, i=i: publish_frame(
            EXCHANGE, "fired", f"{first + i},{time.time():.6f},".encode().ljust(size, b"x"), None),
            window=1, base=i)
        time.sleep(gap)
    c.close()


class Arrivals(threading.Thread):
    """Consumes the fired messages; records (sequence, arrival - due) for each."""

    def __init__(self, port: int, queue: str) -> None:
        super().__init__(daemon=True)
        self.c = RawAMQP("127.0.0.1", port)
        self.c.send(1, commands.Basic.Consume(queue=queue, no_ack=True))
        self.c.recv()
        self.got: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        buf = self.c.buf
        self.c.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = self.c.sock.recv(1 << 20)
            except TimeoutError:
                continue
            now = time.time()
            if not data:
                return
            buf += data
            off = 0
            while len(buf) - off >= 8:
                ftype, _c, fsize = struct.unpack_from(">BHI", buf, off)
                if len(buf) - off < fsize + 8:
                    break
                if ftype == 3:
                    seq, due = buf[off + 7: off + 7 + fsize].split(b",")[:2]
                    self.got.append((int(seq), now - float(due)))
                off += fsize + 8
            buf = buf[off:]


def firing(broker: Hutch, fire: int, seconds: float, load_rate: int, size: int,
           persistent: bool = True) -> bool:
    c = RawAMQP("127.0.0.1", broker.port)
    setup(c, "bench.fired", "fired")
    c.send(1, commands.Confirm.Select())
    c.recv()
    arrivals = Arrivals(broker.port, "bench.fired")
    arrivals.start()
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    published, consumed = ctx.Value("q", 0), ctx.Value("q", 0)
    loaders = [ctx.Process(target=load, args=(broker.port, "publish", load_rate, stop, published)),
               ctx.Process(target=load, args=(broker.port, "consume", 0, stop, consumed))]
    if load_rate < 0:
        loaders = []  # no background load
    for p in loaders:
        p.start()
    time.sleep(2.0)  # the load is running
    pace = 0.002  # between publishes: the broker reads each as it is sent
    lead = 2.0 + fire * pace
    first_due = time.time() + lead

    def make(i: int) -> bytes:
        due = first_due + seconds * i / fire
        now = time.time()
        delay = max(1, int((due - now) * 1000) + 1)
        # The broker's due is its clock in whole ms (as the plugin's) + x-delay: at
        # least the publisher's whole-ms clock at sending + x-delay.
        body = f"{i},{(int(now * 1000) + delay) / 1000:.6f},".encode()
        return publish_frame(EXCHANGE, "fired", body.ljust(size, b"x"), delay, persistent)

    load0, t0 = published.value, time.monotonic()
    took = publish(c, fire, make, window=500, chunk=1, pace=pace)
    last_due = first_due + seconds
    while len(arrivals.got) < fire and time.time() < last_due + 10:
        time.sleep(0.1)
    time.sleep(0.5)  # anything fired twice would come now
    load_rate_seen = (published.value - load0) / (time.monotonic() - t0)
    fired = list(arrivals.got)
    # The same path without a delay (no x-delay: routed at once), under the same load:
    # how much of the lateness is publish + delivery rather than the timer.
    arrivals.got.clear()
    base = 200
    gap = seconds / fire
    sender = mp.get_context("spawn").Process(target=spaced, args=(broker.port, base, gap, fire, size))
    sender.start()
    sender.join(base * gap + 30)
    time.sleep(0.5)
    path = sorted(ms * 1000 for _seq, ms in arrivals.got)
    stop.set()
    arrivals.stop.set()
    for p in loaders:
        p.join(10)
    c.close()
    late = sorted(ms * 1000 for _seq, ms in fired)
    seqs = [seq for seq, _ms in fired]
    dupes = len(seqs) - len(set(seqs))
    missing = fire - len(set(seqs))
    early = sum(1 for ms in late if ms < 0)
    print(f"publish of the {fire:,} took {took:.2f} s; background load {load_rate_seen:,.0f} msgs/s "
          f"published (persistent, confirmed) and consumed on another queue")
    if late:
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        print(f"lateness (arrival - due): p50 {statistics.median(late):.1f} ms, p99 {p99:.1f} ms, "
              f"max {late[-1]:.1f} ms; early {early}, duplicates {dupes}, missing {missing}")
    else:
        print(f"nothing arrived: missing {missing}")
    if path:
        print(f"the same path without a delay ({len(path)} messages {gap * 1000:.0f} ms apart from "
              f"another process, publish -> arrival): p50 "
              f"{statistics.median(path):.1f} ms, p99 {path[min(len(path) - 1, int(len(path) * 0.99))]:.1f}"
              f" ms, max {path[-1]:.1f} ms")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    return early == 0 and dupes == 0 and missing == 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", "--messages", type=int, default=1_000_000,
                   help="delayed messages in the backlog (default 1,000,000; 0: none)")
    p.add_argument("--size", type=int, default=100, help="body bytes (default 100)")
    p.add_argument("--fire", type=int, default=2000, help="messages timed as they fire (default 2000)")
    p.add_argument("--fire-seconds", type=float, default=20.0,
                   help="the fired messages' due times spread over this (default 20)")
    p.add_argument("--load-rate", type=int, default=2000,
                   help="background load, msgs/s published and consumed (default 2000; 0 = flat out; "
                        "-1 = none)")
    p.add_argument("--fire-transient", action="store_true",
                   help="the timed messages are transient (default persistent, into a durable "
                        "queue: their firing waits for the log's fsync)")
    a = p.parse_args()
    print(machine())
    print("Hutch only: RabbitMQ in CI has no delayed-message plugin (503 unknown exchange type)")
    http_port = free_port()
    broker = Hutch("--http-port", str(http_port))
    broker.start()
    try:
        if a.messages:
            memory(broker, http_port, a.messages, a.size)
        waiting = delayed_count(http_port)
        print(f"firing: {a.fire:,} {'transient' if a.fire_transient else 'persistent'} "
              f"messages due over {a.fire_seconds:g} s with "
              f"{waiting or 0:,} others waiting")
        ok = firing(broker, a.fire, a.fire_seconds, a.load_rate, a.size,
                    persistent=not a.fire_transient)
    finally:
        broker.stop()
    if not ok:
        sys.exit("early, duplicate or missing firings")


if __name__ == "__main__":
    main()
