#!/usr/bin/env python
"""Durable-store benchmark: Hutch (sync=always) against RabbitMQ 3.10, same machine, same run.

    python bench/store_bench.py [--messages 1000000] [--confirm-messages 200000]

1. confirmed publishes/s: persistent 100-byte messages to a durable queue, confirm
   window 1,000, no consumer (Hutch fsyncs before every confirm; RabbitMQ does not);
2. broker RSS with the queue filled to --messages;
3. restart to ready: each broker is stopped cleanly and started again on the same data
   (for RabbitMQ, the whole node: `.ci/rabbitmq.sh stop`, then `start` with
   HUTCH_RABBIT_KEEP_DATA=1); the time runs until the queue's message count is back to
   --messages over AMQP.

RabbitMQ comes from Debian's rabbitmq-server via .ci/rabbitmq.sh (a private node).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brokers import Hutch, Rabbit, machine, rss_mb, wait_count
from rawamqp import RawAMQP


def measure(broker, n_confirm: int, n_fill: int) -> dict[str, float]:
    broker.start()
    try:
        c = RawAMQP("127.0.0.1", broker.port)
        c.declare("bench_confirm")
        secs, lat = c.publish_confirmed("bench_confirm", n_confirm)
        c.close()
        lat.sort()
        out = {"confirm_rate": n_confirm / secs,
               "confirm_p50_ms": lat[len(lat) // 2] * 1000,
               "confirm_p99_ms": lat[int(len(lat) * 0.99)] * 1000}
        c = RawAMQP("127.0.0.1", broker.port)
        c.delete("bench_confirm")
        c.declare("bench_backlog")
        secs, _ = c.publish_confirmed("bench_backlog", n_fill)
        c.close()
        out["fill_rate"] = n_fill / secs
        time.sleep(2)  # let the broker settle before reading its memory
        out["rss_mb"] = rss_mb(broker.pid())
        t0 = time.monotonic()
        broker.restart()
        wait_count(broker.port, "bench_backlog", n_fill)
        out["restart_s"] = time.monotonic() - t0
        out["rss_after_restart_mb"] = rss_mb(broker.pid())
        return out
    finally:
        broker.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000, help="backlog size (default 1M)")
    ap.add_argument("--confirm-messages", type=int, default=200_000)
    args = ap.parse_args()
    results = {}
    for broker in (Hutch(), Rabbit()):
        print(f"== {broker.name}", flush=True)
        results[broker.name] = measure(broker, args.confirm_messages, args.messages)
        print("   ", {k: round(v, 2) for k, v in results[broker.name].items()}, flush=True)
    h, r = results["Hutch"], results["RabbitMQ"]
    rows = [
        ("confirmed publishes/s (persistent, window 1000)", "confirm_rate", "{:,.0f}"),
        ("confirm latency p50 (ms)", "confirm_p50_ms", "{:.1f}"),
        ("confirm latency p99 (ms)", "confirm_p99_ms", "{:.1f}"),
        (f"fill {args.messages:,} persistent msgs, msgs/s", "fill_rate", "{:,.0f}"),
        (f"RSS with {args.messages:,} queued (MB)", "rss_mb", "{:,.0f}"),
        ("restart to ready with the backlog (s)", "restart_s", "{:.1f}"),
        ("RSS after restart (MB)", "rss_after_restart_mb", "{:,.0f}"),
    ]
    print()
    print("| measure | Hutch | RabbitMQ | Hutch/RabbitMQ |\n|---|---|---|---|")
    for label, key, fmt in rows:
        print(f"| {label} | {fmt.format(h[key])} | {fmt.format(r[key])} | {h[key] / r[key]:.2f} |")
    print(f"\nmachine: {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
