"""Run ``hutch publish`` / ``hutch work`` as real subprocesses, and look at queues with pika."""

from __future__ import annotations

import contextlib
import os
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pika

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hutch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hutch", *args]


def run_tool(*args: str, stdin: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion; stdout and stderr kept apart (tests check both)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("AMQP_URL", None)
    return subprocess.run(hutch_cmd(*args), input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=env)


class Tool:
    """A long-running tool (a worker) whose output lines we can wait for."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("AMQP_URL", None)
        self.proc = subprocess.Popen(hutch_cmd(*args), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._q: queue_mod.Queue[str | None] = queue_mod.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _pull(self, timeout: float) -> bool:
        try:
            line = self._q.get(timeout=timeout)
        except queue_mod.Empty:
            return True
        if line is None:
            self._q.put(None)
            return False
        self.lines.append(line)
        return True

    def wait_for(self, needle: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(needle in line for line in self.lines) < count:
            if time.monotonic() > deadline or not self._pull(0.1):
                raise AssertionError(f"{needle!r} x{count} not seen; output: {self.lines}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        while self._pull(0.5):
            pass
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def tool(*args: str) -> Iterator[Tool]:
    t = Tool(*args)
    try:
        yield t
    finally:
        t.stop()


class Amqp:
    """A pika connection for setting up and inspecting queues around a tool run."""

    def __init__(self, url: str) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.created: list[str] = []

    def declare(self, name: str, **arguments: Any) -> None:
        self.ch.queue_declare(name, durable=True, arguments=arguments or None)
        self.created.append(name)

    def ready(self, name: str) -> int:
        return self.ch.queue_declare(name, passive=True).method.message_count

    def wait_ready(self, name: str, count: int, timeout: float = 10.0) -> None:
        """RabbitMQ updates counts asynchronously after acks/requeues: poll."""
        deadline = time.monotonic() + timeout
        while self.ready(name) != count:
            if time.monotonic() > deadline:
                raise AssertionError(f"queue {name}: {self.ready(name)} ready, expected {count}")
            time.sleep(0.05)

    def get_all(self, name: str) -> list[tuple[Any, Any, bytes]]:
        out = []
        while True:
            method, props, body = self.ch.basic_get(name, auto_ack=True)
            if method is None:
                return out
            out.append((method, props, body))

    def close(self, delete: list[str]) -> None:
        for name in {*self.created, *delete}:
            with contextlib.suppress(Exception):
                if self.ch.is_closed:
                    self.ch = self.conn.channel()
                self.ch.queue_delete(name)
        with contextlib.suppress(Exception):
            self.conn.close()
