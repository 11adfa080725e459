"""``hutch work`` as a real subprocess, against Hutch and (in CI) RabbitMQ: acks,
requeues, retries and dead-lettering, timeouts, graceful and forced shutdown."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest

from tests.toolproc import Amqp, run_tool, tool

# The command every test runs: records its environment and stdin, then behaves as
# the test's marker files say (fail, hang, fail only the first time).
SCRIPT = r'''
import json, os, sys, time
out = sys.argv[1]
body = sys.stdin.read()
n = f"{time.time_ns()}-{os.getpid()}"  # sorts by start time; unique when runs overlap
rec = {k: v for k, v in os.environ.items() if k.startswith("HUTCH_")}
rec["body"] = body
rec["pid"] = os.getpid()
with open(os.path.join(out, f"{n}.json"), "w") as f:
    json.dump(rec, f)
if body.startswith("sleep"):
    time.sleep(float(body.split()[1]))
    open(os.path.join(out, f"{n}.done"), "w").close()
if body.startswith("fail") or (body.startswith("flaky") and os.environ["HUTCH_REDELIVERED"] == "0"):
    sys.exit(3)
'''


@pytest.fixture
def amqp(broker_url: str, qname: str):
    a = Amqp(broker_url)
    a.declare(qname)
    yield a
    a.close([qname, qname + ".dead"])


@pytest.fixture
def cmd(tmp_path: Path) -> list[str]:
    script = tmp_path / "task.py"
    script.write_text(SCRIPT)
    (tmp_path / "runs").mkdir()
    return ["--", sys.executable, str(script), str(tmp_path / "runs")]


def runs(tmp_path: Path) -> list[dict[str, str]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*.json"))]


def publish(amqp: Amqp, queue: str, *bodies: str, headers: dict | None = None) -> None:
    for body in bodies:
        amqp.ch.basic_publish("", queue, body.encode(), pika.BasicProperties(
            delivery_mode=2, message_id=f"id-{body}", headers=headers))


def test_simulated_work_like_the_seeds(broker_url, qname, amqp):
    publish(amqp, qname, "First message.", "Second message..")
    with tool("work", "--url", broker_url, "-q", qname, "--dot-seconds", "0.01") as w:
        w.wait_for(" [x] Done", count=2)
        w.signal(signal.SIGINT)
        assert w.wait() == 0
    assert w.lines[:5] == [" [*] Waiting for messages. To exit press CTRL+C",
                           " [x] Received 'First message.'", " [x] Done",
                           " [x] Received 'Second message..'", " [x] Done"]
    assert w.lines[-1] == " [*] Stopped"
    amqp.wait_ready(qname, 0)


def test_command_gets_body_and_metadata_and_success_acks(broker_url, qname, amqp, cmd, tmp_path):
    publish(amqp, qname, "resize cat.jpg", headers={"tenant": "acme", "x-trace-id": "t1"})
    with tool("work", "--url", broker_url, "-q", qname, *cmd) as w:
        w.wait_for(" [x] Done")
        w.signal()
        assert w.wait() == 0
    [rec] = runs(tmp_path)
    assert rec["body"] == "resize cat.jpg"
    assert rec["HUTCH_MESSAGE_ID"] == "id-resize cat.jpg"
    assert rec["HUTCH_REDELIVERED"] == "0" and rec["HUTCH_ATTEMPT"] == "1"
    assert rec["HUTCH_ROUTING_KEY"] == qname and rec["HUTCH_QUEUE"] == qname
    assert rec["HUTCH_HEADER_TENANT"] == "acme" and rec["HUTCH_HEADER_X_TRACE_ID"] == "t1"
    assert json.loads(rec["HUTCH_HEADERS"]) == {"tenant": "acme", "x-trace-id": "t1"}
    amqp.wait_ready(qname, 0)


def test_failure_requeues_and_redelivers(broker_url, qname, amqp, cmd, tmp_path):
    publish(amqp, qname, "flaky job")
    with tool("work", "--url", broker_url, "-q", qname, *cmd) as w:
        w.wait_for(" [x] Done")
        w.signal()
        assert w.wait() == 0
    assert " [!] Failed (exit status 3); requeued" in w.lines
    first, second = runs(tmp_path)
    assert (first["HUTCH_REDELIVERED"], second["HUTCH_REDELIVERED"]) == ("0", "1")
    amqp.wait_ready(qname, 0)


def test_retries_then_dead_letter_queue(broker_url, qname, amqp, cmd, tmp_path):
    publish(amqp, qname, "fail always", "ok")
    dead = qname + ".dead"
    with tool("work", "--url", broker_url, "-q", qname, "--retries", "2",
              "--dead-letter-queue", dead, *cmd) as w:
        w.wait_for("dead-lettered")
        w.signal()
        assert w.wait() == 0
    failed = [line for line in w.lines if line.startswith(" [!]")]
    assert failed == [" [!] Failed (exit status 3); retry 1 of 2",
                      " [!] Failed (exit status 3); retry 2 of 2",
                      f" [!] Failed (exit status 3); dead-lettered to '{dead}' after 3 attempt(s)"]
    attempts = [r["HUTCH_ATTEMPT"] for r in runs(tmp_path) if r["body"] == "fail always"]
    assert attempts == ["1", "2", "3"]
    amqp.wait_ready(qname, 0)
    [(_, props, body)] = amqp.get_all(dead)
    assert body == b"fail always"
    assert props.headers["x-hutch-attempts"] == 3
    assert props.headers["x-hutch-error"] == "exit status 3"
    assert props.headers["x-hutch-queue"] == qname
    assert props.message_id == "id-fail always" and props.delivery_mode == 2


def test_timeout_kills_a_hung_command(broker_url, qname, amqp, cmd, tmp_path):
    publish(amqp, qname, "sleep 60")
    started = time.monotonic()
    with tool("work", "--url", broker_url, "-q", qname, "--timeout", "0.5",
              "--dead-letter-queue", qname + ".dead", *cmd) as w:
        w.wait_for("dead-lettered")
        w.signal()
        assert w.wait() == 0
    assert time.monotonic() - started < 15
    assert any("timed out after 0.5s, killed" in line for line in w.lines)
    [rec] = runs(tmp_path)
    assert not _alive(rec["pid"])
    [(_, props, _)] = amqp.get_all(qname + ".dead")
    assert props.headers["x-hutch-error"] == "timed out after 0.5s, killed"


def test_sigterm_finishes_current_message_and_gives_back_the_rest(broker_url, qname, amqp, cmd,
                                                                   tmp_path):
    publish(amqp, qname, "sleep 1.5", "second", "third")
    with tool("work", "--url", broker_url, "-q", qname, "--prefetch", "3", *cmd) as w:
        w.wait_for(" [x] Received 'sleep 1.5'")
        time.sleep(0.3)  # the command is running; the other two are prefetched
        w.signal(signal.SIGTERM)
        assert w.wait() == 0
    assert " [x] Done" in w.lines and w.lines[-1] == " [*] Stopped"
    assert len(list((tmp_path / "runs").glob("*.done"))) == 1
    assert [r["body"] for r in runs(tmp_path)] == ["sleep 1.5"]
    amqp.wait_ready(qname, 2)
    assert [b for _, _, b in amqp.get_all(qname)] == [b"second", b"third"]


def test_second_signal_abandons_and_the_message_is_redelivered(broker_url, qname, amqp, cmd,
                                                               tmp_path):
    publish(amqp, qname, "sleep 60")
    with tool("work", "--url", broker_url, "-q", qname, *cmd) as w:
        w.wait_for(" [x] Received 'sleep 60'")
        time.sleep(0.3)
        w.signal(signal.SIGINT)
        w.wait_for("Stopping")
        w.signal(signal.SIGINT)
        assert w.wait(timeout=10) == 130
    assert "abandoned" in w.lines[-1]
    [rec] = runs(tmp_path)
    assert not _alive(rec["pid"])
    amqp.wait_ready(qname, 1)
    [(method, _, body)] = amqp.get_all(qname)
    assert body == b"sleep 60" and method.redelivered


def test_errors_and_exit_codes(broker_url, qname, amqp):
    r = run_tool("work", "--url", "amqp://guest:guest@127.0.0.1:1/", "-q", qname)
    assert r.returncode == 69 and "cannot connect" in r.stderr
    r = run_tool("work", "--url", broker_url, "-q", qname, "--", "no-such-command-hutch")
    assert r.returncode == 64 and "command not found: no-such-command-hutch" in r.stderr


def _alive(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_concurrency_runs_commands_in_parallel(broker_url, qname, amqp, cmd, tmp_path):
    publish(amqp, qname, "sleep 1", "sleep 1.0")
    with tool("work", "--url", broker_url, "-q", qname, "--concurrency", "2", *cmd) as w:
        w.wait_for(" [x] Done", count=2)
        w.signal()
        assert w.wait() == 0
    assert len(runs(tmp_path)) == 2
    # Both commands started before either finished.
    starts = sorted(p.stat().st_mtime for p in (tmp_path / "runs").glob("*.json"))
    ends = sorted(p.stat().st_mtime for p in (tmp_path / "runs").glob("*.done"))
    assert starts[1] < ends[0]
    amqp.wait_ready(qname, 0)


def test_retries_rely_on_the_broker_for_a_quorum_queue(broker_url, qname, cmd, tmp_path):
    """A quorum queue counts failed deliveries itself: the worker rejects with requeue
    (no republished copies) and numbers attempts by the broker's x-delivery-count."""
    amqp = Amqp(broker_url)
    dead = qname + ".dead"
    try:
        amqp.declare(qname, **{"x-queue-type": "quorum"})
        publish(amqp, qname, "fail always")
        with tool("work", "--url", broker_url, "-q", qname, "--retries", "2",
                  "--dead-letter-queue", dead, *cmd) as w:
            w.wait_for("dead-lettered")
            w.signal()
            assert w.wait() == 0
        failed = [line for line in w.lines if line.startswith(" [!]")]
        assert failed == [
            " [!] Failed (exit status 3); retry 1 of 2 (requeued, counted by the broker)",
            " [!] Failed (exit status 3); retry 2 of 2 (requeued, counted by the broker)",
            f" [!] Failed (exit status 3); dead-lettered to '{dead}' after 3 attempt(s)"]
        assert [r["HUTCH_ATTEMPT"] for r in runs(tmp_path)] == ["1", "2", "3"]
        assert [r["HUTCH_REDELIVERED"] for r in runs(tmp_path)] == ["0", "1", "1"]
        amqp.wait_ready(qname, 0)
        [(_, props, body)] = amqp.get_all(dead)
        assert body == b"fail always" and props.headers["x-hutch-attempts"] == 3
    finally:
        amqp.close([qname, dead])


