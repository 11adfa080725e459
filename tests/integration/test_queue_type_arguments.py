"""Which arguments each queue type takes (RabbitMQ 4.3's ``check_declare_arguments``).

Each queue type has its own list of ``x-`` arguments; one from another type's list
is refused with 406 naming the type, one nobody knows is accepted and ignored.
RabbitMQ 3.10 (CI's) has the same check with shorter lists; what only 4.x does is
marked Hutch-only.
"""

from __future__ import annotations

import pytest

from tests.integration.rawamqp import cleanup, connect, expect_channel_error, expect_ok

PF = "PRECONDITION_FAILED - "
QQ = {"x-queue-type": "quorum"}


@pytest.fixture
def conn(broker_url, qname):
    c = connect(broker_url)
    yield c
    if c.is_open:
        c.close()
    cleanup(broker_url, queues=(qname,))


def _refused(broker_url, conn, qname, kwargs, detail):
    expect_channel_error(broker_url, conn, conn.channel(),
                         lambda c: c.queue_declare(qname, **kwargs), 406,
                         PF + detail.format(q=f"queue '{qname}' in vhost '/'"))


OTHER_TYPES_ARGS = [
    pytest.param({"x-max-age": "1D"}, "classic", id="classic-max-age"),
    pytest.param({"x-dead-letter-strategy": "at-least-once"}, "classic", id="classic-dlx-strategy"),
    pytest.param({"x-quorum-initial-group-size": 3}, "classic", id="classic-group-size"),
    pytest.param({"x-stream-max-segment-size-bytes": 1000}, "classic", id="classic-segment-size"),
    pytest.param({**QQ, "x-max-priority": 5}, "quorum", id="quorum-max-priority"),
    pytest.param({**QQ, "x-queue-mode": "lazy"}, "quorum", id="quorum-queue-mode"),
    pytest.param({**QQ, "x-queue-version": 2}, "quorum", id="quorum-queue-version"),
    pytest.param({**QQ, "x-max-age": "1D"}, "quorum", id="quorum-max-age"),
]


@pytest.mark.parametrize(("args", "qtype"), OTHER_TYPES_ARGS)
def test_another_types_argument_is_refused(broker_url, conn, qname, args, qtype):
    key = next(k for k in args if k != "x-queue-type")
    _refused(broker_url, conn, qname, dict(durable=True, arguments=args),
             f"invalid arg '{key}' for {{q}} of queue type rabbit_{qtype}_queue")


@pytest.mark.hutch_only  # RabbitMQ has streams; Hutch refuses rather than fake one
def test_stream_queues_are_refused(broker_url, conn, qname):
    _refused(broker_url, conn, qname, dict(durable=True, arguments={"x-queue-type": "stream"}),
             "invalid arg 'x-queue-type' for {q}: \"unsupported queue type 'stream': "
             "Hutch has no streams\"")


@pytest.mark.hutch_only  # RabbitMQ 4.3's quorum-queue delayed retry: not implemented, so refused
@pytest.mark.parametrize("key", ["x-delayed-retry-type", "x-delayed-retry-min", "x-delayed-retry-max"])
def test_delayed_retry_is_refused(broker_url, conn, qname, key):
    value = "all" if key.endswith("type") else 1000
    _refused(broker_url, conn, qname, dict(durable=True, arguments={**QQ, key: value}),
             f"invalid arg '{key}' for {{q}}: \"delayed retry of quorum queues (RabbitMQ 4.3) "
             "is not supported by Hutch\"")


@pytest.mark.hutch_only  # RabbitMQ 3.10 still had classic queue version 1
def test_queue_version_1_is_refused(broker_url, conn, qname):
    _refused(broker_url, conn, qname, dict(arguments={"x-queue-version": 1}),
             "invalid arg 'x-queue-version' for {q}: \"unsupported queue version '1'\"")


BAD_VALUES = [
    pytest.param({**QQ, "x-dead-letter-strategy": "sometimes"},
                 "invalid arg 'x-dead-letter-strategy' for {q}: invalid_dlx_strategy", id="dlx-strategy"),
    pytest.param({**QQ, "x-dead-letter-strategy": 1},
                 "invalid arg 'x-dead-letter-strategy' for {q}: {{unacceptable_type,signedint}}",
                 id="dlx-strategy-type"),
    pytest.param({**QQ, "x-quorum-initial-group-size": 0},
                 "invalid arg 'x-quorum-initial-group-size' for {q}: {{value_zero,0}}", id="group-size-0"),
    pytest.param({**QQ, "x-queue-leader-locator": "nearest"},
                 "invalid arg 'x-queue-leader-locator' for {q}: invalid_queue_locator_arg",
                 id="leader-locator"),
]


@pytest.mark.parametrize(("args", "detail"), BAD_VALUES)
def test_bad_values(broker_url, conn, qname, args, detail):
    _refused(broker_url, conn, qname, dict(durable=True, arguments=args), detail)


