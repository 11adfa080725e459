"""The seed documents' work-queue session, replayed with their own programs.

Two workers (examples/pika/worker.py) share five tasks published by
examples/pika/new_task.py; the first worker gets First/Third/Fifth and the
second Second/Fourth, exactly as the tutorials print.  Killing a busy worker
hands its task to the other one.  The same with the aio-pika programs.
"""

from __future__ import annotations

import os
import queue as queue_mod
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASKS = ["First message.", "Second message..", "Third message...", "Fourth message....",
         "Fifth message....."]


class Program:
    """A running example program whose stdout lines we can wait for."""

    def __init__(self, script: Path, url: str, *args: str) -> None:
        env = dict(os.environ, AMQP_URL=url, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._q: queue_mod.Queue[str] = queue_mod.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if needle in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.1)
            except queue_mod.Empty:
                continue
            self.lines.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not seen; output so far: {self.lines}")

    def drain(self) -> list[str]:
        while True:
            try:
                self.lines.append(self._q.get_nowait())
            except queue_mod.Empty:
                return self.lines

    def received(self) -> list[str]:
        return [line for line in self.drain() if "Received" in line]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run(script: Path, url: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(script), *args], env=dict(os.environ, AMQP_URL=url),
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout


@pytest.fixture
def fresh_task_queue(broker_url: str):
    """The examples use the fixed name task_queue: start and end with it gone."""
    def delete() -> None:
        conn = pika.BlockingConnection(pika.URLParameters(broker_url))
        conn.channel().queue_delete("task_queue")
        conn.close()
    delete()
    yield
    delete()


def test_hello_world(broker_url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    conn.channel().queue_delete("hello")
    conn.close()
    receiver = Program(EXAMPLES / "pika" / "receive.py", broker_url)
    try:
        receiver.wait_for("Waiting for messages")
        assert run(EXAMPLES / "pika" / "send.py", broker_url).rstrip() == " [x] Sent 'Hello World!'"
        assert receiver.wait_for("Received") == " [x] Received 'Hello World!'"
    finally:
        receiver.stop()


def test_round_robin_between_two_pika_workers(broker_url: str, fresh_task_queue: None) -> None:
    w1 = Program(EXAMPLES / "pika" / "worker.py", broker_url)
    w1.wait_for("Waiting for messages")
    w2 = Program(EXAMPLES / "pika" / "worker.py", broker_url)
    try:
        w2.wait_for("Waiting for messages")
        for task in TASKS:
            assert run(EXAMPLES / "pika" / "new_task.py", broker_url, *task.split()).rstrip() \
                == f" [x] Sent {task!r}"
        w1.wait_for("Received 'Fifth message.....'", timeout=30)
        w2.wait_for("Received 'Fourth message....'", timeout=30)
        assert w1.received() == [f" [x] Received {t!r}" for t in TASKS[0::2]]
        assert w2.received() == [f" [x] Received {t!r}" for t in TASKS[1::2]]
    finally:
        w1.stop()
        w2.stop()


def test_killed_worker_hands_its_task_to_the_other(broker_url: str, fresh_task_queue: None) -> None:
    w1 = Program(EXAMPLES / "pika" / "worker.py", broker_url)
    w1.wait_for("Waiting for messages")
    w2 = Program(EXAMPLES / "pika" / "worker.py", broker_url)
    try:
        w2.wait_for("Waiting for messages")
        run(EXAMPLES / "pika" / "new_task.py", broker_url, "Slow", "task..........")
        w1.wait_for("Received 'Slow task..........'")
        w1.stop(signal.SIGKILL)  # dies mid-task, without acking
        w2.wait_for("Received 'Slow task..........'", timeout=15)
        conn = pika.BlockingConnection(pika.URLParameters(broker_url))
        ok = conn.channel().queue_declare("task_queue", durable=True, passive=True)
        conn.close()
        assert ok.method.message_count == 0  # it is w2's now, unacked, not lost
    finally:
        w1.stop()
        w2.stop()


def test_aio_pika_workers_share_tasks(broker_url: str, fresh_task_queue: None) -> None:
    w1 = Program(EXAMPLES / "aio_pika" / "tasks_worker.py", broker_url)
    w1.wait_for("Waiting for messages")
    w2 = Program(EXAMPLES / "aio_pika" / "tasks_worker.py", broker_url)
    try:
        w2.wait_for("Waiting for messages")
        for task in TASKS[:4]:
            assert "Sent" in run(EXAMPLES / "aio_pika" / "new_task.py", broker_url, *task.split())
        w1.wait_for(f"Message body is: {TASKS[2].encode()!r}", timeout=30)
        w2.wait_for(f"Message body is: {TASKS[3].encode()!r}", timeout=30)
        bodies1 = [line for line in w1.drain() if "Message body is" in line]
        bodies2 = [line for line in w2.drain() if "Message body is" in line]
        assert [b.split("is: ")[1] for b in bodies1] == [repr(t.encode()) for t in TASKS[0:4:2]]
        assert [b.split("is: ")[1] for b in bodies2] == [repr(t.encode()) for t in TASKS[1:4:2]]
    finally:
        w1.stop()
        w2.stop()
