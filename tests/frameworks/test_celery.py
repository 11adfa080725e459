"""Celery on the broker under test, with classic queues: one real ``celery worker``
(threads pool, events on) serves the whole module.

``.delay()``, countdown/ETA tasks (held by the worker, which raises its prefetch),
retries with backoff, ``celery inspect``, task events, and results over ``rpc://``
(Celery's rpc backend: a per-client reply queue, not direct reply-to; see
tests/integration/test_direct_reply.py for that).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

pytest.importorskip("celery")

from celery import chain, chord, group

from tests.frameworks.celery_support import ON_TIME, CeleryApp, delete_objects, lateness
from tests.frameworks.workerproc import Workers, forget_app, import_app, wait_until


@pytest.fixture(scope="module")
def celery(module_workers: Workers, broker_url: str) -> Iterator[SimpleNamespace]:
    app = CeleryApp(module_workers.directory, broker_url, prefix="classic",
                    worker_prefetch_multiplier=4)
    mod = import_app(module_workers.directory, app.module)
    module_workers.graceful = False  # teardown: SIGKILL, no 2 s warm shutdown
    try:
        worker = app.worker(module_workers, "-E", "--without-heartbeat")
        yield SimpleNamespace(app=app, mod=mod, worker=worker, workers=module_workers)
    finally:
        module_workers.close()
        delete_objects(mod.app, app.queue, exchanges=(app.queue,))
        mod.app.close()
        forget_app(app.module)


def test_delay_runs_the_task_and_returns_over_rpc(celery):
    result = celery.mod.stamp.delay("delay")
    assert result.get(timeout=15) == "delay"
    rec = celery.app.wait_record("delay", celery.worker)
    assert rec["pid"] == celery.worker.pid  # threads pool: the worker process itself
    assert rec["redelivered"] is False


def test_countdown_and_eta_tasks_run_within_100ms_of_due(celery):
    sent = {f"cd{c}": celery.mod.stamp.apply_async((f"cd{c}",), countdown=c)
            for c in (0.3, 1, 1.5, 2)}
    eta = datetime.now(UTC) + timedelta(seconds=1.2)
    sent["eta"] = celery.mod.stamp.apply_async(("eta",), eta=eta)
    # a plain task sent after them runs at once: the held countdown tasks block nothing
    t0 = time.time()
    assert celery.mod.stamp.delay("plain").get(timeout=10) == "plain"
    assert celery.app.record("plain")["t"] - t0 < 1.0
    late = {}
    for tag in sent:
        rec = celery.app.wait_record(tag, celery.worker, timeout=10)
        late[tag] = lateness(rec)
    assert abs(datetime.fromisoformat(celery.app.record("eta")["eta"]).timestamp()
               - eta.timestamp()) < 0.001
    print("classic countdown lateness (s):", {k: round(v, 4) for k, v in late.items()})
    assert all(-0.005 <= v <= ON_TIME for v in late.values()), late


def test_autoretry_backs_off_1s_then_2s(celery):
    result = celery.mod.flaky.delay("flaky", 2)
    assert result.get(timeout=15) == 2
    f = [celery.app.wait_record(f"flaky-{i}", celery.worker) for i in range(3)]
    gaps = [f[1]["t"] - f[0]["t"], f[2]["t"] - f[1]["t"]]
    late = [lateness(rec) for rec in f[1:]]
    print("classic autoretry gaps (s):", [round(g, 4) for g in gaps],
          "lateness (s):", [round(v, 4) for v in late])
    assert 1.0 <= gaps[0] <= 1.5 and 2.0 <= gaps[1] <= 2.5, gaps
    assert all(-0.005 <= v <= ON_TIME for v in late), late


def test_self_retry_with_countdown(celery):
    assert celery.mod.retry_once.delay("retry", 0.5).get(timeout=15) == 1
    r = [celery.app.wait_record(f"retry-{i}", celery.worker) for i in range(2)]
    assert 0.5 <= r[1]["t"] - r[0]["t"] <= 1.0, r
    assert -0.005 <= lateness(r[1]) <= ON_TIME, r


def test_celery_inspect_ping_and_active(celery):
    """The ``celery inspect`` command (a process of its own) and the control API: both
    go through the pidbox fanout exchange and a reply queue."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(celery.workers.directory), os.environ.get("PYTHONPATH")) if p))
    ping = subprocess.run(
        [sys.executable, "-m", "celery", "-A", celery.app.module, "inspect", "ping",
         "-d", celery.app.node, "--timeout", "5"],
        cwd=celery.workers.directory, env=env, capture_output=True, text=True, timeout=30)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "pong" in ping.stdout and celery.app.node in ping.stdout

    running = celery.mod.block.delay("active")
    celery.app.wait_record("active-started", celery.worker)
    try:
        active = celery.mod.app.control.inspect([celery.app.node], timeout=5).active()
        assert active is not None, "no reply to inspect active"
        assert [t["id"] for t in active[celery.app.node]] == [running.id]
        assert active[celery.app.node][0]["name"].endswith(".block")
    finally:
        celery.app.release("active")
    celery.app.wait_record("active-done", celery.worker)


def test_task_events_reach_an_event_receiver(celery):
    """The worker runs with -E: an app.events.Receiver sees task-received, -started and
    -succeeded for a task, on the celeryev topic exchange."""
    seen: dict[str, dict] = {}
    app = celery.mod.app
    with app.connection_for_read() as conn:
        def on_event(event: dict) -> None:
            if event.get("uuid") == task_id:
                seen[event["type"]] = event
        recv = app.events.Receiver(conn, handlers={"*": on_event})
        task_id = ""
        with recv.consumer_context() as (connection, _channel, _consumers):
            task_id = celery.mod.add.delay(2, 3).id
            deadline = time.monotonic() + 10
            while "task-succeeded" not in seen and time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
    assert "task-succeeded" in seen, (seen, celery.worker.output()[-2000:])
    assert seen["task-succeeded"]["result"] == "5"
    assert seen["task-succeeded"]["hostname"] == celery.app.node
    assert {"task-received", "task-started"} <= set(seen)


def test_group_and_chain_with_rpc_results(celery):
    add = celery.mod.add
    assert group(add.s(i, i) for i in range(10))().get(timeout=15) == [2 * i for i in range(10)]
    assert chain(add.s(1, 2), add.s(3), add.s(4))().get(timeout=15) == 10


def test_chord_is_refused_by_the_rpc_backend(celery):
    """Celery's rpc backend does not support chords (its own check, before anything is
    sent); chords run with a backend that has them: test_celery_quorum.py uses file://."""
    with pytest.raises(NotImplementedError, match="does not support chords"):
        chord(celery.mod.add.s(i, i) for i in range(3))(celery.mod.tsum.s())


def test_worker_is_still_serving(celery):
    """After everything above (a held task, retries, control commands), the worker is
    alive and takes new work at once."""
    wait_until(lambda: celery.worker.alive(), 1, "worker alive", celery.worker)
    assert celery.mod.add.delay(20, 22).get(timeout=10) == 42
