"""What a node starts with: the default user, vhost, permissions and tags (seeded on a
blank node only), loopback-only users, and definitions imported at boot.

Hutch-only: each case is node configuration at start, which the shared test RabbitMQ
cannot be given; the behaviour followed is RabbitMQ 4.x's (rabbit:maybe_insert_default_data,
rabbit_definitions), described in README-ops.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pika
import pytest
import requests

from tests.brokerproc import HutchProcess

pytestmark = pytest.mark.hutch_only


def connect(port: int, user: str, password: str, vhost: str = "/",
            host: str = "127.0.0.1") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        host, port, vhost, pika.PlainCredentials(user, password), connection_attempts=1))


def refused(port: int, user: str, password: str, vhost: str = "/",
            host: str = "127.0.0.1") -> bool:
    try:
        connect(port, user, password, vhost, host).close()
    except pika.exceptions.ProbableAuthenticationError:
        return True
    return False


def queue_exists(conn: pika.BlockingConnection, name: str) -> bool:
    ch = conn.channel()
    try:
        ch.queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    ch.close()
    return True


def non_loopback_address() -> str | None:
    """This machine's first non-loopback IPv4 address, if it has one."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for addr in out.stdout.split():
        if "." in addr and not addr.startswith("127."):
            return addr
    return None


def test_default_user_vhost_permissions_and_tags_are_seeded_once() -> None:
    proc = HutchProcess("--default-user", "alice", "--default-pass", "s3cret",
                        "--default-vhost", "prod", "--default-permissions-configure", "^work$",
                        "--default-user-tags", "monitoring,ops", http=True)
    proc.start()
    try:
        assert "amqp://alice@localhost:" in proc.log_text()  # no password in the ready line
        assert "s3cret" not in proc.log_text()
        assert refused(proc.port, "guest", "guest")  # no guest on this node
        with connect(proc.port, "alice", "s3cret", "prod") as conn:
            ch = conn.channel()
            ch.queue_declare("work", durable=True)  # configure matches
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                conn.channel().queue_declare("other")
            assert info.value.reply_code == 403
        # No "/" vhost: RabbitMQ creates only the default vhost it is told.
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as closed:
            connect(proc.port, "alice", "s3cret", "/")
        assert "530" in str(closed.value) and "vhost / not found" in str(closed.value)
        me = requests.get(proc.http_url + "api/whoami", auth=("alice", "s3cret"), timeout=5)
        assert me.status_code == 200 and sorted(me.json()["tags"]) == ["monitoring", "ops"]
        proc.stop()
        # A later start with another default user: the data dir is not blank, nothing
        # is seeded, alice and her vhost stay (RabbitMQ: "only created on first boot").
        proc.extra_args = ["--default-user", "bob", "--default-pass", "bob"]
        proc.start()
        assert refused(proc.port, "bob", "bob")
        with connect(proc.port, "alice", "s3cret", "prod") as conn:
            assert queue_exists(conn, "work")
    finally:
        proc.stop()


def test_in_memory_every_start_is_a_first_start() -> None:
    proc = HutchProcess("--in-memory", "--default-user", "carol", "--default-pass", "pw")
    proc.start()
    try:
        connect(proc.port, "carol", "pw").close()
        proc.stop()
        proc.extra_args = ["--in-memory", "--default-user", "dave", "--default-pass", "pw"]
        proc.start()
        connect(proc.port, "dave", "pw").close()
        assert refused(proc.port, "carol", "pw")
    finally:
        proc.stop()


@pytest.mark.skipif(non_loopback_address() is None, reason="no non-loopback address")
def test_loopback_users() -> None:
    addr = non_loopback_address()
    assert addr is not None
    proc = HutchProcess("--in-memory", "--host", addr)
    proc.start()
    try:
        # Default: guest only from loopback (connecting to our own non-loopback address
        # makes the peer that address).
        assert refused(proc.port, "guest", "guest", host=addr)
        assert proc.wait_for_log("user 'guest' can only connect via localhost")
        proc.stop()
        proc.extra_args = ["--in-memory", "--host", addr, "--loopback-users", "none"]
        proc.start()
        connect(proc.port, "guest", "guest", host=addr).close()
        proc.stop()
        # Naming other users replaces the default list, as RabbitMQ's loopback_users.*.
        proc.extra_args = ["--in-memory", "--host", addr, "--default-user", "erin",
                           "--default-pass", "pw", "--loopback-users", "erin"]
        proc.start()
        assert refused(proc.port, "erin", "pw", host=addr)
    finally:
        proc.stop()


DEFS = {
    "users": [{"name": "ops", "password": "opspw", "tags": ["administrator"]}],
    "vhosts": [{"name": "/"}, {"name": "jobs"}],
    "permissions": [{"user": "ops", "vhost": "jobs", "configure": ".*", "write": ".*",
                     "read": ".*"}],
    "queues": [{"name": "inbox", "vhost": "jobs", "durable": True, "auto_delete": False,
                "arguments": {"x-queue-type": "classic"}}],
}


def test_load_definitions_at_boot(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "10-users.json").write_text(json.dumps({k: DEFS[k] for k in ("users", "vhosts")}))
    (defs / "20-rest.json").write_text(json.dumps({k: DEFS[k] for k in ("permissions",
                                                                          "queues")}))
    proc = HutchProcess("--load-definitions", str(defs), "--default-user", "nobody-seeded")
    proc.start()
    try:
        # Definitions to load: no default user (guest nor the configured one).
        assert refused(proc.port, "guest", "guest")
        assert refused(proc.port, "nobody-seeded", "guest")
        with connect(proc.port, "ops", "opspw", "jobs") as conn:
            assert queue_exists(conn, "inbox")
            conn.channel().queue_delete("inbox")
        proc.stop()
        # Imported again at every boot, as RabbitMQ does by default.
        proc.start()
        with connect(proc.port, "ops", "opspw", "jobs") as conn:
            assert queue_exists(conn, "inbox")
            conn.channel().queue_delete("inbox")
        proc.stop()
        # definitions.skip_if_unchanged: the first boot with it imports (no hash yet),
        # the next one with unchanged files does not.
        proc.extra_args += ["--definitions-skip-if-unchanged", "true"]
        proc.start()
        with connect(proc.port, "ops", "opspw", "jobs") as conn:
            conn.channel().queue_delete("inbox")
        proc.stop()
        proc.start()
        assert "matches current contents" in proc.log_text()
        with connect(proc.port, "ops", "opspw", "jobs") as conn:
            assert not queue_exists(conn, "inbox")
    finally:
        proc.stop()


@pytest.mark.parametrize("content, reason", [
    ("{not json", "is not valid JSON"),
    ('{"users": "ops"}', "is not usable"),
    (None, "cannot read definitions file"),
])
def test_a_bad_definitions_file_stops_the_start_with_one_line(
        tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "defs.json"
    if content is not None:
        path.write_text(content)
    data_dir = tmp_path / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run([sys.executable, "-m", "hutch", "serve", "--port", str(port),
                          "--http-port", "0", "--prometheus-port", "0", "--data-dir",
                          str(data_dir), "--load-definitions", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hutch: ") and reason in lines[0], out.stderr
    assert str(path) in lines[0]
    assert not data_dir.exists()  # refused before anything was created
