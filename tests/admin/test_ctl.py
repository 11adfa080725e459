"""The real ``hutch ctl`` executable against a running ``hutch serve``.

Output shapes are rabbitmqctl 3.10's (recorded from a real node): a banner
line or two, a tab-separated header, one row per object; ``-q`` drops the
banner, ``--no-table-headers`` the header, ``--formatter json`` prints JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest

from tests.brokerproc import free_port

pytestmark = pytest.mark.hutch_only


def ctl(exe: list[str], url: str, *args: str, user: str = "guest", password: str = "guest",
        env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*exe, "ctl", "--url", url, "--user", user, "--password", password,
                           *args], capture_output=True, text=True, timeout=30, env=env,
                          input=stdin)


def rows(out: str) -> list[list[str]]:
    return [line.split("\t") for line in out.splitlines()]


def test_list_queues_shape_and_options(hutch_exe: list[str], http_url: str, broker_url: str,
                                       qname: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.queue_declare(qname, durable=True, arguments={"x-max-length": 100})
        for i in range(2):
            ch.basic_publish("", qname, b"m%d" % i)
        r = ctl(hutch_exe, http_url, "list_queues", "name", "messages_ready",
                "messages_unacknowledged", "durable", "arguments", "consumers")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[:3] == ["Timeout: 60.0 seconds ...", "Listing queues for vhost / ...",
                             "name\tmessages_ready\tmessages_unacknowledged\tdurable\targuments"
                             "\tconsumers"]
        assert f"{qname}\t2\t0\ttrue\t[{{\"x-max-length\",100}}]\t0" in lines
        r = ctl(hutch_exe, http_url, "-q", "list_queues", "name", "messages")
        assert r.stdout.splitlines()[0] == "name\tmessages"
        r = ctl(hutch_exe, http_url, "list_queues", "-q", "--no-table-headers", "name", "messages")
        assert [qname, "2"] in rows(r.stdout) and ["name", "messages"] not in rows(r.stdout)
        r = ctl(hutch_exe, http_url, "list_queues", "--formatter", "json", "-q", "name", "messages",
                "memory")
        data = json.loads(r.stdout)
        mine = next(d for d in data if d["name"] == qname)
        assert mine["messages"] == 2 and mine["memory"] > 0
        r = ctl(hutch_exe, http_url, "list_queues", "name", "nosuchcol")
        assert r.returncode == 64
        assert "Info key(s) nosuchcol are not supported" in r.stderr
    finally:
        conn.channel().queue_delete(qname)
        conn.close()


FORGETFUL_WORKER = """
import sys, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.queue_declare(sys.argv[2], durable=True)
def callback(ch, method, properties, body):
    print(" [x] Received %r" % body, flush=True)   # ... and forgets basic_ack
