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
                             "--prometheus-port", "0", "--data-dir", str(tmp_path / "data")],
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


def _serve_on_taken_port(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    data_dir = tmp_path / "new-data-dir"
    r = subprocess.run([*hutch_cmd(), "serve", "--data-dir", str(data_dir), *args],
                       capture_output=True, text=True, timeout=30)
    return r, str(data_dir)


@pytest.mark.hutch_only
@pytest.mark.parametrize("which", ["amqp", "http"])
def test_serve_on_a_taken_port_says_so_in_one_line_and_leaves_nothing(tmp_path, which) -> None:
    """Someone trying Hutch often has RabbitMQ on 5672/15672 already: one line naming the
    address and the option to change, a non-zero exit, and no new data dir."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if which == "amqp":
            r, data_dir = _serve_on_taken_port(tmp_path, "--port", str(port), "--http-port", "0")
            option = "--port"
        else:
            r, data_dir = _serve_on_taken_port(tmp_path, "--port", "0", "--http-port", str(port))
            option = "--http-port"
    assert r.returncode != 0
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"hutch: cannot listen on 127.0.0.1:{port}: address already in use — "
        f"is RabbitMQ or another hutch running? use {option}"]
    assert not os.path.exists(data_dir)


@pytest.mark.parametrize(("args", "wanted"), [
    (["serve", "--http-max-body", "lots"], "argument --http-max-body: invalid size 'lots'"),
    (["serve", "--max-message-size", "-1"], "argument --max-message-size: invalid size '-1'"),
    (["serve", "--segment-size", "1k"], "argument --segment-size: invalid segment size '1k'"),
    (["perf", "--size", "big"], "argument -s/--size: invalid size 'big'"),
    (["perf", "--queue-args", "{"], "argument --queue-args: invalid JSON '{'"),
])
def test_bad_option_values_are_explained_without_internal_names(args, wanted) -> None:
    r = subprocess.run([*hutch_cmd(), *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert wanted in r.stderr
    assert "_parse" not in r.stderr and "loads" not in r.stderr and "value:" not in r.stderr
