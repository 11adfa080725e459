"""The Celery app the Celery tests run: one template, configured per test module.

Tasks record what happened (when they ran, in which process, whether the message was
a redelivery, the ETA Celery gave them) as one JSON file per event in ``OUT``; the test
process reads them.  Times are ``time.time()`` of the same machine on both sides.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.frameworks.workerproc import Worker, Workers, wait_until, write_app

# Issue #16: on Hutch a countdown task runs within 100 ms of its due time.  Against
# RabbitMQ (HUTCH_TEST_AMQP_URL) these tests prove the same behaviour, not Hutch's
# figure: RabbitMQ 3.10's quorum TTL path was measured up to 84 ms late on an idle
# machine and beyond 100 ms under load, so it gets 250 ms.
ON_TIME = 0.250 if os.environ.get("HUTCH_TEST_AMQP_URL") else 0.100


def delete_objects(app: Any, *queues: str, exchanges: tuple[str, ...] = ()) -> None:
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in queues:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)


APP_TEMPLATE = '''\
import json
import os
import time

from celery import Celery

OUT = {out!r}
app = Celery({module!r}, broker={broker!r}, backend={backend!r})
app.conf.update(
    task_default_queue={queue!r},
    task_default_exchange={queue!r},
    task_default_routing_key={queue!r},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=120,
    **{conf!r},
)


def record(tag, **data):
    data.update(t=time.time(), pid=os.getpid())
    path = os.path.join(OUT, tag)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path + ".json")


@app.task
def add(x, y):
    return x + y


@app.task
def tsum(xs):
    return sum(xs)


@app.task(bind=True)
def stamp(self, tag):
    record(tag, eta=self.request.eta, redelivered=self.request.delivery_info.get("redelivered"))
    return tag


@app.task(bind=True, autoretry_for=(ValueError,), retry_backoff=1, retry_jitter=False,
          max_retries=3)
def flaky(self, tag, failures):
    """Fails ``failures`` times; autoretry waits 1 s, 2 s, 4 s... between attempts."""
    record(f"{{tag}}-{{self.request.retries}}", eta=self.request.eta)
    if self.request.retries < failures:
        raise ValueError("not yet")
    return self.request.retries


@app.task(bind=True, max_retries=3)
def retry_once(self, tag, countdown):
    record(f"{{tag}}-{{self.request.retries}}", eta=self.request.eta)
    if self.request.retries < 1:
        raise self.retry(countdown=countdown)
    return self.request.retries


@app.task(bind=True)
def block(self, tag, timeout=20.0):
    """Runs until the test creates OUT/tag.release (or ``timeout``)."""
    record(tag + "-started", redelivered=self.request.delivery_info.get("redelivered"))
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(OUT, tag + ".release")) and time.time() < deadline:
        time.sleep(0.01)
    record(tag + "-done", redelivered=self.request.delivery_info.get("redelivered"))
'''


class CeleryApp:
    """One configured app: its module file, its queue, and the records its tasks leave."""

    def __init__(self, directory: Path, broker_url: str, *, backend: str = "rpc://",
                 prefix: str = "celerytest", **conf: Any) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.module = f"{prefix}_{suffix}"
        self.queue = f"test.{prefix}.{suffix}"
        self.node = f"{self.queue}@{socket.gethostname()}"
        self.out = directory / f"{self.module}-out"
        self.out.mkdir()
        write_app(directory, self.module, APP_TEMPLATE.format(
            out=str(self.out), module=self.module, broker=broker_url, backend=backend,
            queue=self.queue, conf=conf))

    def worker(self, workers: Workers, *extra: str, pool: str = "threads",
               concurrency: int = 4) -> Worker:
        """Starts ``celery -A app worker`` on the app's queue and waits for "ready"."""
        worker = workers.spawn(
            "celery", "-A", self.module, "worker", f"--pool={pool}",
            f"--concurrency={concurrency}", "-n", self.node, "-Q", self.queue,
            "--without-gossip", "--without-mingle", "--loglevel=INFO", *extra,
            name=self.module)
        worker.wait_for_output(" ready.", timeout=30)
        return worker

    def record(self, tag: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.out / f"{tag}.json").read_text())
        except FileNotFoundError:
            return None

    def wait_record(self, tag: str, *watch: Worker, timeout: float = 15.0) -> dict[str, Any]:
        wait_until(lambda: self.record(tag) is not None, timeout, f"task record {tag!r}", *watch)
        found = self.record(tag)
        assert found is not None
        return found

    def release(self, tag: str) -> None:
        (self.out / f"{tag}.release").touch()


def lateness(rec: dict[str, Any]) -> float:
    """Seconds between the ETA Celery put on the message and the moment the task ran."""
    return rec["t"] - datetime.fromisoformat(rec["eta"]).timestamp()

