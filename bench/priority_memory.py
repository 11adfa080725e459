"""Memory of a priority-queue backlog: N persistent messages over L levels.

Starts a ``hutch serve`` (fresh data dir), publishes N persistent messages with
confirms into a durable queue declared with ``x-max-priority`` L-1, the priorities
cycling over the L levels, and reports the broker's RSS; then restarts it cleanly
(the shutdown snapshot) and times the recovery; then drains the queue with a
no-ack consumer, timing it and checking that the levels come out highest first.
The same is done with a plain durable queue for comparison.  Each level pages on
its own (one store per level), so memory must stay near L in-memory windows, not
grow with N.

    python3 bench/priority_memory.py                  # 1,000,000 over 10 levels
    python3 bench/priority_memory.py -n 100000 -l 10 --size 100
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brokers import Hutch, machine, rss_mb, wait_count
from pamqp import body as pbody
from pamqp import commands, frame, header
from rawamqp import RawAMQP

_ACK = b"\x00\x3c\x00\x50"
_DELIVER = b"\x00\x3c\x00\x3c"


def publish(c: RawAMQP, queue: str, n: int, levels: int, size: int, window: int = 2000) -> float:
    """n persistent messages with confirms, priority i % levels (None: no property);
    the body's first byte is the level.  Returns the seconds it took."""
    c.send(1, commands.Confirm.Select())
    c.recv()
    frames = []
    for lvl in range(levels):
        props = commands.Basic.Properties(delivery_mode=2, priority=lvl if levels > 1 else None)
        frames.append(frame.marshal(commands.Basic.Publish(exchange="", routing_key=queue), 1)
                      + frame.marshal(header.ContentHeader(0, size, props), 1)
                      + frame.marshal(pbody.ContentBody(bytes([lvl]) + b"x" * (size - 1)), 1))
    sent = confirmed = 0
    buf = b""
    start = time.perf_counter()
    while confirmed < n:
        chunk = []
        while sent < n and sent - confirmed < window and len(chunk) < 200:
            chunk.append(frames[sent % levels])
            sent += 1
        if chunk:
            c.sock.sendall(b"".join(chunk))
        buf += c.sock.recv(1 << 20)
        off = 0
        while len(buf) - off >= 8:
            _t, _c, fsize = struct.unpack_from(">BHI", buf, off)
            if len(buf) - off < fsize + 8:
                break
            if buf[off + 7: off + 11] == _ACK:
                (tag,) = struct.unpack_from(">Q", buf, off + 11)
                confirmed = max(confirmed, tag)
            off += fsize + 8
        buf = buf[off:]
    return time.perf_counter() - start


def drain(c: RawAMQP, queue: str, n: int) -> tuple[float, int]:
    """Consume n messages with no-ack; (seconds, times a level rose instead of fell)."""
    c.send(1, commands.Basic.Consume(queue=queue, no_ack=True))
    c.recv()
    got = inversions = 0
    last = 256
    buf = c.buf
    start = time.perf_counter()
    while got < n:
        data = c.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("broker closed the connection")
        buf += data
        off = 0
        while len(buf) - off >= 8:
            ftype, _c, fsize = struct.unpack_from(">BHI", buf, off)
            if len(buf) - off < fsize + 8:
                break
            if ftype == 3:  # a body frame: its first byte is the level
                lvl = buf[off + 7]
                if lvl > last:
                    inversions += 1
                last = lvl
                got += 1
            off += fsize + 8
        buf = buf[off:]
    return time.perf_counter() - start, inversions


class Sampler(threading.Thread):
    """The broker's peak RSS while something runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(0.2)


def run(label: str, levels: int, n: int, size: int) -> dict[str, float]:
    broker = Hutch()
    broker.start()
    queue = "prio-mem"
    out: dict[str, float] = {}
    try:
        c = RawAMQP("127.0.0.1", broker.port)
        args = {"x-max-priority": levels - 1} if levels > 1 else None
        c.declare(queue, durable=True, arguments=args)
        out["rss_empty"] = rss_mb(broker.pid())
        sampler = Sampler(broker.pid())
        sampler.start()
        out["fill_s"] = publish(c, queue, n, levels, size)
        c.close()
        time.sleep(2)
        out["rss_full"] = rss_mb(broker.pid())
        sampler.stop.set()
        out["rss_peak_fill"] = sampler.peak
        t0 = time.monotonic()
        broker.restart()
        wait_count(broker.port, queue, n)
        out["restart_s"] = time.monotonic() - t0
        out["rss_restart"] = rss_mb(broker.pid())
        sampler = Sampler(broker.pid())
        sampler.start()
        c = RawAMQP("127.0.0.1", broker.port)
        out["drain_s"], out["inversions"] = drain(c, queue, n)
        sampler.stop.set()
        out["rss_peak_drain"] = sampler.peak
        c.close()
    finally:
        broker.stop()
    print(f"{label}: fill {out['fill_s']:.1f} s ({n / out['fill_s']:,.0f}/s), RSS empty "
          f"{out['rss_empty']:.0f} MB, full {out['rss_full']:.0f} MB (peak {out['rss_peak_fill']:.0f}), "
          f"clean restart {out['restart_s']:.1f} s (RSS {out['rss_restart']:.0f} MB), drain "
          f"{out['drain_s']:.1f} s ({n / out['drain_s']:,.0f}/s, peak RSS "
          f"{out['rss_peak_drain']:.0f} MB), level inversions {out['inversions']:.0f}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", "--messages", type=int, default=1_000_000)
    p.add_argument("-l", "--levels", type=int, default=10)
    p.add_argument("--size", type=int, default=100, help="body bytes (default 100)")
    a = p.parse_args()
    print(machine())
    print(f"{a.messages:,} persistent messages of {a.size} bytes")
    prio = run(f"priority queue, {a.levels} levels", a.levels, a.messages, a.size)
    run("plain durable queue", 1, a.messages, a.size)
    if prio["inversions"]:
        sys.exit("levels came out of order")


if __name__ == "__main__":
    main()
