"""The producer process of ``hutch perf``.

Each batch is one pre-encoded message (basic.publish + header + body frames, the
body starting with the send time as 8 bytes of ``time.monotonic_ns()``) repeated
k times and written with one ``sendall``.  With confirms, at most WINDOW messages
are unconfirmed; confirms are read incrementally between batches and settle
whole batches at once, so the producer does no per-message Python work at all.
"""

from __future__ import annotations

import collections
import select
import time
from typing import Any

from .client import (
    BASIC_ACK,
    BASIC_NACK,
    BASIC_RETURN,
    CHANNEL_CLOSE,
    CONNECTION_BLOCKED,
    CONNECTION_CLOSE,
    CONNECTION_UNBLOCKED,
    FRAME_HEAD,
    U32,
    U64,
    Connection,
    PerfError,
    closing_error,
    publish_template,
)
from .report import Histogram
from .shared import SENT, Worker


def run_producer(w: Worker, cfg: dict[str, Any]) -> None:
    hist = Histogram()
    p = _Producer(w, cfg, hist)
    w.run(p.run, lambda: {"confirm_hist": hist.to_state(), "start": p.start, "end": p.end})


class _Producer:
    def __init__(self, w: Worker, cfg: dict[str, Any], hist: Histogram) -> None:
        self.w = w
        self.cfg = cfg
        self.hist = hist
        self.sent = self.confirmed = self.nacked = self.returned = 0
        self.settled = 0  # highest delivery tag confirmed or nacked
        self.pending: collections.deque[tuple[int, int]] = collections.deque()  # (last tag, sent ns)
        self.blocked = False
        self.start = self.end = 0.0

    def run(self) -> None:
        cfg, w = self.cfg, self.w
        conn = Connection(cfg["url"], name=f"hutch perf producer {w.index}")
        conn.declare(cfg["queue"], cfg["durable"], cfg["queue_args"])
        window = cfg["confirm"]
        if window:
            conn.confirm_select()
        head, tail = publish_template(cfg["queue"], cfg["size"], cfg["persistent"], conn.frame_max)
        stamped = cfg["size"] >= 8
        # --priorities N: message i of a batch has priority i % N (a per-message join,
        # which only the priority cases pay).
        levels = [publish_template(cfg["queue"], cfg["size"], cfg["persistent"], conn.frame_max,
                                   priority=i) for i in range(cfg.get("priorities", 0))]
        sock = conn.sock
        tls_pending = getattr(sock, "pending", None)
        count, rate, stop = cfg["count"], cfg["rate"], w.stop
        batch = max(1, min(cfg["batch"], window or cfg["batch"], rate or cfg["batch"]))
        pack, stamp, pending = U64.pack, time.monotonic_ns, self.pending
        w.set_ready()
        w.go.wait()
        self.start = time.monotonic()
        buf = bytes(conn.buf)
        while not stop.is_set():
            k = batch
            if count:
                k = min(k, count - self.sent)
            if window:
                k = min(k, window - (self.sent - self.settled))
            if rate:
                k = min(k, int(rate * (time.monotonic() - self.start)) + 1 - self.sent)
            if self.blocked:
                k = 0
            if k > 0:
                t = stamp()
                if levels:
                    ts = pack(t) if stamped else b""
                    sock.sendall(b"".join(levels[i % len(levels)][0] + ts + levels[i % len(levels)][1]
                                          for i in range(k)))
                else:
                    sock.sendall((head + pack(t) + tail if stamped else head) * k)
                self.sent += k
                if window:
                    pending.append((self.sent, t))
            elif count and self.sent >= count and (not window or self.settled >= self.sent):
                break  # all sent and (with confirms) all settled
            # Wait for the broker only when we may not send; otherwise just poll.
            wait = 0.0 if k > 0 else (min(0.05, 1 / rate) if rate and not window else 0.1)
            # A TLS socket may hold decrypted bytes select() cannot see.
            if (tls_pending is not None and tls_pending()) or select.select((sock,), (), (), wait)[0]:
                buf = self._read(sock, buf)
            w.counters[w.base + SENT : w.base + SENT + 4] = [self.sent, self.confirmed, self.nacked,
                                                              self.returned]
        self.end = time.monotonic()
        conn.close()

    def _read(self, sock: Any, buf: bytes) -> bytes:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise PerfError("the broker closed the connection")
        buf = buf + chunk if buf else chunk
        n = len(buf)
        off = 0
        now = 0
        while n - off >= 7:
            ftype, _ch, size = FRAME_HEAD.unpack_from(buf, off)
            end = off + size + 8
            if end > n:
                break
            if ftype == 1:
                mid = U32.unpack_from(buf, off + 7)[0]
                if mid == BASIC_ACK or mid == BASIC_NACK:
                    tag = U64.unpack_from(buf, off + 11)[0]
                    if not now:
                        now = time.monotonic_ns()
                    # Brokers confirm in publish order on one queue, so an ack for tag N
                    # (multiple or not) settles everything up to N.
                    self._settle(tag, mid == BASIC_ACK, now)
                elif mid == BASIC_RETURN:
                    self.returned += 1
                elif mid == CHANNEL_CLOSE or mid == CONNECTION_CLOSE:
                    raise closing_error(bytes(buf[off + 7 : end - 1]))
                elif mid == CONNECTION_BLOCKED:
                    self.blocked = True
                elif mid == CONNECTION_UNBLOCKED:
                    self.blocked = False
            off = end
        return buf[off:]

    def _settle(self, tag: int, ack: bool, now: int) -> None:
        pending, hist = self.pending, self.hist
        while self.settled < tag and pending:
            last, t = pending[0]
            upto = min(last, tag)
            n = upto - self.settled
            hist.record(now - t, n)
            if ack:
                self.confirmed += n
            else:
                self.nacked += n
            self.settled = upto
            if upto == last:
                pending.popleft()
