"""Clients get RabbitMQ's dialect when they ask which broker this is.

kombu (so Celery) decides how basic.qos behaves from ``server_properties``: a server
whose ``product`` is not ``RabbitMQ`` (or a RabbitMQ older than 3.3) is taken to follow
the spec, where ``global=false`` limits the whole channel
(kombu.transport.pyamqp.Connection.qos_semantics_matches_spec).  Celery then raises its
prefetch with ``global=false``; Hutch, as RabbitMQ, applies that to consumers created
later only, so a worker holding countdown tasks never takes another task.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

kombu = pytest.importorskip("kombu")


def _server_properties(broker_url: str) -> dict:
    with kombu.Connection(broker_url, connect_timeout=5) as conn:
        conn.connect()
        return dict(conn.connection.server_properties)


def test_server_properties_announce_rabbitmq(broker_url):
    props = _server_properties(broker_url)
    assert props["product"] == "RabbitMQ"
    assert tuple(int(p) for p in props["version"].split(".")[:2]) >= (3, 3)


@pytest.mark.hutch_only
def test_hutch_is_named_in_platform_and_information(broker_url):
    props = _server_properties(broker_url)
    assert props["version"] == "3.10.8"  # the release whose behaviour Hutch follows
    assert "Hutch" in props["platform"] and "Hutch" in props["information"]


def test_kombu_raises_the_prefetch_of_a_running_consumer(broker_url):
    """What Celery does for an ETA task: prefetch 1, one message held unacked, then the
    prefetch raised to 2 with kombu's choice of ``global``: the consumer gets the next
    message without acking the first."""
    name = f"dialect.q.{uuid.uuid4().hex[:8]}"
    with kombu.Connection(broker_url, connect_timeout=5) as conn:
        assert conn.qos_semantics_matches_spec is False
        queue = kombu.Queue(name, auto_delete=True)
        got: list[kombu.Message] = []
        with conn.Consumer(queue, callbacks=[lambda body, msg: got.append(msg)]) as consumer:
            apply_global = not conn.qos_semantics_matches_spec  # as celery's worker does
            consumer.qos(prefetch_count=1, apply_global=apply_global)
            producer = conn.Producer()
            for body in ("held", "next"):
                producer.publish(body, routing_key=name)
            _drain_until(conn, lambda: len(got) >= 1)
            assert [m.body for m in got] == ["held"]
            consumer.qos(prefetch_count=2, apply_global=apply_global)
            _drain_until(conn, lambda: len(got) >= 2)
            assert [m.body for m in got] == ["held", "next"]
            for m in got:
                m.ack()


def _drain_until(conn, done, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        try:
            conn.drain_events(timeout=0.2)
        except TimeoutError:
            pass


CELERY_APP = textwrap.dedent("""
    import os
    from celery import Celery

    app = Celery("dialectapp", broker=os.environ["DIALECT_BROKER"])
    app.conf.update(worker_prefetch_multiplier=1, task_default_queue=os.environ["DIALECT_QUEUE"],
                    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)

    @app.task
    def mark(name):
        with open(os.path.join(os.environ["DIALECT_DIR"], name), "w") as f:
            f.write("done")
""")


def test_celery_countdown_task_does_not_block_other_tasks(broker_url, tmp_path):
    """worker_prefetch_multiplier=1, one worker process: a countdown task is held by the
    worker (it raises its prefetch to make room), and a plain task sent after it still
    runs, well before the countdown is due."""
    pytest.importorskip("celery")
    (tmp_path / "dialectapp.py").write_text(CELERY_APP)
    queue = f"dialect.celery.{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DIALECT_BROKER": broker_url, "DIALECT_QUEUE": queue,
           "DIALECT_DIR": str(tmp_path), "PYTHONPATH": str(tmp_path)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "dialectapp", "worker", "--pool=solo",
         "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-Q", queue, "--loglevel=INFO"],
        cwd=tmp_path, env=env, stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT)
    try:
        sys.path.insert(0, str(tmp_path))
        os.environ.update({k: env[k] for k in ("DIALECT_BROKER", "DIALECT_QUEUE", "DIALECT_DIR")})
        try:
            import dialectapp  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(tmp_path))
        dialectapp.mark.apply_async(("later",), countdown=600)
        dialectapp.mark.apply_async(("warmup",))
        _wait_for(tmp_path / "warmup", worker)  # the worker is up and took the held task
        dialectapp.mark.apply_async(("now",))
        _wait_for(tmp_path / "now", worker)
        assert not (tmp_path / "later").exists()
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        sys.modules.pop("dialectapp", None)
        with kombu.Connection(broker_url, connect_timeout=5) as conn:
            conn.channel().queue_delete(queue)


def _wait_for(path, worker: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            worker.wait()
            out = (path.parent / "worker.log").read_text(errors="replace")
            raise AssertionError(f"task {path.name} did not run; worker output:\n{out[-4000:]}")
        time.sleep(0.05)

