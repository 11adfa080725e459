"""The consumer process of ``hutch perf``.

Reads whatever the socket has (up to 1 MiB), walks the frames with
``struct.unpack_from`` at offsets (no frame objects), takes the delivery tag from
each basic.deliver and the send time from the first 8 bytes of each body, and
writes all acks for one read with one ``sendall`` (or one multiple-ack every N
messages with ``--multi-ack N``).
"""

from __future__ import annotations

import time
from typing import Any

from .client import (
    BASIC_DELIVER,
    CHANNEL_CLOSE,
    CONNECTION_CLOSE,
    FRAME_HEAD,
    U32,
    U64,
    Connection,
    PerfError,
    closing_error,
)
from .report import Histogram
from .shared import RECEIVED, Worker

_ACK_HEAD = FRAME_HEAD.pack(1, 1, 13) + b"\x00\x3c\x00\x50"


def ack_frame(tag: int, multiple: bool) -> bytes:
    return _ACK_HEAD + U64.pack(tag) + (b"\x01\xce" if multiple else b"\x00\xce")


def run_consumer(w: Worker, cfg: dict[str, Any]) -> None:
    hist = Histogram()
    c = _Consumer(w, cfg, hist)
    w.run(c.run, lambda: {"latency_hist": hist.to_state(), "ready_at": c.ready_at,
                          "first": c.first, "last": c.last})


class _Consumer:
    def __init__(self, w: Worker, cfg: dict[str, Any], hist: Histogram) -> None:
        self.w, self.cfg, self.hist = w, cfg, hist
        self.ready_at = self.first = self.last = 0.0

    def run(self) -> None:
        cfg, w = self.cfg, self.w
        conn = Connection(cfg["url"], name=f"hutch perf consumer {w.index}")
        conn.declare(cfg["queue"], cfg["durable"], cfg["queue_args"])
        auto_ack = cfg["auto_ack"]
        conn.consume(cfg["queue"], cfg["prefetch"], auto_ack, f"hutch-perf-{w.index}")
        multi = cfg["multi_ack"]
        if multi and cfg["prefetch"]:
            multi = min(multi, cfg["prefetch"])  # never wait for more than the broker may send
        stamped = cfg["size"] >= 8
        sock = conn.sock
        sock.settimeout(0.2)
        stop, counters, slot = w.stop, w.counters, w.base + RECEIVED
        unpack_head, unpack_id, unpack_u64 = FRAME_HEAD.unpack_from, U32.unpack_from, U64.unpack_from
        record = self.hist.record
        received = last_tag = acked = 0
        want_stamp = False
        buf = b""
        early = bytes(conn.buf)  # deliveries that arrived together with basic.consume-ok
        w.set_ready()
        self.ready_at = time.monotonic()
        while not stop.is_set():
            try:
                chunk, early = (early, b"") if early else (sock.recv(1 << 20), b"")
            except TimeoutError:
                if not auto_ack and last_tag > acked:  # idle: settle a partial multi-ack batch
                    sock.sendall(ack_frame(last_tag, True))
                    acked = last_tag
                continue
            if not chunk:
                raise PerfError("the broker closed the connection")
            now = time.monotonic_ns()
            buf = buf + chunk if buf else chunk
            n = len(buf)
            off = 0
            acks = []
            while n - off >= 7:
                ftype, _ch, size = unpack_head(buf, off)
                end = off + size + 8
                if end > n:
                    break
                if ftype == 3:
                    if want_stamp:
                        want_stamp = False
                        if stamped and size >= 8:
                            record(now - unpack_u64(buf, off + 7)[0])
                elif ftype == 1:
                    mid = unpack_id(buf, off + 7)[0]
                    if mid == BASIC_DELIVER:
                        last_tag = unpack_u64(buf, off + 12 + buf[off + 11])[0]
                        received += 1
                        want_stamp = True
                        if not auto_ack and not multi:
                            acks.append(_ACK_HEAD + U64.pack(last_tag) + b"\x00\xce")
                    elif mid == CHANNEL_CLOSE or mid == CONNECTION_CLOSE:
                        raise closing_error(bytes(buf[off + 7 : end - 1]))
                off = end
            buf = buf[off:] if off < n else b""
            if acks:
                sock.sendall(b"".join(acks))
                acked = last_tag
            elif multi and not auto_ack and last_tag - acked >= multi:
                sock.sendall(ack_frame(last_tag, True))
                acked = last_tag
            if received:
                if not self.first:
                    self.first = time.monotonic()
                self.last = time.monotonic()
            counters[slot] = received
        conn.close()
