"""Testing the actors of tasks.py against a real broker: the hutch_broker pytest
fixture (installed with hutch) starts a Hutch for the test, and a Dramatiq Worker runs
in the test process.

    python -m pytest examples/dramatiq/test_tasks.py
"""
import importlib
import json

import dramatiq
import pika
import pytest


@pytest.fixture
def tasks(hutch_broker, monkeypatch):
    monkeypatch.setenv("AMQP_URL", hutch_broker.url)
    import tasks

    tasks = importlib.reload(tasks)  # its broker now points at this test's Hutch
    yield tasks
    tasks.broker.close()


def test_count_words_now_and_later(tasks):
    worker = dramatiq.Worker(tasks.broker, worker_timeout=100)
    worker.start()
    try:
        tasks.count_words.send("the quick brown fox")
        tasks.count_words.send_with_options(args=("a bit later",), delay=300)
        tasks.broker.join(tasks.count_words.queue_name, timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    assert tasks.COUNTED == [4, 3]


def test_a_failing_actor_ends_in_the_dead_letter_queue(tasks, hutch_broker):
    worker = dramatiq.Worker(tasks.broker, worker_timeout=100)
    worker.start()
    try:
        tasks.always_fails.send("the impossible")
        tasks.broker.join(tasks.always_fails.queue_name, timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    conn = pika.BlockingConnection(pika.URLParameters(hutch_broker.url))
    try:
        method, props, body = conn.channel().basic_get("default.XQ", auto_ack=True)
    finally:
        conn.close()
    assert method is not None and json.loads(body)["args"] == ["the impossible"]
    assert props.headers["x-death"][0]["reason"] == "rejected"
