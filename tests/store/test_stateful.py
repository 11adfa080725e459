"""A stateful property test in the spirit of RabbitMQ's classic_queue_prop_SUITE.

Hypothesis drives random publish (persistent or not) / get / ack / nack / reject /
channel-close / broker-restart (clean and kill -9) sequences against a real
``hutch serve`` and a model of one durable queue; after every step the broker
must agree with the model: same message count, and every get returns the
model's head with the model's redelivered flag.
"""

from __future__ import annotations

import pika
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.brokerproc import HutchProcess

QUEUE = "sm"
# Acks and deliveries are not synced before their reply; a confirmed persistent
# publish on the same channel after them is: the log writes records in order, so
# its confirm says everything before it is on disk too.
BARRIER = "sm-barrier"


class ModelMsg:
    def __init__(self, seq: int, body: bytes, persistent: bool) -> None:
        self.seq = seq
        self.body = body
        self.persistent = persistent
        self.redelivered = False


class QueueMachine(RuleBasedStateMachine):
    proc: HutchProcess  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.next = 0
        self.ready: list[ModelMsg] = []
        self.unacked: dict[int, ModelMsg] = {}  # delivery tag -> message
        self._connect()
        self.ch.queue_purge(QUEUE)

    def _connect(self) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(self.proc.url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.ch.queue_declare(QUEUE, durable=True)
        self.ch.queue_declare(BARRIER, durable=True)

    def _requeue_all(self) -> None:
        for m in self.unacked.values():
            m.redelivered = True
            self.ready.append(m)
        self.unacked.clear()
        self.ready.sort(key=lambda m: m.seq)

    @rule(persistent=st.booleans(), size=st.sampled_from([0, 1, 100, 5000]))
    def publish(self, persistent: bool, size: int) -> None:
        self.next += 1
        body = f"{self.next}:".encode() + b"b" * size
        self.ch.basic_publish("", QUEUE, body, pika.BasicProperties(delivery_mode=2 if persistent else 1))
        self.ready.append(ModelMsg(self.next, body, persistent))

    @rule(no_ack=st.booleans())
    def get(self, no_ack: bool) -> None:
        method, _props, body = self.ch.basic_get(QUEUE, auto_ack=no_ack)
        if not self.ready:
            assert method is None
            return
        head = self.ready.pop(0)
        assert method is not None, "broker says empty, model does not"
        assert body == head.body
        assert method.redelivered == head.redelivered
        head.redelivered = True  # it has been delivered now
        if not no_ack:
            self.unacked[method.delivery_tag] = head

    @precondition(lambda self: self.unacked)
    @rule(data=st.data())
    def ack(self, data) -> None:
        tag = data.draw(st.sampled_from(sorted(self.unacked)))
        self.ch.basic_ack(tag)
        del self.unacked[tag]

    @precondition(lambda self: self.unacked)
    @rule(data=st.data(), requeue=st.booleans(), multiple=st.booleans())
    def nack(self, data, requeue: bool, multiple: bool) -> None:
        tag = data.draw(st.sampled_from(sorted(self.unacked)))
        self.ch.basic_nack(tag, multiple=multiple, requeue=requeue)
        tags = [t for t in self.unacked if t <= tag] if multiple else [tag]
        for t in tags:
            m = self.unacked.pop(t)
            if requeue:
                self.ready.append(m)
        self.ready.sort(key=lambda m: m.seq)

    @rule()
    def close_channel(self) -> None:
        self.ch.close()
        self._requeue_all()
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    @rule(kill=st.booleans())
    def restart(self, kill: bool) -> None:
        self.ch.basic_publish("", BARRIER, b"", pika.BasicProperties(delivery_mode=2))
        if kill:
            self.proc.kill()
        else:
            self.conn.close()
            self.proc.stop()
        self._requeue_all()
        self.ready = [m for m in self.ready if m.persistent]
        self.proc.start()
        self._connect()

    @invariant()
    def counts_agree(self) -> None:
        ok = self.ch.queue_declare(QUEUE, durable=True, passive=True)
        assert ok.method.message_count == len(self.ready)

    def teardown(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


@pytest.mark.hutch_only
def test_queue_state_machine() -> None:
    proc = HutchProcess("--log-level", "warning")
    proc.start()
    QueueMachine.proc = proc
    try:
        QueueMachine.TestCase.settings = settings(
            max_examples=12, stateful_step_count=30, deadline=None, derandomize=True,
            suppress_health_check=list(HealthCheck))
        QueueMachine.TestCase().runTest()
    finally:
        proc.stop()
