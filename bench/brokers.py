"""Starting, restarting and measuring the brokers the benchmarks compare.

``Hutch`` runs ``python -m hutch serve`` on a fresh data dir; ``Rabbit`` runs Debian's
rabbitmq-server as a private node through ``.ci/rabbitmq.sh`` (``restart`` stops the
whole node and starts it again on the same data, HUTCH_RABBIT_KEEP_DATA=1).
Both expose ``port``, ``url``, ``pid()``, ``start()``, ``restart()``, ``stop()``.
"""

from __future__ import annotations

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

    def __init__(self, *extra_args: str) -> None:
        self.port = free_port()
        self.data = tempfile.mkdtemp(prefix="hutch-bench-")
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hutch", "serve", "--port", str(self.port), "--http-port", "0",
             "--prometheus-port", "0", "--data-dir", self.data, "--log-level", "warning", *self.extra_args],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src")))
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "ready" in line:
                return
        raise RuntimeError("hutch did not start")

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

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

    def __init__(self, node: str = RABBIT_ENV["HUTCH_RABBIT_NODE"],
                 data_dir: str = RABBIT_ENV["HUTCH_RABBIT_DIR"]) -> None:
        self.port = free_port()
        self.dir = data_dir
        self.env = dict(os.environ, HUTCH_RABBIT_NODE=node, HUTCH_RABBIT_DIR=data_dir)

    def start(self) -> None:
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "start", str(self.port)],
                       env=self.env, check=True)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def pid(self) -> int:
        with open(os.path.join(self.dir, "rabbit.pid")) as f:
            return int(f.read().strip())

    def restart(self) -> None:
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "stop"], env=self.env, check=True)
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "start", str(self.port)],
                       env=dict(self.env, HUTCH_RABBIT_KEEP_DATA="1"), check=True)

    def stop(self) -> None:
        subprocess.run([os.path.join(ROOT, ".ci", "rabbitmq.sh"), "stop"], env=self.env, check=False)


def machine() -> str:
    """One line describing this machine (cores, CPU model, Python), for result tables."""
    cpu = re.sub(r"\s+", " ", open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0][3:])
    return f"{os.cpu_count()} cores, {cpu}; Python {sys.version.split()[0]}"
