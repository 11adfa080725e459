"""Logs of a real ``hutch serve``: RabbitMQ 4.x's line shape, JSON lines, per-output
levels, size rotation with RabbitMQ's archive names, SIGHUP reopening the file.

Hutch-only: these start private brokers with log options; RabbitMQ's equivalents are
configuration of the node, which the shared test RabbitMQ cannot be given.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

from tests.brokerproc import HutchProcess

pytestmark = pytest.mark.hutch_only

# rabbit_logger_text_fmt's default prefix: time [level] <pid> (Hutch: the logger's name).
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d "
                  r"\[(debug|info|notice|warning|error|critical)\] <hutch[\w.]*> \S")


def bad_login(port: int, user: str = "nobody") -> None:
    """One refused login: an info line (accepting) and error lines (refused)."""
    params = pika.ConnectionParameters("127.0.0.1", port,
                                       credentials=pika.PlainCredentials(user, "wrong"),
                                       connection_attempts=1)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(params)


def wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_text_lines_have_rabbitmqs_shape_and_each_output_its_level(tmp_path: Path) -> None:
    log = tmp_path / "hutch.log"
    proc = HutchProcess("--in-memory", "--log-file", str(log), "--log-file-level", "error",
                        "--log-console-level", "info")
    proc.start()
    try:
        bad_login(proc.port)
        assert wait_for(lambda: "invalid credentials" in log.read_text())
        assert proc.wait_for_log("accepting AMQP connection")
    finally:
        proc.stop()
    lines = log.read_text().splitlines()
    assert lines and all(LINE.match(x) for x in lines), lines
    # The file is at error: no info line reached it; the console (info) has both.
    assert all("[error]" in x for x in lines), lines
    # A multi-line message carries the prefix on each line, as RabbitMQ's formatter does.
    assert any(x.endswith("login refused: user 'nobody' - invalid credentials") for x in lines)
    console = [x for x in proc.log_lines if not x.startswith("hutch ")]
    assert all(LINE.match(x) for x in console), console
    assert any("[info] <hutch" in x and "accepting AMQP connection" in x for x in console)
    assert any("[error]" in x for x in console)


def test_json_lines_have_rabbitmqs_fields(tmp_path: Path) -> None:
    log = tmp_path / "hutch.json"
    proc = HutchProcess("--in-memory", "--log-file", str(log), "--log-file-formatter", "json",
                        "--log-console-formatter", "json")
    proc.start()
    try:
        bad_login(proc.port)
        assert wait_for(lambda: "invalid credentials" in log.read_text())
    finally:
        proc.stop()
    docs = [json.loads(x) for x in log.read_text().splitlines()]
    for doc in docs:
        assert {"time", "level", "msg"} <= doc.keys(), doc
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$", doc["time"])
    assert any(d["level"] == "error" and "invalid credentials" in d["msg"] for d in docs)
    assert any(d["level"] == "info" and d["domain"].startswith("hutch") for d in docs)
    console = [json.loads(x) for x in proc.log_lines if x.startswith("{")]
    assert console and all("msg" in d for d in console)


def test_size_rotation_keeps_count_archives_named_as_rabbitmqs(tmp_path: Path) -> None:
    log = tmp_path / "rabbit.log"
    proc = HutchProcess("--in-memory", "--log-file", str(log), "--log-file-rotation-size", "1500",
                        "--log-file-rotation-count", "2")
    proc.start()
    try:
        for i in range(12):  # ~450 bytes of lines each
            bad_login(proc.port, f"user{i:02d}")
        assert wait_for(lambda: "user11" in log.read_text())
    finally:
        proc.stop()
    names = sorted(p.name for p in tmp_path.iterdir())
    # Erlang logger_std_h's names: the live file, then .0 (newest) and .1; never .2.
    assert names == ["rabbit.log", "rabbit.log.0", "rabbit.log.1"], names
    for name in names:
        assert (tmp_path / name).stat().st_size <= 1500
    users = {name: re.findall(r"user(\d\d)", (tmp_path / name).read_text()) for name in names}
    # Newest first: every user in .0 came after every user in .1.
    assert max(map(int, users["rabbit.log.1"])) <= min(map(int, users["rabbit.log.0"]))
    assert "11" in users["rabbit.log"] or "11" in users["rabbit.log.0"]


def test_sighup_reopens_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "hutch.log"
    proc = HutchProcess("--in-memory", "--log-file", str(log))
    proc.start()
    try:
        assert proc.proc is not None
        assert wait_for(lambda: "started TCP listener" in log.read_text())
        moved = tmp_path / "hutch.log.1"
        os.rename(log, moved)  # what logrotate does without copytruncate
        proc.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: log.exists() and "reopened log file" in log.read_text()), \
            proc.log_text()
        bad_login(proc.port)
        assert wait_for(lambda: "invalid credentials" in log.read_text())
        assert proc.proc.poll() is None  # SIGHUP did not stop it
    finally:
        proc.stop()
    assert "invalid credentials" not in moved.read_text()
    assert "started TCP listener" in moved.read_text()


def test_a_log_file_that_cannot_be_opened_stops_the_start_with_one_line(tmp_path: Path) -> None:
    # A missing directory is created, as RabbitMQ's handler does; one that is a file
    # cannot be.
    (tmp_path / "a-file").write_text("")
    bad = tmp_path / "a-file" / "hutch.log"
    out = subprocess.run([sys.executable, "-m", "hutch", "serve", "--in-memory", "--port", "0",
                          "--http-port", "0", "--prometheus-port", "0", "--log-file", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"hutch: cannot open log file {tmp_path / 'a-file'}: File exists"], out.stderr
