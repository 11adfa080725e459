"""The way to a RabbitMQ cluster: definitions Hutch -> RabbitMQ -> Hutch.

Runs when CI (``.ci/run``) points ``HUTCH_TEST_RABBITMQCTL`` at the test node's
rabbitmqctl (``.ci/rabbitmq.sh ctl``) and ``HUTCH_TEST_AMQP_URL`` at its AMQP
port.  A user exported from Hutch logs in to RabbitMQ with the same password
(same salted SHA-256 hash), and the topology routes the same; then RabbitMQ's
own export imports back into a fresh Hutch.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.mgmt import Api
from tests.toolproc import hutch_cmd

RABBITMQCTL = os.environ.get("HUTCH_TEST_RABBITMQCTL")
AMQP_URL = os.environ.get("HUTCH_TEST_AMQP_URL")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not (RABBITMQCTL and AMQP_URL),
                                reason="needs HUTCH_TEST_RABBITMQCTL and HUTCH_TEST_AMQP_URL "
                                       "(a RabbitMQ node, as .ci/run starts)")


def rabbitmqctl(*args: str, stdin: str | None = None) -> str:
    r = subprocess.run([*shlex.split(RABBITMQCTL or ""), *args], capture_output=True, text=True,
                       timeout=120, cwd=ROOT, input=stdin)
    assert r.returncode == 0, f"rabbitmqctl {args}: {r.stdout}\n{r.stderr}"
    return r.stdout


def hutch_ctl(url: str, *args: str) -> str:
    r = subprocess.run([*hutch_cmd(), "ctl", "--url", url, *args], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def route_one(host: str, port: int, vhost: str, user: str, password: str, exchange: str,
              key: str, queue: str) -> bytes | None:
    """Log in as the migrated user, publish through the migrated exchange, get it back."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host, port, vhost, pika.PlainCredentials(user, password), connection_attempts=1))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, passive=True)
        ch.basic_publish(exchange, key, b"migrated", mandatory=True)
        for _ in range(50):
            _m, _p, body = ch.basic_get(queue, auto_ack=True)
            if body is not None:
                return body
            time.sleep(0.05)
        return None
    finally:
        conn.close()


def test_definitions_round_trip_through_rabbitmq(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    user, password, vhost = f"mover-{tag}", f"pw-{tag}", f"jobs-{tag}"
    rabbit = urlparse(AMQP_URL or "")
    first = HutchProcess("--in-memory", http=True)
    first.start()
    try:
        url = first.http_url
        hutch_ctl(url, "add_user", user, password)
        hutch_ctl(url, "set_user_tags", user, "management")
        hutch_ctl(url, "add_vhost", vhost)
        hutch_ctl(url, "set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", first.port, vhost, pika.PlainCredentials(user, password)))
        ch = conn.channel()
        ch.exchange_declare("events", "topic", durable=True)
        ch.exchange_declare("orders", "direct", durable=True)
        ch.queue_declare("tasks", durable=True, arguments={"x-max-length": 1000,
                                                          "x-message-ttl": 600000})
        ch.queue_bind("tasks", "orders", "order.new")
        ch.exchange_bind("orders", "events", "order.#")
        conn.close()
        hutch_ctl(url, "set_policy", "-p", vhost, "--priority", "2", "--apply-to", "queues",
                  "cap", "^tasks$", '{"max-length":5,"dead-letter-exchange":"orders"}')
        exported = tmp_path / "hutch.json"
        hutch_ctl(url, "export_definitions", str(exported))
    finally:
        first.stop()

    # Hutch -> RabbitMQ.
    try:
        rabbitmqctl("import_definitions", str(exported))
        # RabbitMQ imports asynchronously: wait for the last objects, the bindings.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if vhost in rabbitmqctl("-q", "list_vhosts"):
                bindings = rabbitmqctl("-q", "list_bindings", "-p", vhost)
                if "order.#" in bindings and "\torder.new\t" in bindings:
                    break
            time.sleep(0.2)
        assert route_one(rabbit.hostname or "127.0.0.1", rabbit.port or 5672, vhost, user,
                         password, "events", "order.new", "tasks") == b"migrated"
        queues = rabbitmqctl("-q", "list_queues", "-p", vhost, "name", "durable", "arguments")
        assert "tasks\ttrue\t" in queues and "x-max-length" in queues
        policies = rabbitmqctl("-q", "list_policies", "-p", vhost)
        assert (f'{vhost}\tcap\t^tasks$\tqueues\t{{"dead-letter-exchange":"orders",'
                '"max-length":5}\t2') in policies.splitlines()

        # RabbitMQ -> a fresh Hutch.
        defs = json.loads(rabbitmqctl("export_definitions", "-"))
        mine = {
            # guest comes along, with RabbitMQ's hash of its password (another salt).
            "users": [u for u in defs["users"] if u["name"] in (user, "guest")],
            "vhosts": [v for v in defs["vhosts"] if v["name"] == vhost],
            "permissions": [p for p in defs["permissions"] if p["vhost"] == vhost],
            **{k: [o for o in defs[k] if o["vhost"] == vhost]
               for k in ("queues", "exchanges", "bindings", "policies")},
        }
        assert {u["hashing_algorithm"] for u in mine["users"]} == {"rabbit_password_hashing_sha256"}
        rabbit_guest_hash = next(u["password_hash"] for u in mine["users"] if u["name"] == "guest")
        back = tmp_path / "rabbit.json"
        back.write_text(json.dumps({**defs, **mine}))
    finally:
        subprocess.run([*shlex.split(RABBITMQCTL or ""), "delete_vhost", vhost],
                       capture_output=True, cwd=ROOT, timeout=60)
        subprocess.run([*shlex.split(RABBITMQCTL or ""), "delete_user", user],
                       capture_output=True, cwd=ROOT, timeout=60)

    second = HutchProcess("--in-memory", http=True)
    second.start()
    try:
        hutch_ctl(second.http_url, "import_definitions", str(back))
        assert route_one("127.0.0.1", second.port, vhost, user, password, "events", "order.new",
                         "tasks") == b"migrated"
        out = hutch_ctl(second.http_url, "-q", "list_queues", "-p", vhost, "name", "arguments")
        assert 'tasks\t[{"x-max-length",1000},{"x-message-ttl",600000}]' in out
        # The policy came back and applies (the lower max-length, 5, wins).
        q = Api(second.http_url).ok("GET", f"queues/{vhost}/tasks")
        assert q["policy"] == "cap"
        assert q["effective_policy_definition"] == {"dead-letter-exchange": "orders",
                                                    "max-length": 5}
        # guest from RabbitMQ's file (a different salt, the same password) still logs in:
        # the guest now in Hutch is RabbitMQ's (its hash), not Hutch's default one.
        api = Api(second.http_url)
        assert api.ok("GET", "users/guest")["password_hash"] == rabbit_guest_hash
        pika.BlockingConnection(pika.URLParameters(second.url)).close()
    finally:
        second.stop()
