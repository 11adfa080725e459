#!/usr/bin/env python
"""The work-queue performance matrix of issue #5: Hutch against RabbitMQ, same machine, same run.

    python bench/matrix.py [--time 20] [--messages 1000000] [--only hutch|rabbitmq] [--json FILE]

Every case is ``hutch perf`` (raw-socket producers/consumers in their own processes),
100-byte messages, one fresh queue per case:

  (a) durable queue, persistent messages, confirms (window 1,000), manual acks,
      1 producer / 1 consumer, prefetch 100;
  (b) the same with 2 consumers and prefetch 1 (the tutorial's fair dispatch);
  (c) non-durable queue, transient messages, no confirms, auto-ack, 1P/1C;
  (s) as (a) on a queue with x-single-active-consumer and 2 consumers (one receives);
  (d) fill --messages persistent messages (confirms, window 1,000, no consumer), read
      the broker's RSS, restart the broker on the same data and time it until the
      queue is back to --messages, then drain it with one consumer (prefetch 100,
      manual acks).

Hutch runs as ``python -m hutch serve --data-dir TMP --http-port 0`` (default
``--sync always``: every confirm is fsync'd); RabbitMQ is Debian's rabbitmq-server
started as a private node by ``.ci/rabbitmq.sh`` (restarted as a whole node).
Prints one Markdown table with both figures and the ratio Hutch/RabbitMQ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brokers import ROOT, Hutch, Rabbit, machine, rss_mb, wait_count

SIZE = 100
CASES: dict[str, list[str]] = {
    "a": ["--producers", "1", "--consumers", "1", "--persistent", "--confirm", "1000", "--prefetch", "100"],
    "b": ["--producers", "1", "--consumers", "2", "--persistent", "--confirm", "1000", "--prefetch", "1"],
    "c": ["--producers", "1", "--consumers", "1", "--auto-ack"],
    # (s) as (a) with 2 consumers on a single-active-consumer queue: one of them works.
    "s": ["--producers", "1", "--consumers", "2", "--persistent", "--confirm", "1000", "--prefetch", "100",
          "--queue-args", '{"x-single-active-consumer": true}'],
}


def perf(url: str, queue: str, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "hutch", "perf", "--url", url, "--queue", queue, "--size", str(SIZE),
           "--json", *args]
    print("   $ hutch perf " + " ".join(cmd[4:]), flush=True)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"hutch perf failed ({r.returncode}): {r.stderr[-2000:]}\n{r.stdout[-2000:]}")
    return json.loads(r.stdout)


def delete_queue(url: str, queue: str) -> None:
    from hutch.perf.client import Connection

    c = Connection(url)
    c.delete(queue)
    c.close()


def lat(s: dict[str, Any], key: str, p: str) -> float:
    return (s.get(key) or {}).get(p, float("nan"))


def measure(broker: Any, seconds: float, n_fill: int) -> dict[str, float]:
    out: dict[str, float] = {}
    broker.start()
    try:
        for case, args in CASES.items():
            q = f"matrix-{case}"
            s = perf(broker.url, q, "--time", str(seconds), *args)
            out[f"{case}_e2e"] = s["rates"]["received"]
            out[f"{case}_publish"] = s["rates"].get("confirmed", s["rates"]["sent"])
            out[f"{case}_confirm_p50"] = lat(s, "confirm_latency_ms", "p50")
            out[f"{case}_confirm_p99"] = lat(s, "confirm_latency_ms", "p99")
            out[f"{case}_deliver_p50"] = lat(s, "latency_ms", "p50")
            out[f"{case}_deliver_p99"] = lat(s, "latency_ms", "p99")
            delete_queue(broker.url, q)
            print(f"   ({case}) end to end {out[f'{case}_e2e']:,.0f} msg/s", flush=True)
        q = "matrix-d"
        # --keep: the backlog outlives this run (hutch perf deletes the queues it made).
        s = perf(broker.url, q, "--producers", "1", "--consumers", "0", "--persistent", "--confirm", "1000",
                 "--count", str(n_fill), "--keep")
        out["d_fill"] = s["rates"]["confirmed"]
        time.sleep(2)  # let the broker settle before reading its memory
        out["d_rss_mb"] = rss_mb(broker.pid())
        t0 = time.monotonic()
        broker.restart()
        wait_count(broker.port, q, n_fill)
        out["d_restart_s"] = time.monotonic() - t0
        out["d_rss_restart_mb"] = rss_mb(broker.pid())
        s = perf(broker.url, q, "--producers", "0", "--consumers", "1", "--durable", "--prefetch", "100",
                 "--count", str(n_fill))
        out["d_drain"] = s["rates"]["received"]
        print(f"   (d) fill {out['d_fill']:,.0f}/s, RSS {out['d_rss_mb']:.0f} MB, restart "
              f"{out['d_restart_s']:.1f} s, drain {out['d_drain']:,.0f}/s", flush=True)
        return out
    finally:
        broker.stop()


ROWS = [
    ("(a) end-to-end msgs/s: durable, persistent, confirms 1000, manual ack, 1P/1C prefetch 100",
     "a_e2e", "{:,.0f}"),
    ("(a) confirmed publishes/s", "a_publish", "{:,.0f}"),
    ("(a) confirm latency p50 / p99 (ms)", ("a_confirm_p50", "a_confirm_p99"), "{:.1f}"),
    ("(a) publish->deliver latency p50 / p99 (ms)", ("a_deliver_p50", "a_deliver_p99"), "{:.0f}"),
    ("(b) end-to-end msgs/s: as (a), 2 consumers prefetch 1", "b_e2e", "{:,.0f}"),
    ("(b) confirm latency p50 / p99 (ms)", ("b_confirm_p50", "b_confirm_p99"), "{:.1f}"),
    ("(c) end-to-end msgs/s: transient, no confirms, auto-ack, 1P/1C", "c_e2e", "{:,.0f}"),
    ("(c) publishes/s", "c_publish", "{:,.0f}"),
    ("(s) end-to-end msgs/s: as (a), single active consumer, 2 consumers", "s_e2e", "{:,.0f}"),
    ("(s) publish->deliver latency p50 / p99 (ms)", ("s_deliver_p50", "s_deliver_p99"), "{:.0f}"),
    ("(d) fill N persistent msgs (confirms 1000), msgs/s", "d_fill", "{:,.0f}"),
    ("(d) RSS with N queued (MB)", "d_rss_mb", "{:,.0f}"),
    ("(d) restart to ready with N queued (s)", "d_restart_s", "{:.1f}"),
    ("(d) RSS after restart (MB)", "d_rss_restart_mb", "{:,.0f}"),
    ("(d) drain the N msgs, 1 consumer prefetch 100, msgs/s", "d_drain", "{:,.0f}"),
]


def table(h: dict[str, float], r: dict[str, float], n: int) -> str:
    lines = ["| measure | Hutch | RabbitMQ | Hutch/RabbitMQ |", "|---|---|---|---|"]
    for label, key, fmt in ROWS:
        label = label.replace(" N ", f" {n:,} ")
        if isinstance(key, tuple):
            hv = " / ".join(fmt.format(h[k]) for k in key)
            rv = " / ".join(fmt.format(r[k]) for k in key)
            ratio = " / ".join(f"{h[k] / r[k]:.2f}" if r[k] else "-" for k in key)
        else:
            hv, rv = fmt.format(h[key]), fmt.format(r[key])
            ratio = f"{h[key] / r[key]:.2f}" if r[key] else "-"
        lines.append(f"| {label} | {hv} | {rv} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time", type=float, default=20, help="seconds per case (a)-(c) (default 20)")
    ap.add_argument("--messages", type=int, default=1_000_000, help="backlog for (d) (default 1M)")
    ap.add_argument("--only", choices=["hutch", "rabbitmq"], help="measure one broker only")
    ap.add_argument("--json", help="also write the raw figures to this file")
    args = ap.parse_args()
    brokers = {"Hutch": lambda: Hutch(), "RabbitMQ": lambda: Rabbit("perf@localhost", "/tmp/perf-rabbit")}
    results: dict[str, dict[str, float]] = {}
    for name, make in brokers.items():
        if args.only and args.only != name.lower():
            continue
        print(f"== {name}", flush=True)
        results[name] = measure(make(), args.time, args.messages)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "machine": machine(), "results": results}, f, indent=2)
    print("\ncommand: python bench/matrix.py " + " ".join(sys.argv[1:]))
    print(f"machine: {machine()}\n")
    if len(results) == 2:
        print(table(results["Hutch"], results["RabbitMQ"], args.messages))
    else:
        for name, res in results.items():
            print(name, json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
