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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rawamqp import RawAMQP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RABBIT_ENV = {"HUTCH_RABBIT_NODE": "bench@localhost", "HUTCH_RABBIT_DIR": "/tmp/hutch-bench-rabbit"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_count(port: int, queue: str, n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = RawAMQP("127.0.0.1", port)
            got = c.count(queue)
            c.close()
            if got >= n:
                return
        except (OSError, ConnectionError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"queue {queue} never got back to {n} messages")


class Hutch:
    name = "Hutch"

    def __init__(self) -> None:
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="hutch-bench-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hutch", "serve", "--port", str(self.port), "--http-port", "0",
             "--data-dir", self.data, "--log-level", "warning"],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src")))
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "ready" in line:
                return
        raise RuntimeError("hutch did not start")

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def restart(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        shutil.rmtree(self.data, ignore_errors=True)


class Rabbit:
    name = "RabbitMQ"

    def __init__(self) -> None:
        self.port = free_port()
        self.env = dict(os.environ, **RABBIT_ENV)

    def start(self) -> None:
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "start", str(self.port)],
                       env=self.env, check=True)

    def pid(self) -> int:
        with open(os.path.join(RABBIT_ENV["HUTCH_RABBIT_DIR"], "rabbit.pid")) as f:
            return int(f.read().strip())

    def restart(self) -> None:
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "stop"], env=self.env, check=True)
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "start", str(self.port)],
                       env=dict(self.env, HUTCH_RABBIT_KEEP_DATA="1"), check=True)

    def stop(self) -> None:
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "stop"], env=self.env, check=False)


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
    cpu = re.sub(r"\s+", " ", open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0][3:])
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; Python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