ACCEPTED = [
    # Placement and replica counts: a single node has nothing to place, exactly as a
    # one-node RabbitMQ (README: "Queue arguments").
    # 4.x lists x-queue-leader-locator for classic queues too; 3.10 refuses it there.
    pytest.param({"x-queue-leader-locator": "client-local"}, id="classic-leader-locator",
                 marks=pytest.mark.hutch_only),
    pytest.param({**QQ, "x-queue-leader-locator": "balanced"}, id="quorum-leader-locator"),
    pytest.param({**QQ, "x-quorum-initial-group-size": 3}, id="quorum-group-size"),
    pytest.param({**QQ, "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"},
                 id="quorum-at-least-once"),
    pytest.param({**QQ, "x-max-in-memory-length": 10}, id="quorum-in-memory-length"),
    pytest.param({"x-queue-version": 2}, id="classic-v2"),
    pytest.param({"x-queue-mode": "lazy"}, id="classic-lazy"),
    pytest.param({"x-not-known-anywhere": 1}, id="unknown"),
]


@pytest.mark.parametrize("args", ACCEPTED)
def test_accepted(broker_url, conn, qname, args):
    ok = expect_ok(broker_url, conn, conn.channel(),
                   lambda c: c.queue_declare(qname, durable=True, arguments=args))
    assert ok.method.queue == qname


def _consume_refused(broker_url, conn, qname, qargs, cargs, detail):
    conn.channel().queue_declare(qname, durable=True, arguments=qargs)

    def consume(c):
        c.basic_consume(qname, lambda *a: None, arguments=cargs)
    expect_channel_error(broker_url, conn, conn.channel(), consume, 406,
                         PF + detail.format(q=f"queue '{qname}' in vhost '/'"))


@pytest.mark.parametrize("qargs", [{}, QQ], ids=["classic", "quorum"])
def test_stream_consumer_argument_is_refused(broker_url, conn, qname, qargs):
    qtype = "quorum" if qargs else "classic"
    _consume_refused(broker_url, conn, qname, qargs, {"x-stream-offset": "first"},
                     f"invalid arg 'x-stream-offset' for {{q}} of queue type rabbit_{qtype}_queue")


@pytest.mark.hutch_only  # 4.3 lists it for quorum consumers only; 3.10 knew no such argument
def test_consumer_timeout_consumer_argument(broker_url, conn, qname):
    _consume_refused(broker_url, conn, qname, {}, {"x-consumer-timeout": 1000},
                     "invalid arg 'x-consumer-timeout' for {q} of queue type rabbit_classic_queue")


@pytest.mark.hutch_only  # RabbitMQ 4.3 honours it on quorum queues; Hutch refuses, not ignores
def test_consumer_timeout_consumer_argument_on_quorum_is_refused(broker_url, conn, qname):
    _consume_refused(broker_url, conn, qname, QQ, {"x-consumer-timeout": 1000},
                     "invalid arg 'x-consumer-timeout' for {q}: \"a consumer's own timeout "
                     "(RabbitMQ 4.3) is not supported by Hutch; use the queue's "
                     "x-consumer-timeout or a consumer-timeout policy\"")


REDECLARE = [
    # Every argument of the queue type's list is compared (rabbit_misc:assert_args_equivalence
    # over rabbit_queue_type:arguments(queue_arguments, Type), 3.10 and 4.3 alike).
    pytest.param({"x-delivery-limit": 5}, {"x-delivery-limit": 6},
                 "inequivalent arg 'x-delivery-limit' for {q}: received '6' but current is '5'",
                 id="delivery-limit"),
    pytest.param({"x-delivery-limit": 5}, {},
                 "inequivalent arg 'x-delivery-limit' for {q}: received none but current is the "
                 "value '5' of type 'signedint'", id="delivery-limit-absent"),
    pytest.param({"x-dead-letter-strategy": "at-most-once"}, {"x-dead-letter-strategy": "at-least-once"},
                 "inequivalent arg 'x-dead-letter-strategy' for {q}: received 'at-least-once' but "
                 "current is 'at-most-once'", id="dlx-strategy"),
]


@pytest.mark.parametrize(("first", "second", "detail"), REDECLARE)
def test_redeclare_compares_the_types_arguments(broker_url, conn, qname, first, second, detail):
    conn.channel().queue_declare(qname, durable=True, arguments={**QQ, **first})
    _refused(broker_url, conn, qname, dict(durable=True, arguments={**QQ, **second}), detail)


def test_void_consumer_priority_is_refused(broker_url, conn, qname):
    _consume_refused(broker_url, conn, qname, {}, {"x-priority": None},
                     "invalid arg 'x-priority' for {q}: \"expected integer, got void\"")


def test_basic_get_on_a_single_active_consumer_quorum_queue(broker_url, conn, qname):
    args = {**QQ, "x-single-active-consumer": True}
    conn.channel().queue_declare(qname, durable=True, arguments=args)
    expect_channel_error(
        broker_url, conn, conn.channel(), lambda c: c.basic_get(qname), 405,
        f"RESOURCE_LOCKED - cannot obtain access to locked queue '{qname}' in vhost '/'. "
        "basic.get operations are not supported by quorum queues with single active consumer")
