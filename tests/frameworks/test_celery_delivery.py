"""Celery's delivery guarantees on the broker under test, each with a worker of its own
(concurrency 1, so prefetch = worker_prefetch_multiplier):

- ``acks_late``: a worker SIGKILLed mid-task; the task is redone by a new worker;
- ``task_queue_max_priority``: a queue filled while no worker runs is worked off in
  priority order with prefetch 1;
- prefetch with countdown tasks held: the worker raises its prefetch by one per held
  task (basic.qos with RabbitMQ's ``global`` dialect, see
  tests/integration/test_dialect.py), so other tasks keep flowing, and no further.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("celery")

from tests.frameworks.celery_support import CeleryApp, delete_objects
from tests.frameworks.workerproc import Workers, forget_app, import_app, wait_until


@pytest.fixture
def make_app(workers: Workers, broker_url: str) -> Iterator[Callable[..., tuple[CeleryApp, object]]]:
    made: list[tuple[CeleryApp, object]] = []
    workers.graceful = False  # teardown: SIGKILL, no 2 s warm shutdown

    def make(prefix: str, **conf: object) -> tuple[CeleryApp, object]:
        app = CeleryApp(workers.directory, broker_url, prefix=prefix, **conf)
        made.append((app, import_app(workers.directory, app.module)))
        return made[-1]

    try:
        yield make
    finally:
        workers.close()
        for app, mod in made:
            delete_objects(mod.app, app.queue, exchanges=(app.queue,))  # type: ignore[attr-defined]
            mod.app.close()  # type: ignore[attr-defined]
            forget_app(app.module)


def _ready(mod, queue: str) -> int:
    with mod.app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def test_acks_late_task_is_redone_after_its_worker_is_killed(workers, make_app):
    app, mod = make_app("ackslate", task_acks_late=True, worker_prefetch_multiplier=1)
    # threads pool: an early ack (acks_late=False) would reach the broker at once, so
    # this test fails without acks_late; a solo worker sends it only after the task.
    first = app.worker(workers, concurrency=1)
    mod.block.delay("job")
    started = app.wait_record("job-started", first)
    assert (started["pid"], started["redelivered"]) == (first.pid, False)
    first.kill()  # SIGKILL mid-task: the message was never acked
    app.release("job")
    second = app.worker(workers, concurrency=1)
    done = app.wait_record("job-done", second)
    assert (done["pid"], done["redelivered"]) == (second.pid, True)
    assert app.record("job-started")["pid"] == second.pid
    wait_until(lambda: _ready(mod, app.queue) == 0, 5, "queue empty", second)


def test_priorities_are_honoured_with_prefetch_1(workers, make_app):
    app, mod = make_app("priority", task_queue_max_priority=10, worker_prefetch_multiplier=1)
    with mod.app.connection_for_write() as conn:  # the queue, with x-max-priority 10
        mod.app.amqp.queues[app.queue].bind(conn.default_channel).declare()
    sent = [3, 0, 9, 5, 1, 7, 10]
    for p in sent:
        mod.stamp.apply_async((f"p{p}",), priority=p)
    assert _ready(mod, app.queue) == len(sent)
    worker = app.worker(workers, pool="solo", concurrency=1)
    ran = sorted(sent, key=lambda p: app.wait_record(f"p{p}", worker)["t"])
    assert ran == sorted(sent, reverse=True)


def test_prefetch_follows_the_multiplier_while_countdown_tasks_are_held(workers, make_app):
    """multiplier 2, one solo process: prefetch 2, and three countdown tasks held, which
    alone would fill it.  The worker raises its prefetch by one per held task (Celery's
    qos.increment_eventually, sent as basic.qos global=true to the running consumer), so
    plain tasks keep flowing, well before any countdown is due; and while a task runs the
    broker still holds the rest back: at most multiplier + held = 5 unacked."""
    app, mod = make_app("prefetch", worker_prefetch_multiplier=2)
    worker = app.worker(workers, pool="solo", concurrency=1)
    for i in range(3):
        mod.stamp.apply_async((f"later{i}",), countdown=120)
    wait_until(lambda: worker.output().count(" received") >= 3, 10, "countdown tasks held", worker)
    mod.block.delay("blk")
    app.wait_record("blk-started", worker)
    for i in range(5):
        mod.stamp.delay(f"now{i}")
    # The solo process is busy and blk is still unacked (a solo worker sends its early
    # ack only once the task returns: seen on both brokers), so with 5 the limit the
    # broker sends one of the five: 4 stay ready (5 while Celery's lazy qos update
    # lags), never fewer.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert _ready(mod, app.queue) >= 4
        time.sleep(0.02)
    app.release("blk")
    for i in range(5):
        app.wait_record(f"now{i}", worker, timeout=10)
    assert not any(app.record(f"later{i}") for i in range(3))
    assert _ready(mod, app.queue) == 0
