"""Helpers of the Dramatiq and FastStream tests: a framework's worker as a real
subprocess, bounded in time and always killed, and a results file its tasks write.

The worker runs in its own session (process group), so the teardown reaches the
processes it forks (``dramatiq`` starts one worker process per ``--processes``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pika
import pika.exceptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


class WorkerProcess:
    """``argv`` run with ``env`` added to ours; its output kept for the failure report."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], ready: str, timeout: float = 20.0) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **env)
        # The worker must import this worktree's packages (tests.*, and hutch if it
        # uses it), exactly as the test process does.
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, full_env.get("PYTHONPATH")) if p)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._needle = ready
        self.proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=full_env, cwd=ROOT, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[:4]} did not become ready:\n{self.output()}")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._needle in line:
                self._ready.set()

    def output(self) -> str:
        return "\n".join(self.lines[-200:])

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM to the whole group (the framework's own graceful stop), SIGKILL
        after ``timeout``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever the group still holds (a forked child) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        return self.proc.returncode


class Results:
    """The JSON lines the tasks append to a file (one per call), read by the test."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def wait_for(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0,
                 what: str = "") -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.read()
            if pred(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or pred}: {rows}")
            time.sleep(0.01)


def record(path: str, **fields: Any) -> None:
    """Append one result line; a line is written by one write() in append mode, so
    concurrent writers (worker threads, processes) do not interleave."""
    line = json.dumps(dict(fields, t=time.time())) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def python_m(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def delete_queues(url: str, names: Sequence[str]) -> None:
    """Delete the queues a test module made (the brokers are shared)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        for name in names:
            ch = conn.channel()
            try:
                ch.queue_delete(name)
                ch.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass
    finally:
        conn.close()


@contextlib.contextmanager
def channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield conn.channel()
    finally:
        conn.close()
