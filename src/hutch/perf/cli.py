"""``hutch perf``: a load generator in the spirit of RabbitMQ's PerfTest.

Producers and consumers each run in their own process with their own raw-socket
AMQP connection (see ``client.py``); this parent process starts them, prints a
progress line every second from their shared counters, stops them and merges
their latency histograms into the summary.

Exit status: 0 when every message was sent (and confirmed, with ``--confirm``);
1 when the broker nacked or returned messages; 2 on errors (broker unreachable,
login refused, a channel or connection closed by the broker, bad arguments).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from typing import Any

from ..argtypes import json_object, size
from .client import Connection, PerfError
from .consumer import run_consumer
from .producer import run_producer
from .report import Histogram, dump_json, format_summary, progress_line
from .shared import CONFIRMED, DONE, NACKED, READY, RECEIVED, RETURNED, SENT, SLOT, Worker

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"


def add_perf_parser(sub: Any) -> None:
    p = sub.add_parser(
        "perf", help="load generator: measure a broker's throughput and latency",
        description="Measure a broker's throughput and latency with producers and consumers in "
                    "separate processes (raw-socket AMQP, pre-encoded frames). Works against "
                    "Hutch and RabbitMQ alike.")
    p.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL),
                   help="broker URL (default $AMQP_URL or %(default)s)")
    p.add_argument("-x", "--producers", type=int, default=1, help="producer processes (default 1)")
    p.add_argument("-y", "--consumers", type=int, default=1, help="consumer processes (default 1)")
    p.add_argument("-s", "--size", type=size, default=12,
                   help="message body size in bytes (default 12; bodies of 8+ bytes carry the send "
                        "time, for publish->deliver latency)")
    p.add_argument("-f", "--persistent", action="store_true",
                   help="persistent messages (delivery_mode 2); also makes the queue durable")
    p.add_argument("--durable", action=argparse.BooleanOptionalAction, default=None,
                   help="declare the queue durable (default: durable iff --persistent)")
    p.add_argument("-c", "--confirm", type=int, default=0, metavar="WINDOW",
                   help="publisher confirms, at most WINDOW unconfirmed per producer (default off)")
    p.add_argument("-q", "--prefetch", type=int, default=0, help="consumer prefetch count (0 = unlimited)")
    p.add_argument("-A", "--multi-ack", type=int, default=0, metavar="N",
                   help="ack with multiple=true every N messages (default: one ack per message)")
    p.add_argument("-a", "--auto-ack", action="store_true", help="consume with no-ack")
    p.add_argument("-r", "--rate", type=float, default=0,
                   help="messages/s per producer (default 0 = as fast as possible)")
    p.add_argument("-z", "--time", type=float, default=0, help="run for this many seconds")
    p.add_argument("-C", "--count", type=int, default=0,
                   help="messages per producer; then wait until consumers have them all. With "
                        "--producers 0: messages for the consumers to receive in total")
    p.add_argument("-u", "--queue", default="hutch-perf",
                   help="queue name (default %(default)s). A queue this run creates is deleted "
                        "at the end (unless --keep); one that already existed is left as it is")
    p.add_argument("--keep", action="store_true",
                   help="keep the queue this run created (e.g. to drain it with a later run)")
    p.add_argument("--queue-args", type=json_object, default=None, metavar="JSON",
                   help='queue arguments as JSON, e.g. \'{"x-max-length": 1000}\'')
    p.add_argument("--priorities", type=int, default=0, metavar="N",
                   help="message priorities 0..N-1, in turn (for a queue with x-max-priority; "
                        "default: no priority property)")
    p.add_argument("--batch", type=int, default=256,
                   help="messages per socket write (default 256; capped by the confirm window)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if args.producers < 0 or args.consumers < 0 or args.producers + args.consumers == 0:
        raise PerfError("need at least one producer or consumer")
    if not args.time and not args.count:
        if args.producers == 0:
            raise PerfError("--producers 0 needs --count (messages to receive) or --time")
    if args.size < 0 or args.confirm < 0 or args.prefetch < 0 or args.multi_ack < 0 or args.rate < 0:
        raise PerfError("sizes, windows, counts and rates cannot be negative")
    if not 0 <= args.priorities <= 256:
        raise PerfError("--priorities is between 0 and 256 (priority is an octet)")
    if args.prefetch > 65535:
        raise PerfError("--prefetch is at most 65535 (a short in basic.qos)")
    return {
        "url": args.url, "queue": args.queue, "queue_args": args.queue_args or {},
        "durable": args.persistent if args.durable is None else args.durable,
        "size": args.size, "persistent": args.persistent, "confirm": args.confirm,
        "prefetch": args.prefetch, "multi_ack": args.multi_ack, "auto_ack": args.auto_ack,
        "rate": args.rate, "count": args.count, "batch": max(1, args.batch),
        "priorities": args.priorities,
    }


def run_perf(args: argparse.Namespace) -> int:
    try:
        cfg = _config(args)
        # Fail fast (and declare the queue once) before forking anything.
        probe = Connection(cfg["url"], name="hutch perf setup")
        created = not probe.exists(cfg["queue"])
        probe.declare(cfg["queue"], cfg["durable"], cfg["queue_args"])
        probe.close()
    except PerfError as exc:
        print(f"hutch perf: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = _Run(args, cfg).run()
    finally:
        # As PerfTest (whose queues are auto-delete): leave no queue of ours behind,
        # also after an error or ^C; a queue the user had before is theirs.
        if created and not args.keep:
            _delete_queue(cfg)
    print(dump_json(summary) if args.json else format_summary(summary), flush=True)
    if summary["errors"]:
        return 2
    return 1 if summary["totals"].get("nacked") or summary["totals"].get("returned") else 0


def _delete_queue(cfg: dict[str, Any]) -> None:
    try:
        conn = Connection(cfg["url"], name="hutch perf cleanup")
        conn.delete(cfg["queue"])
        conn.close()
    except PerfError as exc:
        print(f"hutch perf: warning: could not delete queue {cfg['queue']!r}: {exc}",
              file=sys.stderr)


class _Run:
    def __init__(self, args: argparse.Namespace, cfg: dict[str, Any]) -> None:
        self.args, self.cfg = args, cfg
        ctx = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        n = args.producers + args.consumers
        self.counters = ctx.Array("q", n * SLOT, lock=False)
        self.stop, self.go, self.results = ctx.Event(), ctx.Event(), ctx.Queue()
        self.consumers = [self._spawn(ctx, "consumer", i, run_consumer) for i in range(args.consumers)]
        self.producers = [self._spawn(ctx, "producer", args.consumers + i, run_producer)
                          for i in range(args.producers)]

    def _spawn(self, ctx: Any, role: str, index: int, target: Any) -> Any:
        w = Worker(role, index, self.counters, self.stop, self.go, self.results)
        return ctx.Process(target=target, args=(w, self.cfg), name=f"hutch-perf-{role}-{index}", daemon=True)

    def _sum(self, field: int, procs: list[Any] | None = None) -> int:
        c = self.counters
        slots = range(len(self.consumers) + len(self.producers)) if procs is None else procs
        return sum(c[i * SLOT + field] for i in slots)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.producers:
            out.update(sent=self._sum(SENT), nacked=self._sum(NACKED), returned=self._sum(RETURNED))
            if self.cfg["confirm"]:
                out["confirmed"] = self._sum(CONFIRMED)
        if self.consumers:
            out["received"] = self._sum(RECEIVED)
        return out

    def run(self) -> dict[str, Any]:
        for p in self.consumers + self.producers:
            p.start()
        nworkers = len(self.consumers) + len(self.producers)
        try:
            # Producers start together once every consumer is consuming.
            while not all(self.counters[i * SLOT + READY] or self.counters[i * SLOT + DONE]
                          for i in range(nworkers)):
                time.sleep(0.01)
            self.go.set()
            start = time.monotonic()
            self._watch(start)
        except KeyboardInterrupt:
            pass
        self.stop.set()
        end = time.monotonic()
        results = [self.results.get(timeout=30) for _ in range(nworkers)]
        for p in self.consumers + self.producers:
            p.join(10)
        return self._summary(results, start, end)

    def _watch(self, start: float) -> None:
        args = self.args
        tty = sys.stderr.isatty()
        prod_slots = range(len(self.consumers), len(self.consumers) + len(self.producers))
        cons_slots = range(len(self.consumers))
        last_t, last = start, self.totals()
        next_report = start + 1
        seen_received, progress_at = -1, start
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            totals = self.totals()
            if any(self.counters[i * SLOT + DONE] for i in cons_slots):
                break  # a consumer only ends by itself on an error
            producers_done = all(self.counters[i * SLOT + DONE] for i in prod_slots)
            if args.time and now - start >= args.time:
                break
            if args.count and producers_done:
                if not self.consumers:
                    break
                expected = (args.count if not self.producers
                            else totals["sent"] - totals["nacked"] - totals["returned"])
                if totals["received"] >= expected:
                    break
                # Nothing more arriving for 10 s (messages dropped by a queue limit...): give up.
                if totals["received"] != seen_received:
                    seen_received, progress_at = totals["received"], now
                elif now - progress_at > 10:
                    break
            elif self.producers and producers_done and not args.count:
                break  # producers ended by themselves: an error
            if now >= next_report and not args.quiet:
                dt = now - last_t
                rates: dict[str, float] = {
                    k: (totals[k] - last[k]) / dt for k in ("sent", "confirmed", "received") if k in totals}
                line = progress_line(now - start, rates, totals)
                sys.stderr.write(("\r" + line + "\033[K") if tty else line + "\n")
                sys.stderr.flush()
                last_t, last = now, totals
                next_report += 1
            elif args.quiet:
                last = totals
        if tty and not args.quiet:
            sys.stderr.write("\n")

    def _summary(self, results: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
        args = self.args
        totals = self.totals()
        confirm_hist, latency_hist = Histogram(), Histogram()
        errors = []
        prod_span = cons_span = None
        p_starts = [r["start"] for r in results if r["role"] == "producer" and r["start"]]
        p_ends = [r["end"] or end for r in results if r["role"] == "producer" and r["start"]]
        for r in results:
            if r["error"]:
                errors.append(f"{r['role']} {r['index']}: {r['error']}")
            if r["role"] == "producer":
                confirm_hist.merge(Histogram.from_state(r["confirm_hist"]))
            else:
                latency_hist.merge(Histogram.from_state(r["latency_hist"]))
        if p_starts:
            prod_span = max(p_ends) - min(p_starts)
        c_lasts = [r["last"] for r in results if r["role"] == "consumer" and r["last"]]
        if c_lasts:
            c_first = min(p_starts) if p_starts else min(
                r["ready_at"] for r in results if r["role"] == "consumer" and r["ready_at"])
            cons_span = max(c_lasts) - c_first
        rates: dict[str, float] = {}
        for key in ("sent", "confirmed", "nacked", "returned"):
            if key in totals and prod_span:
                rates[key] = round(totals[key] / prod_span, 1)
        if "received" in totals and cons_span:
            rates["received"] = round(totals["received"] / cons_span, 1)
        return {
            "url": _redact(args.url), "queue": args.queue, "producers": args.producers,
            "consumers": args.consumers, "size": args.size, "persistent": args.persistent,
            "durable": self.cfg["durable"], "confirm": args.confirm, "prefetch": args.prefetch,
            "multi_ack": args.multi_ack, "auto_ack": args.auto_ack, "rate_limit": args.rate,
            "duration_s": round(end - start, 3), "totals": totals, "rates": rates,
            "confirm_latency_ms": confirm_hist.summary_ms(), "latency_ms": latency_hist.summary_ms(),
            "errors": errors,
        }


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
