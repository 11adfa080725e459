"""``hutch work --retry-delay``: a failed message comes back through the built-in
x-delayed-message exchange after the delay, not before, with its attempt count in a
header, within the limit, and nothing is lost.  A real ``hutch work`` subprocess
against the session's ``hutch serve``.

All hutch_only: RabbitMQ 3.10 in CI has no delayed-message plugin (the error it gives
is tested in tests/integration/test_tools_work.py)."""

from __future__ import annotations

import itertools
import json
import sys
import uuid
from pathlib import Path

import pika
import pytest

from tests.toolproc import Amqp, tool

pytestmark = pytest.mark.hutch_only

# Records when it started and what it saw; "fail..." always fails, "flaky..." fails
# its first attempt only (by HUTCH_ATTEMPT: a delayed copy is a new message, so the
# redelivered flag says nothing here).
SCRIPT = r'''
import json, os, sys, time
out = sys.argv[1]
body = sys.stdin.read()
rec = {k: v for k, v in os.environ.items() if k.startswith("HUTCH_")}
rec["body"] = body
rec["t"] = time.time()
with open(os.path.join(out, f"{time.time_ns()}-{os.getpid()}.json"), "w") as f:
    json.dump(rec, f)
if body.startswith("fail") or (body.startswith("flaky") and rec["HUTCH_ATTEMPT"] == "1"):
    sys.exit(3)
'''

DELAY_MS = 400


@pytest.fixture
def cmd(tmp_path: Path) -> list[str]:
    (tmp_path / "task.py").write_text(SCRIPT)
    (tmp_path / "runs").mkdir()
    return ["--", sys.executable, str(tmp_path / "task.py"), str(tmp_path / "runs")]


def runs(tmp_path: Path, body: str) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*.json"))]
    return [r for r in recs if r["body"] == body]


def gaps(recs: list[dict]) -> list[float]:
    return [b["t"] - a["t"] for a, b in itertools.pairwise(recs)]


def test_failures_wait_the_delay_then_dead_letter(broker_url, qname, cmd, tmp_path):
    amqp = Amqp(broker_url)
    dead, exchange = qname + ".dead", qname + ".retry"
    try:
        amqp.declare(qname)
        for body in ("fail always", "flaky job", "ok"):
            amqp.ch.basic_publish("", qname, body.encode(),
                                  pika.BasicProperties(delivery_mode=2, message_id=body))
        with tool("work", "--url", broker_url, "-q", qname, "--retries", "2",
                  "--retry-delay", str(DELAY_MS), "--retry-exchange", exchange,
                  "--dead-letter-queue", dead, *cmd) as w:
            w.wait_for("dead-lettered", timeout=30)
            w.wait_for(" [x] Done", count=2)
            w.signal()
            assert w.wait() == 0
        failed = [line for line in w.lines if line.startswith(" [!]") and "Received" not in line]
        assert failed.count(f" [!] Failed (exit status 3); retry 1 of 2 in {DELAY_MS} ms") == 2
        assert f" [!] Failed (exit status 3); retry 2 of 2 in {DELAY_MS} ms" in failed
        assert f" [!] Failed (exit status 3); dead-lettered to '{dead}' after 3 attempt(s)" in failed

        fails = runs(tmp_path, "fail always")
        assert [r["HUTCH_ATTEMPT"] for r in fails] == ["1", "2", "3"]
        # The count travels on the copies, visible to the command.
        assert [r.get("HUTCH_HEADER_X_HUTCH_ATTEMPTS") for r in fails] == [None, "1", "2"]
        assert [r["HUTCH_REDELIVERED"] for r in fails] == ["0", "0", "0"]  # copies, not requeues
        # Not before the delay (the copy is published after the attempt ended, so the gap
        # between starts is at least the delay); not much after it either.
        for gap in gaps(fails) + gaps(runs(tmp_path, "flaky job")):
            assert DELAY_MS / 1000 <= gap < DELAY_MS / 1000 + 2.5, gaps(fails)
        # While they waited the queue kept flowing: "ok" ran once, before any retry.
        [ok] = runs(tmp_path, "ok")
        assert ok["t"] < fails[1]["t"]
        assert [r["HUTCH_ATTEMPT"] for r in runs(tmp_path, "flaky job")] == ["1", "2"]

        # Nothing lost, nothing left: the queue is empty, the dead-letter queue has the one.
        amqp.wait_ready(qname, 0)
        [(_, props, body)] = amqp.get_all(dead)
        assert body == b"fail always" and props.message_id == "fail always"
        assert props.headers["x-hutch-attempts"] == 3
        assert props.headers["x-hutch-error"] == "exit status 3"
        assert props.delivery_mode == 2
    finally:
        amqp.close([qname, dead])
        amqp_cleanup_exchange(broker_url, exchange)


def test_retry_delay_stops_at_the_queue_delivery_limit(broker_url, qname, cmd, tmp_path):
    """No --retries: the queue's own x-delivery-limit bounds the delayed retries (a copy
    is a new message to the broker, so the worker counts), then the message is rejected
    into the queue's dead-letter exchange."""
    # A short name: the worker reads the queue's arguments from 406 texts, which a long
    # name plus a long routing key would cut (see src/hutch/tools/declare.py).
    qname = f"test.work.{uuid.uuid4().hex[:8]}"
    amqp = Amqp(broker_url)
    dlq, exchange = qname + ".dlq", qname + ".retry"
    try:
        amqp.declare(dlq)
        amqp.declare(qname, **{"x-queue-type": "quorum", "x-delivery-limit": 2,
                               "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
        amqp.ch.basic_publish("", qname, b"fail always", pika.BasicProperties(delivery_mode=2))
        with tool("work", "--url", broker_url, "-q", qname, "--retry-delay", "200",
                  "--retry-exchange", exchange, *cmd) as w:
            w.wait_for("rejected after 3 attempt(s)", timeout=30)
            amqp.wait_ready(dlq, 1)
            w.signal()
            assert w.wait() == 0
        assert " [!] Failed (exit status 3); retry 2 of 2 in 200 ms" in w.lines
        fails = runs(tmp_path, "fail always")
        assert [r["HUTCH_ATTEMPT"] for r in fails] == ["1", "2", "3"]
        assert all(gap >= 0.2 for gap in gaps(fails))
        [(_, props, _body)] = amqp.get_all(dlq)
        assert props.headers["x-death"][0]["reason"] == "rejected"
        amqp.wait_ready(qname, 0)
    finally:
        amqp.close([qname, dlq])
        amqp_cleanup_exchange(broker_url, exchange)


def amqp_cleanup_exchange(url: str, name: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        conn.channel().exchange_delete(name)
    finally:
        conn.close()
