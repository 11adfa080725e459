"""Policies over the wire: what a policy set over the management API does to queues
and exchanges, seen by an AMQP client (pika).

Policies are vhost-wide and the RabbitMQ these tests also run against is shared, so
every pattern is anchored to the test's own names and every policy is cleared in a
``finally``.  RabbitMQ applies a policy asynchronously: each test waits until the
queue (or exchange) shows the policy in the management API before publishing.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from tests.mgmt import Api, seg

V = seg("/")


def only(*names: str) -> str:
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


class Policies:
    """Sets policies through the API and clears all of them afterwards."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.made: list[tuple[str, str]] = []

    def set(self, pattern: str, definition: dict[str, Any], priority: int = 0,
            apply_to: str = "all", operator: bool = False) -> str:
        kind = "operator-policies" if operator else "policies"
        name = f"pol-{uuid.uuid4().hex[:10]}"
        self.made.append((kind, name))
        self.api.ok("PUT", f"{kind}/{V}/{name}", {"pattern": pattern, "definition": definition,
                                                  "priority": priority, "apply-to": apply_to})
        return name

    def clear(self, name: str) -> None:
        for kind, n in self.made:
            if n == name:
                assert self.api.delete(f"{kind}/{V}/{name}").status_code == 204

    def wait(self, queue: str, key: str, value: Any, kind: str = "queues") -> dict[str, Any]:
        return self.api.wait_for(f"{kind}/{V}/{seg(queue)}", lambda q: q.get(key) == value)


@pytest.fixture
def pol(http_url: str) -> Iterator[Policies]:
    p = Policies(Api(http_url))
    try:
        yield p
    finally:
        for kind, name in p.made:
            p.api.delete(f"{kind}/{V}/{name}")


@pytest.fixture
def ch(broker_url: str) -> Iterator[Any]:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()  # publishes are in the queue when basic_publish returns
        yield channel
    finally:
        if conn.is_open:
            conn.close()