ch.basic_consume(queue=sys.argv[2], on_message_callback=callback)
print(" [*] Waiting for messages.", flush=True)
ch.start_consuming()
"""


def test_seed_stuck_work_diagnosis(hutch_exe: list[str], http_url: str, broker_url: str,
                                   qname: str) -> None:
    """A worker that forgets to ack: messages_unacknowledged grows, and the messages
    go back to ready when the worker exits."""
    worker = subprocess.Popen([sys.executable, "-c", FORGETFUL_WORKER, broker_url, qname],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        assert "Waiting" in worker.stdout.readline()
        conn = pika.BlockingConnection(pika.URLParameters(broker_url))
        ch = conn.channel()
        for i in range(3):
            ch.basic_publish("", qname, b"task %d" % i, pika.BasicProperties(delivery_mode=2))
        for _ in range(3):
            assert "Received" in worker.stdout.readline()

        def counts() -> list[str]:
            r = ctl(hutch_exe, http_url, "list_queues", "name", "messages_ready",
                    "messages_unacknowledged")
            assert r.returncode == 0, r.stderr
            return next(row for row in rows(r.stdout) if row[0] == qname)

        assert counts() == [qname, "0", "3"]
        worker.terminate()
        worker.wait(10)
        deadline = time.monotonic() + 10
        while counts() != [qname, "3", "0"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert counts() == [qname, "3", "0"]
        ch.queue_delete(qname)
        conn.close()
    finally:
        if worker.poll() is None:
            worker.kill()


def test_seed_login_failure_fixed_by_change_password(hutch_exe: list[str], private_hutch) -> None:
    url, amqp = private_hutch.http_url, private_hutch.url
    assert ctl(hutch_exe, url, "add_user", "admin", "adminpw").returncode == 0
    assert ctl(hutch_exe, url, "set_user_tags", "admin", "administrator").returncode == 0
    assert ctl(hutch_exe, url, "change_password", "guest", "oops").returncode == 0
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(amqp))
    as_admin = {"user": "admin", "password": "adminpw"}
    r = ctl(hutch_exe, url, "list_users", **as_admin)
    # In name order: the management API sorts every list (RabbitMQ's reply_list).
    assert r.stdout.splitlines() == ["Listing users ...", "user\ttags", "admin\t[administrator]",
                                     "guest\t[administrator]"]
    r = ctl(hutch_exe, url, "authenticate_user", "guest", "guest", **as_admin)
    assert r.returncode == 65 and 'failed to authenticate user "guest"' in r.stderr
    r = ctl(hutch_exe, url, "change_password", "guest", "guest", **as_admin)
    assert r.returncode == 0 and r.stdout == 'Changing password for user "guest" ...\n'
    r = ctl(hutch_exe, url, "authenticate_user", "guest", "guest")
    assert r.returncode == 0 and r.stdout.splitlines() == ['Authenticating user "guest" ...',
                                                           "Success"]
    pika.BlockingConnection(pika.URLParameters(amqp)).close()


def test_users_vhosts_permissions_commands(hutch_exe: list[str], private_hutch) -> None:
    url = private_hutch.http_url

    def run(*args: str) -> subprocess.CompletedProcess:
        return ctl(hutch_exe, url, *args)

    r = run("add_user", "bob", "secret")
    assert r.returncode == 0 and r.stdout.startswith('Adding user "bob" ...\nDone.')
    r = run("add_user", "bob", "secret")
    assert r.returncode == 70 and r.stderr == 'Error: User "bob" already exists\n'
    r = run("set_user_tags", "bob", "monitoring", "management")
    assert r.stdout == 'Setting tags for user "bob" to [monitoring, management] ...\n'
    assert "bob\t[monitoring, management]" in run("list_users").stdout
    assert run("add_vhost", "v1").stdout == 'Adding vhost "v1" ...\n'
    assert run("list_vhosts").stdout.splitlines() == ["Listing vhosts ...", "name", "/", "v1"]
    r = run("set_permissions", "-p", "v1", "bob", "^b.*", ".*", ".*")
    assert r.returncode == 0
    assert r.stdout == 'Setting permissions for user "bob" in vhost "v1" ...\n'
    r = run("list_permissions", "-p", "v1")
    assert r.stdout.splitlines() == ['Listing permissions for vhost "v1" ...',
                                     "user\tconfigure\twrite\tread", "bob\t^b.*\t.*\t.*"]
    r = run("list_user_permissions", "bob")
    assert r.stdout.splitlines()[1:] == ["vhost\tconfigure\twrite\tread", "v1\t^b.*\t.*\t.*"]
    r = run("set_permissions", "-p", "nov", "bob", ".*", ".*", ".*")
    assert r.returncode == 69 and r.stderr == "Error: Virtual host nov does not exist\n"
    r = run("set_permissions", "-p", "v1", "nobody", ".*", ".*", ".*")
    assert r.returncode == 67 and r.stderr == "Error: User nobody does not exist\n"
    r = run("set_permissions", "-p", "v1", "bob", "(", ".*", ".*")
    assert r.returncode == 69 and "regular expression '(' is invalid" in r.stderr
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", private_hutch.port, "v1", pika.PlainCredentials("bob", "secret")))
    conn.close()
    assert run("clear_permissions", "-p", "v1", "bob").returncode == 0
    assert run("list_permissions", "-p", "v1").stdout == 'Listing permissions for vhost "v1" ...\n'
    r = run("delete_vhost", "v1")
    assert r.returncode == 0 and r.stdout == 'Deleting vhost "v1" ...\n'
    r = run("delete_vhost", "v1")
    assert r.returncode == 65 and "Virtual host 'v1' does not exist" in r.stderr
    assert run("delete_user", "bob").returncode == 0
    r = run("delete_user", "bob")
    assert r.returncode == 67 and r.stderr == 'Error: User "bob" does not exist\n'
    r = run("change_password", "nobody", "x")
    assert r.returncode == 67


def test_queue_and_connection_commands(hutch_exe: list[str], private_hutch) -> None:
    url, amqp = private_hutch.http_url, private_hutch.url
    conn = pika.BlockingConnection(pika.URLParameters(amqp))
    ch = conn.channel()
    ch.exchange_declare("ex1", "topic", durable=True)
    ch.queue_declare("work", durable=True)
    ch.queue_bind("work", "ex1", "a.#")
    for i in range(4):
        ch.basic_publish("", "work", b"%d" % i)
    ch2 = conn.channel()
    ch2.basic_qos(prefetch_count=2)
    ch2.basic_consume("work", lambda *a: None, consumer_tag="ctag1")
    conn.process_data_events(0.3)

    r = ctl(hutch_exe, url, "list_exchanges")
    assert r.stdout.splitlines()[0] == "Listing exchanges for vhost / ..."
    assert ["ex1", "topic"] in rows(r.stdout) and ["", "direct"] in rows(r.stdout)
    r = ctl(hutch_exe, url, "list_bindings")
    assert r.stdout.splitlines()[:2] == [
        "Listing bindings for vhost /...",
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments"]
    assert ["", "exchange", "work", "queue", "work", "[]"] in rows(r.stdout)
    assert ["ex1", "exchange", "work", "queue", "a.#", "[]"] in rows(r.stdout)
    r = ctl(hutch_exe, url, "list_consumers")
    assert r.stdout.splitlines()[1] == ("queue_name\tchannel_pid\tconsumer_tag\tack_required\t"
                                        "prefetch_count\tactive\targuments")
    consumer = rows(r.stdout)[2]
    assert consumer[0] == "work" and consumer[2:] == ["ctag1", "true", "2", "true", "[]"]
    r = ctl(hutch_exe, url, "list_channels")
    assert rows(r.stdout)[1] == ["pid", "user", "consumer_count", "messages_unacknowledged"]
    assert sorted(row[2:] for row in rows(r.stdout)[2:]) == [["0", "0"], ["1", "2"]]
    r = ctl(hutch_exe, url, "list_connections", "name", "user", "state", "channels")
    (name, user, state, channels) = rows(r.stdout)[2]
    assert (user, state, channels) == ("guest", "running", "2")

    r = ctl(hutch_exe, url, "purge_queue", "work")
    assert r.returncode == 0 and r.stdout == "Purging queue 'work' in vhost '/' ...\n"
    r = ctl(hutch_exe, url, "purge_queue", "nosuch")
    assert r.returncode == 69 and r.stderr == "Error: queue 'nosuch' in vhost '/' not found\n"
    r = ctl(hutch_exe, url, "close_connection", name, "go away")
    assert r.returncode == 0 and r.stdout == f"Closing connection {name}, reason: go away...\n"
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.process_data_events(2)
        conn.process_data_events(2)
    assert (info.value.reply_code, info.value.reply_text) == (320, "CONNECTION_FORCED - go away")
    r = ctl(hutch_exe, url, "delete_queue", "work")
    assert r.stdout.splitlines() == ["Deleting queue 'work' on vhost '/' ...",
                                     "Queue was successfully deleted with 2 ready messages"]
    r = ctl(hutch_exe, url, "delete_queue", "work")
    assert r.returncode == 69


def test_definitions_commands_round_trip(hutch_exe: list[str], private_hutch, tmp_path: Path) -> None:
    url = private_hutch.http_url
    for args in (("add_user", "carol", "pw"), ("add_vhost", "jobs"),
                 ("set_permissions", "-p", "jobs", "carol", ".*", ".*", ".*")):
        assert ctl(hutch_exe, url, *args).returncode == 0
    conn = pika.BlockingConnection(pika.URLParameters(private_hutch.url))
    conn.channel().queue_declare("tasks", durable=True, arguments={"x-queue-type": "classic"})
    conn.close()
    path = tmp_path / "defs.json"
    r = ctl(hutch_exe, url, "export_definitions", str(path))
    assert r.returncode == 0 and r.stdout == f'Exporting definitions in JSON to a file at "{path}" ...\n'
    exported = json.loads(path.read_text())
    stdout_copy = json.loads(ctl(hutch_exe, url, "export_definitions", "-").stdout)
    assert stdout_copy == exported

    other = type(private_hutch)("--in-memory", http=True)
    other.start()
    try:
        r = ctl(hutch_exe, other.http_url, "import_definitions", str(path))
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f'Importing definitions in JSON from a file at "{path}" ...')
        again = json.loads(ctl(hutch_exe, other.http_url, "export_definitions", "-").stdout)
        for key in ("users", "vhosts", "permissions", "queues", "exchanges", "bindings"):
            assert sorted(map(json.dumps, again[key])) == sorted(map(json.dumps, exported[key])), key
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", other.port, "jobs", pika.PlainCredentials("carol", "pw")))
        conn.close()
        r = ctl(hutch_exe, other.http_url, "import_definitions", "-", stdin="{bad json")
        assert r.returncode == 65 and "is not valid JSON" in r.stderr
    finally:
        other.stop()


def test_status(hutch_exe: list[str], http_url: str) -> None:
    r = ctl(hutch_exe, http_url, "status")
    assert r.returncode == 0
    out = r.stdout
    assert out.startswith("Status of node hutch@")
    for needle in ("Uptime (seconds): ", "Hutch version: ", "Node data directory: ",
                   "protocol: amqp", "protocol: http", "Connection count: ", "Queue count: ",
                   "Messages: ", "Total memory used: ", "Free disk space: "):
        assert needle in out, needle


def test_errors_are_one_line_with_exit_codes(hutch_exe: list[str], http_url: str, ctl_env) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    r = ctl(hutch_exe, dead, "list_queues")
    assert r.returncode == 69 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error: unable to reach")
    r = ctl(hutch_exe, http_url, "list_queues", password="wrong")
    assert r.returncode == 77
    assert r.stderr == ("Error: the management API refused user 'guest': Login failed (check "
                        "--user/--password or HUTCH_USER/HUTCH_PASSWORD)\n")
    r = ctl(hutch_exe, http_url, "no_such_command")
    assert r.returncode == 64 and r.stderr.startswith("Error: unknown command 'no_such_command'")
    r = ctl(hutch_exe, http_url, "add_user", "only-one-arg")
    assert r.returncode == 64
    # The URL and credentials from the environment.
    env = dict(ctl_env, HUTCH_URL=http_url, HUTCH_USER="guest", HUTCH_PASSWORD="guest")
    r = subprocess.run([*hutch_exe, "ctl", "list_vhosts", "-q"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "name"
    name = f"nouser-{uuid.uuid4().hex[:4]}"
    r = ctl(hutch_exe, http_url, "delete_user", name)
    assert r.returncode == 67


def test_users_vhosts_permissions_survive_a_restart(hutch_exe: list[str]) -> None:
    from tests.brokerproc import HutchProcess

    proc = HutchProcess(http=True)  # a data dir of its own: the store keeps definitions
    proc.start()
    try:
        url = proc.http_url
        for args in (("add_user", "dora", "pw"), ("set_user_tags", "dora", "monitoring"),
                     ("add_vhost", "keep"), ("set_permissions", "-p", "keep", "dora", "^d",
                                             ".*", ".*"),
                     ("change_password", "guest", "newguest")):
            assert ctl(hutch_exe, url, *args).returncode == 0, args
        proc.stop()
        proc.start()
        url = proc.http_url
        r = ctl(hutch_exe, url, "list_user_permissions", "dora", password="newguest")
        assert r.stdout.splitlines()[1:] == ["vhost\tconfigure\twrite\tread", "keep\t^d\t.*\t.*"]
        assert "dora\t[monitoring]" in ctl(hutch_exe, url, "list_users", password="newguest").stdout
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", proc.port, "keep", pika.PlainCredentials("dora", "pw")))
        conn.close()
    finally:
        proc.stop()
