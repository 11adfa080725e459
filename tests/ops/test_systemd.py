"""sd_notify: a real unix datagram socket as NOTIFY_SOCKET, as systemd gives a
Type=notify service.  READY=1 must come only once the AMQP port accepts connections,
STOPPING=1 when SIGTERM starts the clean stop.  Hutch-only (a Hutch process feature)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.brokerproc import free_port

pytestmark = pytest.mark.hutch_only


def serve(notify_socket: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=notify_socket)
    proc = subprocess.Popen([sys.executable, "-m", "hutch", "serve", "--port", str(port),
                             "--http-port", "0", "--prometheus-port", "0",
                             "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return proc, port


def check(sock: socket.socket, proc: subprocess.Popen[str], port: int) -> None:
    try:
        sock.settimeout(20)
        first = sock.recv(4096).decode()
        # The first datagram is READY=1, and by then the port accepts connections (no
        # retry: a READY sent before listening would make this connect fail).
        assert "READY=1" in first.split("\n"), first
        assert f"MAINPID={proc.pid}" in first.split("\n")
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096).decode().split("\n") == ["STOPPING=1"]
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ready_after_listening_and_stopping_at_sigterm(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        proc, port = serve(path, tmp_path)
        check(sock, proc, port)


def test_abstract_namespace_socket(tmp_path: Path) -> None:
    name = f"hutch-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        proc, port = serve("@" + name, tmp_path)
        check(sock, proc, port)