def count(ch: Any, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def bodies(ch: Any, queue: str) -> list[bytes]:
    out = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def publish(ch: Any, queue: str, *bodies_: bytes) -> None:
    for b in bodies_:
        ch.basic_publish("", queue, b)


def test_max_length_policy_limits_an_existing_queue_at_once(ch, pol, qname) -> None:
    ch.queue_declare(qname, auto_delete=False)
    try:
        publish(ch, qname, b"1", b"2", b"3", b"4", b"5")
        name = pol.set(only(qname), {"max-length": 2}, apply_to="queues")
        pol.wait(qname, "policy", name)
        # The lower limit dropped the excess head at once (drop-head).
        assert count(ch, qname) == 2
        publish(ch, qname, b"6")
        assert bodies(ch, qname) == [b"5", b"6"]
        # Cleared: no limit any more.
        pol.clear(name)
        pol.wait(qname, "policy", None)
        publish(ch, qname, b"a", b"b", b"c")
        assert count(ch, qname) == 3
    finally:
        ch.queue_delete(qname)


def test_message_ttl_policy_expires_messages(ch, pol, qname) -> None:
    name = pol.set(only(qname), {"message-ttl": 100})
    ch.queue_declare(qname)
    try:
        pol.wait(qname, "policy", name)
        publish(ch, qname, b"gone")
        time.sleep(0.6)
        assert ch.basic_get(qname, auto_ack=True)[0] is None
    finally:
        ch.queue_delete(qname)


def test_a_new_message_ttl_applies_to_messages_published_after_it(ch, pol, qname) -> None:
    """As RabbitMQ's classic queues: a message's expiry is fixed when it is enqueued."""
    ch.queue_declare(qname)
    try:
        publish(ch, qname, b"before")
        name = pol.set(only(qname), {"message-ttl": 100})
        pol.wait(qname, "policy", name)
        publish(ch, qname, b"after")
        time.sleep(0.6)
        assert bodies(ch, qname) == [b"before"]
    finally:
        ch.queue_delete(qname)


def test_dead_letter_policy_dead_letters_rejected_messages(ch, pol, qname) -> None:
    dlq = qname + ".dlq"
    ch.queue_declare(dlq)
    ch.queue_declare(qname)
    try:
        name = pol.set(only(qname), {"dead-letter-exchange": "", "dead-letter-routing-key": dlq})
        pol.wait(qname, "policy", name)
        publish(ch, qname, b"poison")
        method, _, _ = ch.basic_get(qname)
        ch.basic_reject(method.delivery_tag, requeue=False)
        time.sleep(0.2)
        method, props, body = ch.basic_get(dlq, auto_ack=True)
        assert body == b"poison"
        assert props.headers["x-death"][0]["reason"] == "rejected"
        assert props.headers["x-death"][0]["queue"] == qname
    finally:
        ch.queue_delete(qname)
        ch.queue_delete(dlq)


def test_highest_priority_policy_applies_alone(ch, pol, qname) -> None:
    low = pol.set(only(qname), {"max-length": 3, "message-ttl": 60000}, priority=1)
    high = pol.set("^" + re.escape(qname), {"max-length": 1}, priority=5)
    ch.queue_declare(qname)
    try:
        info = pol.wait(qname, "policy", high)
        assert info["effective_policy_definition"] == {"max-length": 1}
        publish(ch, qname, b"1", b"2", b"3")
        assert bodies(ch, qname) == [b"3"]
        pol.clear(high)
        pol.wait(qname, "policy", low)
        publish(ch, qname, b"1", b"2", b"3", b"4")
        assert count(ch, qname) == 3
    finally:
        ch.queue_delete(qname)


def test_argument_and_policy_the_lower_limit_wins(ch, pol, qname) -> None:
    q_arg_low, q_pol_low = qname + ".a", qname + ".p"
    ch.queue_declare(q_arg_low, arguments={"x-max-length": 2})
    ch.queue_declare(q_pol_low, arguments={"x-max-length": 5})
    try:
        name = pol.set(only(q_arg_low), {"max-length": 4})
        name2 = pol.set(only(q_pol_low), {"max-length": 3})
        pol.wait(q_arg_low, "policy", name)
        pol.wait(q_pol_low, "policy", name2)
        for q in (q_arg_low, q_pol_low):
            publish(ch, q, *[b"%d" % i for i in range(6)])
        assert count(ch, q_arg_low) == 2
        assert count(ch, q_pol_low) == 3
    finally:
        ch.queue_delete(q_arg_low)
        ch.queue_delete(q_pol_low)


def test_dead_letter_argument_wins_over_the_policy(ch, pol, qname) -> None:
    by_arg, by_pol = qname + ".arg", qname + ".pol"
    for q in (by_arg, by_pol):
        ch.queue_declare(q)
    ch.queue_declare(qname, arguments={"x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": by_arg})
    try:
        name = pol.set(only(qname), {"dead-letter-exchange": "", "dead-letter-routing-key": by_pol})
        pol.wait(qname, "policy", name)
        publish(ch, qname, b"m")
        method, _, _ = ch.basic_get(qname)
        ch.basic_reject(method.delivery_tag, requeue=False)
        time.sleep(0.2)
        assert count(ch, by_arg) == 1 and count(ch, by_pol) == 0
    finally:
        for q in (qname, by_arg, by_pol):
            ch.queue_delete(q)


def test_operator_policy_the_lower_value_wins(ch, pol, qname) -> None:
    name = pol.set(only(qname), {"max-length": 5, "dead-letter-routing-key": "k"})
    op = pol.set(only(qname), {"max-length": 2}, operator=True)
    ch.queue_declare(qname)
    try:
        info = pol.wait(qname, "operator_policy", op)
        assert info["policy"] == name
        assert info["effective_policy_definition"] == {"max-length": 2,
                                                       "dead-letter-routing-key": "k"}
        publish(ch, qname, b"1", b"2", b"3")
        assert bodies(ch, qname) == [b"2", b"3"]
    finally:
        ch.queue_delete(qname)


def test_expires_policy_deletes_an_unused_queue(ch, pol, qname) -> None:
    ch.queue_declare(qname)
    try:
        pol.set(only(qname), {"expires": 300}, apply_to="queues")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = pol.api.get(f"queues/{V}/{seg(qname)}")
            if r.status_code == 404:
                break
            time.sleep(0.1)
        assert r.status_code == 404
    finally:
        ch.queue_delete(qname)


def test_alternate_exchange_policy_and_the_argument_wins(ch, pol, qname) -> None:
    x, ae, ae_arg = qname + ".x", qname + ".ae", qname + ".ae-arg"
    got, got_arg = qname + ".got", qname + ".got-arg"
    for name, q in ((ae, got), (ae_arg, got_arg)):
        ch.exchange_declare(name, "fanout")
        ch.queue_declare(q)
        ch.queue_bind(q, name)
    ch.exchange_declare(x, "direct")
    x2 = qname + ".x2"
    ch.exchange_declare(x2, "direct", arguments={"alternate-exchange": ae_arg})
    try:
        name = pol.set(only(x, x2), {"alternate-exchange": ae}, apply_to="exchanges")
        pol.wait(x, "policy", name, kind="exchanges")
        pol.wait(x2, "policy", name, kind="exchanges")
        ch.basic_publish(x, "nobody", b"to-ae")
        ch.basic_publish(x2, "nobody", b"to-ae-arg")
        time.sleep(0.2)
        assert bodies(ch, got) == [b"to-ae"]
        assert bodies(ch, got_arg) == [b"to-ae-arg"]
        # A policy for exchanges never touches a queue.
        assert pol.api.ok("GET", f"queues/{V}/{seg(got)}").get("policy") is None
    finally:
        for e in (x, x2, ae, ae_arg):
            ch.exchange_delete(e)
        for q in (got, got_arg):
            ch.queue_delete(q)


@pytest.mark.hutch_only  # a policy time beyond any timer: accepted and harmless
def test_huge_times_in_a_policy_do_not_break_the_queue(ch, pol, qname) -> None:
    name = pol.set(only(qname), {"message-ttl": 10**400, "expires": 10**400})
    ch.queue_declare(qname)
    try:
        pol.wait(qname, "policy", name)
        publish(ch, qname, b"kept")
        assert bodies(ch, qname) == [b"kept"]
    finally:
        ch.queue_delete(qname)


# -- a key the queue's type does not support keeps the whole policy off that queue --------
# (rabbit_queue_type:is_policy_applicable and each type's unsupported_policies; RabbitMQ
# 3.10 and 4.3 alike): the next matching policy down applies instead.
def test_a_policy_with_a_key_the_type_does_not_support_skips_that_queue(ch, pol, qname) -> None:
    classic, quorum = qname + ".c", qname + ".q"
    ch.queue_declare(classic, durable=True)
    ch.queue_declare(quorum, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        low = pol.set(only(classic, quorum), {"max-length": 2}, priority=1)
        # queue-mode is a classic-queue key: not for a quorum queue.
        lazy = pol.set(only(classic, quorum), {"queue-mode": "lazy", "max-length": 1},
                       priority=5)
        assert pol.wait(classic, "policy", lazy)["effective_policy_definition"] == {
            "queue-mode": "lazy", "max-length": 1}
        assert pol.wait(quorum, "policy", low)["effective_policy_definition"] == {
            "max-length": 2}
        publish(ch, classic, b"1", b"2", b"3")
        publish(ch, quorum, b"1", b"2", b"3")
        assert (count(ch, classic), count(ch, quorum)) == (1, 2)
        # dead-letter-strategy is a quorum-queue key: not for a classic queue.
        pol.clear(lazy)
        strategy = pol.set(only(classic, quorum), {"dead-letter-strategy": "at-least-once",
                                                   "max-length": 1}, priority=5)
        pol.wait(quorum, "policy", strategy)
        pol.wait(classic, "policy", low)
        for q in (classic, quorum):
            ch.queue_purge(q)
            publish(ch, q, b"1", b"2", b"3")
        assert (count(ch, classic), count(ch, quorum)) == (2, 1)
    finally:
        for q in (classic, quorum):
            ch.queue_delete(q)


@pytest.mark.hutch_only  # 3.10's operator policies take neither key; 4.3's take both
def test_an_operator_policy_with_a_key_the_type_does_not_support_skips_it(ch, pol,
                                                                          qname) -> None:
    classic, quorum = qname + ".c", qname + ".q"
    ch.queue_declare(classic, durable=True)
    ch.queue_declare(quorum, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        low = pol.set(only(classic, quorum), {"max-length": 2}, priority=1, operator=True)
        # queue-master-locator: not for a quorum queue.
        high = pol.set(only(classic, quorum), {"queue-master-locator": "client-local",
                                               "max-length": 1}, priority=5, operator=True)
        pol.wait(classic, "operator_policy", high)
        pol.wait(quorum, "operator_policy", low)
        publish(ch, classic, b"1", b"2", b"3")
        publish(ch, quorum, b"1", b"2", b"3")
        assert (count(ch, classic), count(ch, quorum)) == (1, 2)
        # target-group-size: not for a classic queue (4.3).
        pol.clear(high)
        group = pol.set(only(classic, quorum), {"target-group-size": 3, "max-length": 1},
                        priority=5, operator=True)
        pol.wait(quorum, "operator_policy", group)
        pol.wait(classic, "operator_policy", low)
        for q in (classic, quorum):
            ch.queue_purge(q)
            publish(ch, q, b"1", b"2", b"3")
        assert (count(ch, classic), count(ch, quorum)) == (2, 1)
    finally:
        for q in (classic, quorum):
            ch.queue_delete(q)


@pytest.mark.hutch_only  # Hutch's classic queues honour delivery-limit (a Hutch extension);
# RabbitMQ lists it among a classic queue's unsupported keys and skips such a policy
def test_a_delivery_limit_policy_applies_to_a_classic_queue(ch, pol, qname) -> None:
    ch.queue_declare(qname)
    try:
        name = pol.set(only(qname), {"delivery-limit": 0, "max-length": 1})
        assert pol.wait(qname, "policy", name)["effective_policy_definition"] == {
            "delivery-limit": 0, "max-length": 1}
        publish(ch, qname, b"1", b"2")
        method, _, body = ch.basic_get(qname)
        assert body == b"2"
        ch.basic_reject(method.delivery_tag, requeue=True)
        # The limit of 0 redeliveries: the returned message is dropped.
        assert ch.basic_get(qname, auto_ack=True)[0] is None
    finally:
        ch.queue_delete(qname)
