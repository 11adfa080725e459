"""The ``hutch`` console script as a user runs it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pika
import pytest


@pytest.mark.hutch_only
def test_hutch_serve_prints_ready_and_stops_cleanly_on_sigint() -> None:
    exe = shutil.which("hutch")
    assert exe, "the console script is installed by pip install"
    start = time.monotonic()
    proc = subprocess.Popen([exe, "serve", "--port", "0", "--http-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        boot = time.monotonic() - start
        assert "ready" in line
        port = int(line.split("localhost:")[1].split("/")[0])
        assert boot < 3.0, f"took {boot:.2f}s to become ready"
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        conn.channel().queue_declare("", exclusive=True)
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "accepting AMQP connection" in err and "stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_help_lists_serve() -> None:
    out = subprocess.run(["hutch", "--help"], capture_output=True, text=True, check=True)
    assert "serve" in out.stdout


@pytest.mark.hutch_only
def test_listens_on_both_loopbacks_and_logs_to_file(tmp_path) -> None:
    from tests.brokerproc import HutchProcess

    log_file = tmp_path / "hutch.log"
    proc = HutchProcess("--log-file", str(log_file))
    proc.start()
    try:
        for host in ("127.0.0.1", "::1"):
            conn = pika.BlockingConnection(pika.ConnectionParameters(host, proc.port))
            conn.channel().queue_declare("", exclusive=True)
            conn.close()
    finally:
        proc.stop()
    text = log_file.read_text()
    assert "accepting AMQP connection [::1]:" in text or "accepting AMQP connection ::1:" in text
    assert "accepting AMQP connection 127.0.0.1:" in text
    assert "granted access to vhost '/'" in text
