"""Start and stop a real ``hutch serve`` subprocess for tests."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def free_port() -> int:
    """A TCP port free on both loopbacks right now (the management API needs a fixed
    one: ``--http-port 0`` means "disabled", as in RabbitMQ's tooling)."""
    import socket

    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET6) as s6:
                s6.bind(("::1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


class HutchProcess:
    """One ``hutch serve``; its data dir (a fresh temp dir unless given) and port stay
    the same across ``stop``/``start``, so tests can restart or kill -9 it."""

    def __init__(self, *extra_args: str, data_dir: str | None = None,
                 env: dict[str, str] | None = None, http: bool = False,
                 prometheus: bool = False, base_flags: bool = True) -> None:
        self.extra_args = list(extra_args)
        # base_flags=False: only ``serve`` and extra_args, for a test whose configuration
        # file sets the ports and data dir (the flags would override the file).
        self.base_flags = base_flags
        # prometheus=True serves the Prometheus endpoints on a free port (kept across
        # restarts); otherwise they are disabled, so tests never bind the default 15692.
        self.prometheus_port = free_port() if prometheus else 0
        # http=True runs the management API on a free port (kept across restarts);
        # its URL comes from the "management API: http://..." line serve prints.
        self.http_port = free_port() if http else 0
        self.http_url = ""
        self.https_url = ""  # management over HTTPS (--http-tls-port)
        self.tls_port = 0  # the AMQPS port (--tls-port / --tls-listen), from the ready line
        self.env = env or {}
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="hutch-test-")
        if data_dir is None:
            atexit.register(shutil.rmtree, self.data_dir, True)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.log_lines: list[str] = []
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def prometheus_url(self) -> str:
        """``http://127.0.0.1:PORT/`` of the Prometheus endpoints (``metrics``, ...)."""
        return f"http://127.0.0.1:{self.prometheus_port}/"

    def start(self, timeout: float = 15.0) -> None:
        base = ["--port", str(self.port), "--http-port", str(self.http_port),
                "--prometheus-port", str(self.prometheus_port), "--data-dir", self.data_dir]
        cmd = [sys.executable, "-m", "hutch", "serve", *(base if self.base_flags else []),
               *self.extra_args]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        # Test-only store seams (tests.crash.*) must be importable by the broker.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self._ready.clear()
        pump = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        pump.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pump.join(2)  # the rest of what it printed
                self.stop()
                raise RuntimeError("hutch did not become ready:\n" + "\n".join(self.log_lines))

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log_lines.append(line.rstrip("\n"))
            api = re.search(r"management API: (https?)(://\S+/)", line)
            if api and api.group(1) == "https":
                self.https_url = api.group(1) + api.group(2)
            elif api:
                self.http_url = api.group(1) + api.group(2)
            if "ready" in line and not self._ready.is_set():
                m = re.search(r"amqp://\S*localhost:(\d+)/", line)
                if m:
                    self.port = int(m.group(1))
                m = re.search(r"amqps://\S*localhost:(\d+)/", line)
                if m:
                    self.tls_port = int(m.group(1))
                self._ready.set()

    def log_text(self) -> str:
        return "\n".join(self.log_lines)

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return True
            time.sleep(0.05)
        return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def __enter__(self) -> HutchProcess:
        """``with HutchProcess(...) as proc:`` starts it and stops it at the end."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def drain(channel, queue: str) -> list[tuple[bytes, bool]]:
    """basic.get (auto-ack) until the queue is empty: [(body, redelivered), ...]."""
    out = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.redelivered))
