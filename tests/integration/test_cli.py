"""The ``hutch`` console script as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pika
import pytest

from tests.toolproc import hutch_cmd


@pytest.mark.hutch_only
def test_console_script_is_installed_next_to_the_interpreter() -> None:
    """pip install puts ``hutch`` beside the interpreter that runs the tests (the venv's
    bin/); it runs the same package as ``python -m hutch``."""
    exe = os.path.join(os.path.dirname(sys.executable), "hutch")
    assert os.path.exists(exe), "the console script is installed by pip install"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True, timeout=30)
    same = subprocess.run([*hutch_cmd(), "--version"], capture_output=True, text=True, check=True,
                          timeout=30)
    assert out.stdout == same.stdout and out.stdout.startswith("hutch ")


@pytest.mark.hutch_only
def test_hutch_serve_prints_ready_and_stops_cleanly_on_sigint(tmp_path) -> None:
    # Its own data dir and free ports: never the user's default ones.
    proc = subprocess.Popen([*hutch_cmd(), "serve", "--port", "0", "--http-port", "0",
                             "--data-dir", str(tmp_path / "data")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready" in line
        port = int(line.split("localhost:")[1].split("/")[0])
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
    out = subprocess.run([*hutch_cmd(), "--help"], capture_output=True, text=True, check=True)
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
