"""``hutch ctl`` in scripts: JSON output that parses, ``await_startup`` after ``hutch serve &``,
and a README that documents every command ``hutch ctl help`` lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pika
import pytest

from tests.brokerproc import HutchProcess, free_port

pytestmark = pytest.mark.hutch_only
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ctl(exe: list[str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*exe, "ctl", *args], capture_output=True, text=True, timeout=timeout)


def test_formatter_json_prints_only_json_on_stdout(hutch_exe: list[str], private_hutch) -> None:
    """rabbitmqctl drops banners for machine-readable formatters and wraps a result in
    words as {"message": ...}: a script can feed stdout to a JSON parser, whatever the
    command."""
    url = private_hutch.http_url
    queue = f"q-{uuid.uuid4().hex[:6]}"
    conn = pika.BlockingConnection(pika.URLParameters(private_hutch.url))
    conn.channel().queue_declare(queue)
    commands = [
        ["list_queues", "name", "messages"], ["list_exchanges"], ["list_bindings"],
        ["list_connections"], ["list_channels"], ["list_consumers"], ["list_users"],
        ["list_vhosts"], ["list_permissions"], ["list_user_permissions", "guest"],
        ["add_user", "jay", "pw"], ["set_user_tags", "jay", "monitoring"],
        ["authenticate_user", "jay", "pw"], ["change_password", "jay", "pw2"],
        ["add_vhost", "v1"], ["set_permissions", "-p", "v1", "jay", ".*", ".*", ".*"],
        ["clear_permissions", "-p", "v1", "jay"], ["delete_vhost", "v1"],
        ["delete_user", "jay"], ["purge_queue", queue], ["delete_queue", queue],
        ["status"], ["ping"], ["await_startup"], ["export_definitions", "-"],
    ]
    try:
        for args in commands:
            r = ctl(hutch_exe, "--url", url, "--user", "guest", "--password", "guest",
                    "--formatter", "json", *args)
            assert r.returncode == 0, (args, r.stderr)
            if r.stdout.strip():
                json.loads(r.stdout)  # raises on any banner line
        r = ctl(hutch_exe, "--url", url, "--formatter", "json", "ping")
        assert json.loads(r.stdout) == {"message": "Ping succeeded"}
    finally:
        conn.close()


def test_await_startup_waits_for_a_broker_started_after_it(hutch_exe: list[str], tmp_path) -> None:
    """``hutch serve & hutch ctl await_startup``: ctl starts first and returns once the
    broker answers (its URL and cookie come from the data dir, written at start)."""
    data_dir = str(tmp_path / "data")
    waiter = subprocess.Popen([*hutch_exe, "ctl", "--data-dir", data_dir, "await_startup",
                               "--timeout", "60"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    broker = HutchProcess(data_dir=data_dir, http=True)
    try:
        assert waiter.poll() is None, waiter.communicate()  # still waiting: nothing runs yet
        broker.start()
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
        assert out == "" and err == ""
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        conn.close()
    finally:
        if waiter.poll() is None:
            waiter.kill()
        broker.stop()


def test_await_startup_gives_up_after_its_timeout(hutch_exe: list[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}/"
    r = ctl(hutch_exe, "--url", dead, "-t", "1", "await_startup")
    assert r.returncode == 75  # EX_TEMPFAIL, as rabbitmqctl's timeouts
    assert r.stdout == ""
    assert r.stderr.startswith("Error: Hutch did not start within 1 seconds")
    r = ctl(hutch_exe, "--url", dead, "await_startup", "--timeout", "soon")
    assert r.returncode == 64 and "invalid timeout 'soon'" in r.stderr


def test_await_startup_default_timeout_is_rabbitmqctls() -> None:
    from hutch.admin.ctl import DEFAULT_TIMEOUTS

    # rabbitmqctl's AwaitStartupCommand: @default_timeout 300_000 (ms).
    assert DEFAULT_TIMEOUTS["await_startup"] == 300.0


def test_readme_lists_every_ctl_command() -> None:
    r = subprocess.run([sys.executable, "-m", "hutch", "ctl", "help"], capture_output=True,
                       text=True, timeout=30)
    commands = r.stdout.split("commands:", 1)[1].split()
    assert "await_startup" in commands and "list_queues" in commands
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("### `hutch ctl`", 1)[1].split("\n### ", 1)[0]
    missing = [c for c in commands if f"`{c}" not in section]
    assert missing == []
