"""``hutch publish`` as a real subprocess, against Hutch and (in CI) RabbitMQ."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.toolproc import Amqp, run_tool


@pytest.fixture
def amqp(broker_url: str, qname: str):
    a = Amqp(broker_url)
    yield a
    a.close([qname])


def test_words_become_one_persistent_message(broker_url, qname, amqp):
    r = run_tool("publish", "--url", broker_url, "--queue", qname, "First", "message.")
    assert r.returncode == 0, r.stderr
    assert r.stdout == " [x] Sent 'First message.'\n"
    [(method, props, body)] = amqp.get_all(qname)
    assert body == b"First message."
    assert props.delivery_mode == 2
    assert props.message_id  # workers see it as HUTCH_MESSAGE_ID
    assert method.routing_key == qname
    # The queue was declared durable, as the seeds do: redeclaring it so is fine.
    amqp.ch.queue_declare(qname, durable=True)


def test_default_body_is_hello_world(broker_url, qname, amqp):
    r = run_tool("publish", "--url", broker_url, "-q", qname)
    assert r.returncode == 0 and r.stdout == " [x] Sent 'Hello World!'\n"
    assert [b for _, _, b in amqp.get_all(qname)] == [b"Hello World!"]


def test_file_bulk_is_published_in_order(broker_url, qname, amqp, tmp_path: Path):
    n = 5000
    f = tmp_path / "tasks.txt"
    f.write_text("".join(f"task {i}\n" for i in range(n)) + "\n")  # a blank line is no message
    r = run_tool("publish", "--url", broker_url, "-q", qname, "--file", str(f), "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and f"published {n} message(s)" in r.stderr
    amqp.wait_ready(qname, n)
    bodies = [b for _, _, b in amqp.get_all(qname)]
    assert bodies == [f"task {i}".encode() for i in range(n)]


def test_stdin_headers_transient(broker_url, qname, amqp):
    r = run_tool("publish", "--url", broker_url, "-q", qname, "--transient", "-H", "tenant=acme",
                 "--header", "kind=x=y", "--content-type", "text/plain", "-",
                 stdin="one\r\ntwo\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [" [x] Sent 'one'", " [x] Sent 'two'"]
    got = amqp.get_all(qname)
    assert [b for _, _, b in got] == [b"one", b"two"]
    props = got[0][1]
    assert props.delivery_mode == 1
    assert props.headers == {"tenant": "acme", "kind": "x=y"}
    assert props.content_type == "text/plain"


def test_exchange_and_routing_key(broker_url, qname, amqp):
    amqp.declare(qname)
    amqp.ch.queue_bind(qname, "amq.topic", routing_key="jobs.#")
    r = run_tool("publish", "--url", broker_url, "--exchange", "amq.topic", "-k", "jobs.resize", "go")
    assert r.returncode == 0, r.stderr
    [(method, _, body)] = amqp.get_all(qname)
    assert (method.exchange, method.routing_key, body) == ("amq.topic", "jobs.resize", b"go")


def test_unroutable_is_a_failure(broker_url):
    r = run_tool("publish", "--url", broker_url, "--exchange", "amq.direct", "-k", "nobody.home", "x")
    assert r.returncode == 1
    assert "Not sent 'x': unroutable" in r.stderr


def test_nacked_publish_exits_1_and_existing_queue_is_used(broker_url, qname, amqp, tmp_path):
    # The queue exists with other arguments: publish uses it as it is (a note on stderr).
    amqp.declare(qname, **{"x-max-length": 1, "x-overflow": "reject-publish"})
    f = tmp_path / "two.txt"
    f.write_text("a\nb\n")
    r = run_tool("publish", "--url", broker_url, "-q", qname, "--file", str(f))
    assert r.returncode == 1, r.stderr
    assert "using the existing queue" in r.stderr
    assert r.stdout == " [x] Sent 'a'\n"
    assert "Not sent 'b': nacked by the broker" in r.stderr
    assert [b for _, _, b in amqp.get_all(qname)] == [b"a"]


def test_missing_exchange(broker_url):
    r = run_tool("publish", "--url", broker_url, "--exchange", "no-such-exchange", "-k", "k", "x")
    assert r.returncode == 69
    assert "NOT_FOUND - no exchange 'no-such-exchange'" in r.stderr


def test_bad_login_and_unreachable(broker_url):
    bad = broker_url.replace("guest:guest@", "guest:wrong@")
    r = run_tool("publish", "--url", bad, "x")
    assert r.returncode == 77 and "refused the login" in r.stderr and "wrong" not in r.stderr
    r = run_tool("publish", "--url", "amqp://guest:guest@127.0.0.1:1/", "x")
    assert r.returncode == 69
    assert r.stderr.strip().startswith("hutch: cannot connect to amqp://guest:***@127.0.0.1:1/")


def test_usage_errors(broker_url, tmp_path):
    r = run_tool("publish", "--url", broker_url, "-H", "novalue", "x")
    assert r.returncode == 64 and "KEY=VALUE" in r.stderr
    r = run_tool("publish", "--url", broker_url, "--file", str(tmp_path / "missing"))
    assert r.returncode == 64 and "cannot read --file" in r.stderr