def test_failures_reach_the_broker_delivery_limit(broker_url, qname, cmd, tmp_path):
    """Without --retries a failure is a basic.reject with requeue, which the broker counts:
    a poison message on a queue with a delivery limit is dead-lettered, not looped on."""
    amqp = Amqp(broker_url)
    dlq = qname + ".dlq"
    try:
        amqp.declare(dlq)
        amqp.declare(qname, **{"x-queue-type": "quorum", "x-delivery-limit": 1,
                               "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
        publish(amqp, qname, "fail always")
        with tool("work", "--url", broker_url, "-q", qname, *cmd) as w:
            amqp.wait_ready(dlq, 1)
            w.signal()
            assert w.wait() == 0
        assert len(runs(tmp_path)) == 2  # the first delivery and one redelivery
        [(_, props, _body)] = amqp.get_all(dlq)
        assert props.headers["x-death"][0]["reason"] == "delivery_limit"
    finally:
        amqp.close([qname, dlq])


def test_retries_see_a_quorum_queue_behind_other_arguments(broker_url, cmd, tmp_path):
    """A quorum queue with a dead-letter exchange: the plain declaration's 406 names
    x-dead-letter-exchange first, not x-queue-type.  The worker still learns the queue
    is quorum (it declares again with what each 406 told it) and lets the broker count:
    no republished copies, attempts from x-delivery-count."""
    # A short name: a 406's text is a shortstr, and the fixture's long name plus the long
    # routing key would cut the value the worker needs to read (see declare.py).
    qname = f"test.work.{uuid.uuid4().hex[:8]}"
    amqp = Amqp(broker_url)
    dead = qname + ".dead"
    try:
        amqp.declare(qname + ".dlx")
        amqp.declare(qname, **{"x-queue-type": "quorum", "x-dead-letter-exchange": "",
                               "x-dead-letter-routing-key": qname + ".dlx"})
        publish(amqp, qname, "fail always")
        with tool("work", "--url", broker_url, "-q", qname, "--retries", "1",
                  "--dead-letter-queue", dead, *cmd) as w:
            w.wait_for("dead-lettered")
            w.signal()
            assert w.wait() == 0
        failed = [line for line in w.lines if line.startswith(" [!]")]
        assert failed == [
            " [!] Failed (exit status 3); retry 1 of 1 (requeued, counted by the broker)",
            f" [!] Failed (exit status 3); dead-lettered to '{dead}' after 2 attempt(s)"]
        # A requeue, not a copy: the second delivery is a redelivery of the original.
        assert [r["HUTCH_REDELIVERED"] for r in runs(tmp_path)] == ["0", "1"]
        assert "x-delivery-count" in json.loads(runs(tmp_path)[1]["HUTCH_HEADERS"])
        amqp.wait_ready(qname, 0)
        [(_, props, _body)] = amqp.get_all(dead)
        assert props.headers["x-hutch-attempts"] == 2
    finally:
        amqp.close([qname, dead, qname + ".dlx"])


def test_retries_stop_at_the_queue_delivery_limit(broker_url, qname, cmd, tmp_path):
    """--retries above the queue's x-delivery-limit: the worker gives up at the broker's
    limit (learned from the queue's arguments), so the message still reaches
    --dead-letter-queue with its error instead of the broker dropping it."""
    amqp = Amqp(broker_url)
    dead = qname + ".dead"
    try:
        amqp.declare(qname, **{"x-queue-type": "quorum", "x-delivery-limit": 1})
        publish(amqp, qname, "fail always")
        with tool("work", "--url", broker_url, "-q", qname, "--retries", "5",
                  "--dead-letter-queue", dead, *cmd) as w:
            w.wait_for("dead-lettered")
            w.signal()
            assert w.wait() == 0
        failed = [line for line in w.lines if line.startswith(" [!]")]
        assert failed == [
            " [!] Failed (exit status 3); retry 1 of 1 (requeued, counted by the broker)",
            f" [!] Failed (exit status 3); dead-lettered to '{dead}' after 2 attempt(s)"]
        amqp.wait_ready(qname, 0)
        [(_, props, _body)] = amqp.get_all(dead)
        assert props.headers["x-hutch-error"] == "exit status 3"
    finally:
        amqp.close([qname, dead])


@pytest.mark.hutch_only  # RabbitMQ refuses x-delivery-limit on classic queues (406)
def test_retries_use_a_classic_queue_delivery_limit(broker_url, qname, cmd, tmp_path):
    """Hutch counts deliveries on a classic queue with x-delivery-limit: the worker sees
    the argument and requeues (counted) instead of republishing copies."""
    amqp = Amqp(broker_url)
    try:
        amqp.declare(qname, **{"x-delivery-limit": 3})
        publish(amqp, qname, "fail always")
        with tool("work", "--url", broker_url, "-q", qname, "--retries", "1", *cmd) as w:
            w.wait_for("rejected after 2 attempt(s)")
            w.signal()
            assert w.wait() == 0
        assert " [!] Failed (exit status 3); retry 1 of 1 (requeued, counted by the broker)" \
            in w.lines
        assert [r["HUTCH_REDELIVERED"] for r in runs(tmp_path)] == ["0", "1"]
        amqp.wait_ready(qname, 0)
    finally:
        amqp.close([qname])


def test_retry_delay_without_the_exchange_type_is_a_clear_error(broker_url, qname, amqp,
                                                                 against_rabbitmq):
    """RabbitMQ without the delayed-message plugin closes the connection with 503
    'unknown exchange type': exit 69 and a line that says what is missing.  On Hutch
    (which has the type) an exchange of that name with another type is the error."""
    if not against_rabbitmq:
        amqp.ch.exchange_declare(qname, "fanout", durable=True)
    try:
        r = run_tool("work", "--url", broker_url, "-q", qname, "--retry-delay", "100",
                     "--retry-exchange", qname, "--", "true")
    finally:
        if not against_rabbitmq:
            amqp.ch.exchange_delete(qname)
    assert r.returncode == 69, r.stderr
    assert "cannot set up --retry-delay" in r.stderr and "Traceback" not in r.stderr
    if against_rabbitmq:
        assert "unknown exchange type 'x-delayed-message'" in r.stderr
        assert "rabbitmq_delayed_message_exchange plugin" in r.stderr
    else:
        assert "PRECONDITION_FAILED" in r.stderr and "choose another with --retry-exchange" \
            in r.stderr
