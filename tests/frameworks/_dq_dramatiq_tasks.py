"""The Dramatiq actors of tests/frameworks/test_dramatiq.py, run by a real worker:

    python -m dramatiq tests.frameworks._dq_dramatiq_tasks --processes 1 --threads 2

Configured by the environment (the test sets it): DQ_TEST_AMQP_URL (the broker),
DQ_TEST_PREFIX (queue names unique to the run: the brokers are shared), DQ_TEST_OUT
(the file each call appends a JSON line to), DQ_TEST_MAX_PRIORITY.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.common import q_name

from tests.frameworks._dq_procs import record

PREFIX = os.environ["DQ_TEST_PREFIX"]
OUT = os.environ["DQ_TEST_OUT"]
GATE = OUT + ".gate"


class QuorumAwareBroker(RabbitmqBroker):
    """Dramatiq 2.2 has no quorum-queue option (upstream PRs #869/#871 were closed
    unmerged), so teams that want quorum queues override the queue arguments as here:
    a queue whose name ends in ``-quorum`` (with its ``.DQ``) is a quorum queue and
    keeps Dramatiq's dead-letter arguments; the others get ``x-max-priority``."""

    def _build_queue_arguments(self, queue_name: str) -> dict[str, object]:
        arguments: dict[str, object] = super()._build_queue_arguments(queue_name)
        if q_name(queue_name).endswith("-quorum"):
            arguments.pop("x-max-priority", None)
            arguments["x-queue-type"] = "quorum"
        return arguments


broker = QuorumAwareBroker(
    url=os.environ["DQ_TEST_AMQP_URL"],
    # Publisher confirms + mandatory publishes, as Dramatiq's docs recommend.
    confirm_delivery=True,
    max_priority=int(os.environ.get("DQ_TEST_MAX_PRIORITY", "10")) or None,
)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=f"{PREFIX}-work")
def echo(tag: str) -> None:
    record(OUT, kind="echo", tag=tag)


@dramatiq.actor(queue_name=f"{PREFIX}-phoenix")
def phoenix(tag: str) -> None:
    record(OUT, kind="phoenix", tag=tag)


@dramatiq.actor(queue_name=f"{PREFIX}-retry", max_retries=2, min_backoff=100, max_backoff=400)
def flaky(tag: str) -> None:
    record(OUT, kind="flaky", tag=tag)
    raise RuntimeError(f"flaky {tag} fails (on purpose)")


@dramatiq.actor(queue_name=f"{PREFIX}-prio")
def gate(tag: str) -> None:
    """Holds the worker's one delivery of the priority queue until the test has
    queued the prioritised messages behind it."""
    record(OUT, kind="gate", tag=tag)
    deadline = time.monotonic() + 15
    while not os.path.exists(GATE) and time.monotonic() < deadline:
        time.sleep(0.01)


@dramatiq.actor(queue_name=f"{PREFIX}-prio")
def prio(n: int) -> None:
    record(OUT, kind="prio", n=n)


@dramatiq.actor(queue_name=f"{PREFIX}-quorum")
def qecho(tag: str) -> None:
    record(OUT, kind="qecho", tag=tag)


@dramatiq.actor(queue_name=f"{PREFIX}-quorum", max_retries=1, min_backoff=100, max_backoff=100)
def qflaky(tag: str) -> None:
    record(OUT, kind="qflaky", tag=tag)
    raise RuntimeError(f"qflaky {tag} fails (on purpose)")
