"""Dramatiq (``dramatiq[rabbitmq]``) with a real ``dramatiq`` worker process on the
broker under test (issue #16, item 3).

What Dramatiq asks of RabbitMQ, read in dramatiq/brokers/rabbitmq.py (2.2.1): every
queue ``Q`` comes with ``Q.DQ`` (delayed messages) and ``Q.XQ`` (dead letters, 7-day
``x-message-ttl``); Q and Q.DQ dead-letter to Q.XQ through the default exchange. A
delayed message (``send_with_options(delay=)``, and every retry of the Retries
middleware) is published to Q.DQ; the worker holds it unacked until its eta, then
publishes it to Q and acks it. A message out of retries is ``basic.nack``-ed without
requeue, which dead-letters it to Q.XQ. ``max_priority`` adds ``x-max-priority`` and
``broker_priority`` sets the message priority.

One worker (1 process, 2 threads) serves the whole module: ``dramatiq_queue_prefetch=1``
so the priority test sees the broker's order, ``dramatiq_worker_timeout=50`` so the
worker looks at its held delayed messages every 50 ms rather than every second,
``dramatiq_restart_delay=200`` so a consumer whose queue was deleted starts again after
0.2 s rather than 3 s.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.frameworks._dq_procs import Results, WorkerProcess, channel, delete_queues, python_m

pytestmark = pytest.mark.timeout(60)

TASKS = "tests.frameworks._dq_dramatiq_tasks"
QUEUES = ("work", "phoenix", "retry", "prio", "quorum")


class Dq:
    """The module's state: the tasks module (the test process's producer), the
    results file, and the worker (a test may replace it)."""

    def __init__(self, tasks: ModuleType, results: Results, env: dict[str, str]) -> None:
        self.tasks, self.results, self.env = tasks, results, env
        self.worker: WorkerProcess | None = None

    def start_worker(self) -> None:
        self.worker = WorkerProcess(
            python_m("dramatiq", TASKS, "--processes", "1", "--threads", "2"),
            dict(self.env, dramatiq_queue_prefetch="1", dramatiq_worker_timeout="50",
                 dramatiq_restart_delay="200"),
            ready="Worker process is ready for action")


@pytest.fixture(scope="module")
def dq_state(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dq]:
    prefix = f"dq.{uuid.uuid4().hex[:8]}"
    out = str(tmp_path_factory.mktemp("dramatiq") / "results.jsonl")
    env = {"DQ_TEST_AMQP_URL": broker_url, "DQ_TEST_PREFIX": prefix, "DQ_TEST_OUT": out}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    state = Dq(importlib.import_module(TASKS), Results(out), env)
    try:
        state.start_worker()
        yield state
    finally:
        if state.worker is not None:
            code = state.worker.stop()
            print(f"dramatiq worker exited {code}; its last lines:\n{state.worker.output()[-3000:]}")
        state.tasks.broker.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        delete_queues(broker_url, [f"{prefix}-{q}{s}" for q in QUEUES for s in ("", ".DQ", ".XQ")])


@pytest.fixture
def dq(dq_state: Dq) -> tuple[ModuleType, Results]:
    """(the tasks module, the results file), with a worker consuming every queue."""
    return dq_state.tasks, dq_state.results


def _get_dead(url: str, queue: str, timeout: float = 10.0) -> tuple[Any, dict[str, Any]]:
    """The first message of a dead-letter queue (waiting for it): (properties, body)."""
    deadline = time.monotonic() + timeout
    with channel(url) as ch:
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is not None:
                return props, json.loads(body)
            assert time.monotonic() < deadline, f"nothing dead-lettered to {queue}"
            time.sleep(0.02)


def _counts(url: str, queue: str) -> tuple[int, int]:
    with channel(url) as ch:
        ok = ch.queue_declare(queue, passive=True).method
        return ok.message_count, ok.consumer_count


def test_send_runs_the_actor(dq):
    tasks, results = dq
    tasks.echo.send("hello")
    rows = results.wait_for(lambda rs: any(r.get("tag") == "hello" for r in rs), what="echo('hello')")
    assert [r["kind"] for r in rows if r.get("tag") == "hello"] == ["echo"]


def test_send_with_delay_goes_through_the_delay_queue(dq, broker_url):
    tasks, results = dq
    queue = tasks.echo.queue_name
    sent = time.time()
    tasks.echo.send_with_options(args=("later",), delay=1500)
    # Held unacked by the worker's consumer of Q.DQ meanwhile: not ready anywhere.
    while _counts(broker_url, queue + ".DQ") != (0, 1):
        assert time.time() - sent < 1.2, "the worker did not take the delayed message"
        time.sleep(0.02)
    assert not any(r.get("tag") == "later" for r in results.read())
    rows = results.wait_for(lambda rs: any(r.get("tag") == "later" for r in rs), what="the delayed echo")
    late = next(r["t"] for r in rows if r.get("tag") == "later") - sent - 1.5
    print(f"delayed by 1500 ms: ran {late * 1000:.0f} ms after its due time")
    assert late >= 0, "ran before its delay"
    # Dramatiq's delay is kept by the worker (it polls its held messages every
    # dramatiq_worker_timeout = 50 ms here): anything near that is the broker's due.
    assert late < 0.5


def test_a_deleted_queue_is_declared_again(dq, broker_url):
    """confirm_delivery: a send to a deleted queue comes back unroutable (mandatory),
    so Dramatiq declares the queue again and resends; the worker's consumer, cancelled
    with the queue, starts again and runs it."""
    tasks, results = dq
    tasks.phoenix.send("first")
    results.wait_for(lambda rs: any(r["kind"] == "phoenix" for r in rs), what="phoenix('first')")
    with channel(broker_url) as ch:
        ch.queue_delete(tasks.phoenix.queue_name)
    tasks.phoenix.send("again")
    results.wait_for(lambda rs: any(r.get("tag") == "again" for r in rs), what="phoenix('again')")


def test_retries_with_backoff_then_dead_letter_queue(dq, broker_url):
    tasks, results = dq
    queue = tasks.flaky.queue_name
    tasks.flaky.send("boom")
    rows = results.wait_for(lambda rs: sum(r["kind"] == "flaky" for r in rs) >= 3, what="three attempts")
    times = [r["t"] for r in rows if r["kind"] == "flaky"]
    # max_retries=2: the first attempt and two retries, each after its backoff
    # (min_backoff=100 ms doubling, with Dramatiq's jitter of up to x2).
    assert len(times) == 3
    assert times[1] - times[0] >= 0.09 and times[2] - times[1] >= 0.19
    props, body = _get_dead(broker_url, queue + ".XQ")
    assert body["actor_name"] == "flaky" and body["args"] == ["boom"]
    # The broker dead-letters the body as last published: the second retry's.
    assert body["options"]["retries"] == 2
    # Dead-lettered by the broker (nack, requeue=false) from the queue it was last
    # consumed from, with RabbitMQ's x-death record.
    death = props.headers["x-death"][0]
    assert death["queue"] == queue and death["reason"] == "rejected" and death["count"] == 1
    assert death["exchange"] == "" and death["routing-keys"] == [queue]
    time.sleep(0.2)
    assert sum(r["kind"] == "flaky" for r in results.read()) == 3, "retried after dead-lettering"
    assert _counts(broker_url, queue)[0] == 0 and _counts(broker_url, queue + ".DQ")[0] == 0


def test_broker_priority_with_max_priority(dq, broker_url):
    tasks, results = dq
    queue = tasks.prio.queue_name
    with channel(broker_url) as ch:  # Dramatiq declared it with x-max-priority
        ch.queue_declare(queue, passive=True)
        args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue + ".XQ",
                "x-max-priority": 10}
        ch.queue_declare(queue, durable=True, arguments=args)
    # The gate occupies the worker's one unacked delivery (prefetch 1) while the
    # prioritised messages queue up on the broker behind it.
    tasks.gate.send("g")
    results.wait_for(lambda rs: any(r["kind"] == "gate" for r in rs), what="the gate")
    sent = [1, 5, 3, 9, 0, 7]
    for n in sent:
        tasks.prio.send_with_options(args=(n,), broker_priority=n)
    assert _counts(broker_url, queue)[0] == len(sent)
    open(tasks.GATE, "w").close()
    rows = results.wait_for(lambda rs: sum(r["kind"] == "prio" for r in rs) == len(sent),
                            what="the prioritised messages")
    assert [r["n"] for r in rows if r["kind"] == "prio"] == sorted(sent, reverse=True)


def test_quorum_queues(dq, broker_url):
    """Queues declared quorum (see QuorumAwareBroker): send, delay and dead-lettering
    work the same; the broker really made them quorum queues."""
    tasks, results = dq
    queue = tasks.qecho.queue_name
    with channel(broker_url) as ch:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(queue, durable=True, arguments={
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue + ".XQ",
                "x-queue-type": "classic"})
        assert e.value.reply_code == 406
    for name in (queue, queue + ".DQ"):
        with channel(broker_url) as ch:
            ch.queue_declare(name, durable=True, arguments={
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue + ".XQ",
                "x-queue-type": "quorum"})
    sent = time.time()
    tasks.qecho.send("now")
    tasks.qecho.send_with_options(args=("later",), delay=300)
    tasks.qflaky.send("boom")
    rows = results.wait_for(
        lambda rs: {r.get("tag") for r in rs if r["kind"] == "qecho"} == {"now", "later"}
        and sum(r["kind"] == "qflaky" for r in rs) == 2, what="the quorum-queue actors")
    assert next(r["t"] for r in rows if r["kind"] == "qecho" and r["tag"] == "later") - sent >= 0.3
    props, body = _get_dead(broker_url, queue + ".XQ")
    assert body["actor_name"] == "qflaky" and body["options"]["retries"] == 1
    assert props.headers["x-death"][0]["queue"] == queue


def test_worker_killed_while_holding_a_delayed_message(dq_state, broker_url):
    """The broker's part in Dramatiq's delays: a worker that dies (kill -9) holding a
    delayed message unacked gives it back to Q.DQ, and the next worker runs it once,
    not before its eta."""
    tasks, results = dq_state.tasks, dq_state.results
    queue = tasks.echo.queue_name
    sent = time.time()
    tasks.echo.send_with_options(args=("survivor",), delay=1500)
    deadline = time.monotonic() + 5
    while _counts(broker_url, queue + ".DQ") != (0, 1):
        assert time.monotonic() < deadline, "the worker did not take the delayed message"
        time.sleep(0.02)
    assert dq_state.worker is not None
    os.killpg(dq_state.worker.proc.pid, signal.SIGKILL)
    dq_state.worker.stop()
    deadline = time.monotonic() + 5
    while _counts(broker_url, queue + ".DQ") != (1, 0):
        assert time.monotonic() < deadline, "the killed worker's delayed message did not come back"
        time.sleep(0.02)
    dq_state.start_worker()
    rows = results.wait_for(lambda rs: any(r.get("tag") == "survivor" for r in rs), what="the survivor")
    assert next(r["t"] for r in rows if r.get("tag") == "survivor") - sent >= 1.5
    time.sleep(0.3)
    assert [r["tag"] for r in results.read() if r.get("tag") == "survivor"] == ["survivor"]
    assert _counts(broker_url, queue + ".DQ") == (0, 1) and _counts(broker_url, queue) == (0, 1)
