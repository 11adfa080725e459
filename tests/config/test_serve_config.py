"""``hutch serve --config FILE`` with real files, checked by their effect on a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pika
import pika.exceptions
import pytest
import requests

from tests.brokerproc import HutchProcess, free_port

pytestmark = pytest.mark.hutch_only


def _write(tmp_path, text: str, name: str = "hutch.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _serve(*args: str, env: dict[str, str] | None = None, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hutch", "serve", *args], capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))


def _overview(port: int) -> int:
    return requests.get(f"http://127.0.0.1:{port}/api/overview", auth=("guest", "guest"),
                        timeout=5).status_code


def test_file_sets_listeners_store_and_limits(tmp_path):
    http = free_port()
    data = tmp_path / "data"
    conf = _write(tmp_path, f"""
# a production-like file
management.tcp.port = {http}
management.tcp.ip   = 127.0.0.1
prometheus.tcp.port = 0
hutch.data_dir = {data}
hutch.sync = always
max_message_size = 1000
consumer_timeout = 300
cluster_name = ignored   # warned about
""")
    proc = HutchProcess("--config", conf, "--port", "0", base_flags=False)
    proc.start()
    try:
        assert _overview(http) == 200
        assert os.path.isdir(data / "msgs")
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("work", durable=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
            ch.basic_publish("", "work", b"x" * 1001)
            ch.queue_declare("work", passive=True)  # the close arrives by the next sync call
        assert exc.value.reply_code == 406
        assert "larger than configured max size 1000" in exc.value.reply_text
        ch = conn.channel()
        ch.basic_publish("", "work", b"task")
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume("work", lambda *a: None)
        deadline = time.monotonic() + 5
        while ch.is_open and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        assert not ch.is_open, "consumer_timeout = 300 from the file did not time the delivery out"
        assert "Timeout value used: 300 ms" in ch._closing_reason.reply_text
        conn.close()
        log = proc.log_text()
        assert f"configuration file: {conf}" in log
        assert log.count("cluster_name is not supported and has no effect") == 1
    finally:
        proc.stop()


def test_a_flag_overrides_the_file(tmp_path):
    in_file, on_flag = free_port(), free_port()
    conf = _write(tmp_path, f"management.tcp.port = {in_file}\nhutch.in_memory = true\n")
    proc = HutchProcess("--config", conf, "--port", "0", "--http-port", str(on_flag),
                        "--prometheus-port", "0", base_flags=False)
    proc.start()
    try:
        assert _overview(on_flag) == 200
        with pytest.raises(requests.ConnectionError):
            _overview(in_file)
    finally:
        proc.stop()


def test_hutch_config_file_environment_variable(tmp_path):
    http = free_port()
    conf = _write(tmp_path, f"management.tcp.port = {http}\nhutch.in_memory = true\n")
    proc = HutchProcess("--port", "0", "--prometheus-port", "0", base_flags=False,
                        env={"HUTCH_CONFIG_FILE": conf})
    proc.start()
    try:
        assert _overview(http) == 200
    finally:
        proc.stop()


@pytest.mark.parametrize(("text", "message"), [
    ("hutch.in_memory = true\nheartbeat_typo = 5\n",
     "{conf}:2: Conf file attempted to set unknown variable: heartbeat_typo"),
    ("management.tcp.port = http\n", "{conf}:1: management.tcp.port: invalid integer 'http'"),
    ("hutch.data_dir = ''\n", "{conf}:1: hutch.data_dir: a directory path may not be empty"),
    ("listeners.tcp.default 5672\n",
     "{conf}:1: expected 'key = value', got 'listeners.tcp.default 5672'"),
])
def test_a_bad_file_refuses_to_start_and_creates_nothing(tmp_path, text, message):
    conf = _write(tmp_path, text)
    data = tmp_path / "never"
    result = _serve("--config", conf, "--port", "0", "--http-port", "0", "--prometheus-port", "0",
                    "--data-dir", str(data))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"hutch: configuration file {message.format(conf=conf)}"]
    assert not data.exists()


def test_a_missing_file_is_one_line(tmp_path):
    result = _serve("--port", "0", env={"HUTCH_CONFIG_FILE": str(tmp_path / "nope.conf")})
    assert result.returncode == 1
    assert result.stderr.strip() == (f"hutch: configuration file {tmp_path / 'nope.conf'}: cannot read "
                                     f"the configuration file: No such file or directory")


def test_flags_win_over_the_files_other_spelling_of_the_same_setting(tmp_path):
    """--port against the file's listeners.tcp.default, --loopback-users against its
    loopback_users = none, --no-in-memory against hutch.in_memory = true."""
    in_file, on_flag, http = free_port(), free_port(), free_port()
    conf = _write(tmp_path, f"listeners.tcp.default = {in_file}\nloopback_users = none\n"
                            f"hutch.in_memory = true\nmanagement.tcp.port = {http}\n")
    proc = HutchProcess("--config", conf, "--host", "127.0.0.1", "--port", str(on_flag),
                        "--loopback-users", "guest", "--no-in-memory", "--data-dir",
                        str(tmp_path / "d"), "--prometheus-port", "0", base_flags=False)
    proc.start()
    try:
        pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{on_flag}/")).close()
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{in_file}/"))
        rows = requests.get(f"http://127.0.0.1:{http}/api/hutch/environment", auth=("guest", "guest"),
                            timeout=5).json()
        values = {r["key"]: r["value"] for r in rows}
        assert values["loopback_users.*"] == "guest" and values["loopback_users"] == "false", values
        assert os.path.isdir(tmp_path / "d" / "msgs")
    finally:
        proc.stop()


def test_log_directory_is_created_and_a_default_user_without_password_is_warned(tmp_path):
    log_file = tmp_path / "new" / "sub" / "hutch.log"
    conf = _write(tmp_path, f"log.file = {log_file}\nhutch.in_memory = true\ndefault_user = admin\n")
    proc = HutchProcess("--config", conf, "--port", "0", "--http-port", "0", "--prometheus-port",
                        "0", base_flags=False)
    proc.start()
    try:
        assert log_file.exists()
        assert "default_user 'admin' gets the password 'guest'" in log_file.read_text()
    finally:
        proc.stop()


def test_an_empty_data_dir_flag_is_one_line(tmp_path):
    result = _serve("--port", "0", "--data-dir", "")
    assert result.returncode == 2
    assert "a directory path may not be empty" in result.stderr
    assert "Traceback" not in result.stderr
