"""Queue errors (catalog .ci/RABBITMQ_BEHAVIOUR.md sections 1, 2, 3, 9, 13, 14).

Every error case checks the reply code, the exact reply text, that only the
channel was closed, and that the broker still serves a fresh connection.
"""

from __future__ import annotations

import re
import uuid

import pytest
from pamqp import commands as cmd

from tests.integration.rawamqp import (
    assert_broker_ok,
    cleanup,
    connect,
    expect_channel_error,
    expect_ok,
    locked,
    raw_session,
    wire_text,
)

PF = "PRECONDITION_FAILED - "


@pytest.fixture
def sq() -> str:
    """A short unique queue name: keeps the long RESOURCE_LOCKED text under 255 bytes."""
    return f"q.{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conn(broker_url, qname, sq):
    c = connect(broker_url)
    yield c
    if c.is_open:
        c.close()
    cleanup(broker_url, queues=(qname, sq))


def _inequivalent(arg: str, q: str, detail: str) -> str:
    return f"{PF}inequivalent arg '{arg}' for queue '{q}' in vhost '/': {detail}"


# ---------------------------------------------------------------------------
# 1. queue.declare redeclaration (equivalence)
# ---------------------------------------------------------------------------

REDECLARE_ARGS = [
    pytest.param({"x-max-length": 10}, {}, "x-max-length",
                 "received none but current is the value '10' of type 'signedint'", id="maxlen-to-none"),
    pytest.param({}, {"x-max-length": 10}, "x-max-length",
                 "received the value '10' of type 'signedint' but current is none", id="none-to-maxlen"),
    pytest.param({"x-max-length": 10}, {"x-max-length": 20}, "x-max-length",
                 "received '20' but current is '10'", id="maxlen-10-20"),
    pytest.param({"x-max-length": 10}, {"x-max-length": "10"}, "x-max-length",
                 "received '10' but current is '10'", id="maxlen-int-to-str"),
    pytest.param({"x-message-ttl": 1000}, {"x-message-ttl": 2000}, "x-message-ttl",
                 "received '2000' but current is '1000'", id="ttl"),
    pytest.param({"x-expires": 10000}, {"x-expires": 20000}, "x-expires",
                 "received '20000' but current is '10000'", id="expires"),
    pytest.param({"x-dead-letter-exchange": "a"}, {"x-dead-letter-exchange": "b"},
                 "x-dead-letter-exchange", "received 'b' but current is 'a'", id="dlx"),
    pytest.param({"x-max-priority": 5}, {"x-max-priority": 10}, "x-max-priority",
                 "received '10' but current is '5'", id="max-priority"),
]


@pytest.mark.parametrize(("first", "second", "arg", "detail"), REDECLARE_ARGS)
def test_redeclare_with_different_args(broker_url, conn, qname, first, second, arg, detail):
    ch = conn.channel()
    ch.queue_declare(qname, arguments=first)
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(qname, arguments=second),
                         406, _inequivalent(arg, qname, detail))


@pytest.mark.parametrize("durable", [False, True])
def test_redeclare_durable_flag(broker_url, conn, durable):
    # The catalog uses the literal name 'hello'; the broker is shared, so clean up first.
    cleanup(broker_url, queues=("hello",))
    try:
        ch = conn.channel()
        ch.queue_declare("hello", durable=durable)
        new, old = ("true", "false") if not durable else ("false", "true")
        expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare("hello", durable=not durable),
                             406, _inequivalent("durable", "hello",
                                                f"received '{new}' but current is '{old}'"))
    finally:
        cleanup(broker_url, queues=("hello",))


@pytest.mark.parametrize("auto_delete", [False, True])
def test_redeclare_auto_delete_flag(broker_url, conn, qname, auto_delete):
    conn.channel().queue_declare(qname, auto_delete=auto_delete)
    ch = conn.channel()
    new, old = ("true", "false") if not auto_delete else ("false", "true")
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(qname, auto_delete=not auto_delete),
                         406, _inequivalent("auto_delete", qname, f"received '{new}' but current is '{old}'"))


@pytest.mark.parametrize("exclusive", [False, True])
def test_redeclare_exclusive_flag_same_connection(broker_url, conn, sq, exclusive):
    ch = conn.channel()
    ch.queue_declare(sq, exclusive=exclusive)
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(sq, exclusive=not exclusive),
                         405, locked(sq))


def test_redeclare_unknown_arg_changed_is_ok(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname, arguments={"x-foo": 1})
    ok = expect_ok(broker_url, conn, ch, lambda c: c.queue_declare(qname, arguments={"x-foo": 2}))
    assert ok.method.queue == qname


def test_redeclare_classic_as_quorum(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname, durable=True)
    expect_channel_error(
        broker_url, conn, ch,
        lambda c: c.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"}), 406,
        _inequivalent("x-queue-type", qname,
                      "received the value 'quorum' of type 'longstr' but current is none"))


def test_redeclare_quorum_as_classic(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    expect_channel_error(
        broker_url, conn, ch,
        lambda c: c.queue_declare(qname, durable=True, arguments={"x-queue-type": "classic"}), 406,
        _inequivalent("x-queue-type", qname, "received 'classic' but current is 'quorum'"))


def test_redeclare_quorum_without_type(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname, durable=True, arguments={"x-queue-type": "quorum"})
    expect_channel_error(
        broker_url, conn, ch, lambda c: c.queue_declare(qname, durable=True), 406,
        _inequivalent("x-queue-type", qname,
                      "received none but current is the value 'quorum' of type 'longstr'"))


def test_redeclare_implicit_classic_as_explicit_classic_is_ok(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname)
    expect_ok(broker_url, conn, ch, lambda c: c.queue_declare(qname, arguments={"x-queue-type": "classic"}))


# ---------------------------------------------------------------------------
# 2. passive declare
# ---------------------------------------------------------------------------

def test_passive_declare_missing_queue(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare("nosuchq", passive=True),
                         404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'")


def test_passive_exchange_declare_missing(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_declare("nosuchx", passive=True),
                         404, "NOT_FOUND - no exchange 'nosuchx' in vhost '/'")


def test_passive_exchange_declare_ignores_type(broker_url, conn):
    ch = conn.channel()
    expect_ok(broker_url, conn, ch,
              lambda c: c.exchange_declare("amq.direct", exchange_type="fanout", passive=True))


def test_passive_queue_declare_ignores_flags(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname, durable=False)
    ok = expect_ok(broker_url, conn, ch, lambda c: c.queue_declare(qname, durable=True, passive=True))
    assert ok.method.queue == qname


def test_passive_declare_empty_name(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare("", passive=True),
                         404, "NOT_FOUND - no queue '' in vhost '/'")


# ---------------------------------------------------------------------------
# 3. exclusive queue declared on connection A, used from connection B
# ---------------------------------------------------------------------------

@pytest.fixture
def owner(broker_url, conn, sq):
    """Connection A, owning the exclusive queue ``sq`` bound to amq.direct with key 'k'."""
    a = connect(broker_url)
    ch = a.channel()
    ch.queue_declare(sq, exclusive=True)
    ch.queue_bind(sq, "amq.direct", routing_key="k")
    yield ch
    if a.is_open:
        a.close()


EXCLUSIVE_FROM_B = {
    "declare-exclusive": lambda q: lambda c: c.queue_declare(q, exclusive=True),
    "declare-non-exclusive": lambda q: lambda c: c.queue_declare(q, exclusive=False),
    "declare-passive": lambda q: lambda c: c.queue_declare(q, passive=True),
    "consume": lambda q: lambda c: c.basic_consume(q, lambda *a: None),
    "delete": lambda q: lambda c: c.queue_delete(q),
    "bind": lambda q: lambda c: c.queue_bind(q, "amq.fanout"),
    "unbind-existing": lambda q: lambda c: c.queue_unbind(q, "amq.direct", routing_key="k"),
    "purge": lambda q: lambda c: c.queue_purge(q),
    "get": lambda q: lambda c: c.basic_get(q),
}


@pytest.mark.parametrize("op", list(EXCLUSIVE_FROM_B))
def test_exclusive_queue_from_other_connection(broker_url, conn, owner, sq, op):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, EXCLUSIVE_FROM_B[op](sq), 405, locked(sq))
    # The owner is unaffected.
    assert owner.queue_declare(sq, passive=True).method.queue == sq


def test_exclusive_queue_unbind_missing_binding_from_other_connection_is_ok(broker_url, conn, owner, sq):
    ch = conn.channel()
    expect_ok(broker_url, conn, ch, lambda c: c.queue_unbind(sq, "amq.direct", routing_key="other"))


def test_exclusive_queue_publish_from_other_connection_is_ok(broker_url, conn, owner, sq):
    ch = conn.channel()
    expect_ok(broker_url, conn, ch, lambda c: c.basic_publish("", sq, b"to-exclusive"))
    method, _props, body = owner.basic_get(sq, auto_ack=True)
    assert method is not None and body == b"to-exclusive"


def test_long_lock_error_text_is_truncated(broker_url, conn):
    long_name = "q." + "x" * 120 + uuid.uuid4().hex
    ch = conn.channel()
    ch.queue_declare(long_name, exclusive=True)
    text = locked(long_name)
    assert len(text.encode()) > 255 and wire_text(text).endswith("...")
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(long_name), 405, text)


def test_long_not_found_text_is_truncated(broker_url, conn):
    long_name = "q." + "y" * 240 + uuid.uuid4().hex[:8]
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(long_name, passive=True),
                         404, f"NOT_FOUND - no queue '{long_name}' in vhost '/'")


# ---------------------------------------------------------------------------
# 9. queue.delete / queue.declare argument validation
# ---------------------------------------------------------------------------

def test_delete_if_unused_with_consumer(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname)
    ch.basic_consume(qname, lambda *a: None)
    ch2 = conn.channel()
    expect_channel_error(broker_url, conn, ch2, lambda c: c.queue_delete(qname, if_unused=True),
                         406, f"{PF}queue '{qname}' in vhost '/' in use")


def test_delete_if_empty_with_messages(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname)
    ch.basic_publish("", qname, b"x")
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_delete(qname, if_empty=True),
                         406, f"{PF}queue '{qname}' in vhost '/' not empty")


@pytest.mark.parametrize("if_empty", [False, True])
def test_delete_missing_queue_is_ok(broker_url, conn, if_empty):
    ch = conn.channel()
    ok = expect_ok(broker_url, conn, ch, lambda c: c.queue_delete("nosuchq", if_empty=if_empty))
    assert ok.method.message_count == 0


def test_purge_missing_queue(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_purge("nosuchq"),
                         404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'")


INVALID_ARGS = [
    pytest.param({"x-max-length": -1}, "invalid arg 'x-max-length' for queue '{q}' in vhost '/': "
                 "{{value_negative,-1}}", id="max-length-negative"),
    pytest.param({"x-max-length": "abc"}, "invalid arg 'x-max-length' for queue '{q}' in vhost '/': "
                 '"expected integer, got longstr"', id="max-length-str"),
    pytest.param({"x-max-length-bytes": -1}, "invalid arg 'x-max-length-bytes' for queue '{q}' in "
                 "vhost '/': {{value_negative,-1}}", id="max-length-bytes-negative"),
    pytest.param({"x-overflow": "bogus"}, "invalid arg 'x-overflow' for queue '{q}' in vhost '/': "
                 "invalid_overflow", id="overflow-bogus"),
    pytest.param({"x-overflow": 1}, "invalid arg 'x-overflow' for queue '{q}' in vhost '/': "
                 "{{unacceptable_type,signedint}}", id="overflow-int"),
    pytest.param({"x-message-ttl": -5}, "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': "
                 "{{value_negative,-5}}", id="ttl-negative"),
    pytest.param({"x-message-ttl": "abc"}, "invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': "
                 '"expected integer, got longstr"', id="ttl-str"),
    pytest.param({"x-expires": 0}, "invalid arg 'x-expires' for queue '{q}' in vhost '/': "
                 "{{value_zero,0}}", id="expires-zero"),
    pytest.param({"x-expires": -1}, "invalid arg 'x-expires' for queue '{q}' in vhost '/': "
                 "{{value_negative,-1}}", id="expires-negative"),
    pytest.param({"x-expires": "abc"}, "invalid arg 'x-expires' for queue '{q}' in vhost '/': "
                 '"expected integer, got longstr"', id="expires-str"),
    pytest.param({"x-max-priority": 300}, "invalid arg 'x-max-priority' for queue '{q}' in vhost '/': "
                 "{{max_value_exceeded,300}}", id="max-priority-300"),
    pytest.param({"x-max-priority": -1}, "invalid arg 'x-max-priority' for queue '{q}' in vhost '/': "
                 "{{value_negative,-1}}", id="max-priority-negative"),
    pytest.param({"x-dead-letter-exchange": None}, "invalid type 'void' for arg "
                 "'x-dead-letter-exchange' in queue '{q}' in vhost '/'", id="dlx-void"),
    pytest.param({"x-dead-letter-exchange": 1}, "invalid type 'signedint' for arg "
                 "'x-dead-letter-exchange' in queue '{q}' in vhost '/'", id="dlx-int"),
    pytest.param({"x-dead-letter-routing-key": "rk"}, "invalid arg 'x-dead-letter-routing-key' for "
                 "queue '{q}' in vhost '/': routing_key_but_no_dlx_defined", id="dlrk-without-dlx"),
    pytest.param({"x-queue-mode": "bogus"}, "invalid arg 'x-queue-mode' for queue '{q}' in vhost '/': "
                 "\"unsupported queue mode 'bogus'\"", id="queue-mode-bogus"),
    pytest.param({"x-single-active-consumer": "yes"}, "invalid arg 'x-single-active-consumer' for "
                 "queue '{q}' in vhost '/': {{unacceptable_type,longstr}}", id="sac-str"),
]


@pytest.mark.parametrize(("args", "detail"), INVALID_ARGS)
def test_declare_invalid_argument(broker_url, conn, qname, args, detail):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(qname, arguments=args),
                         406, PF + detail.format(q=qname))
    # Nothing was created.
    expect_channel_error(broker_url, conn, conn.channel(), lambda c: c.queue_declare(qname, passive=True),
                         404, f"NOT_FOUND - no queue '{qname}' in vhost '/'")


INVALID_PROPERTIES = [
    pytest.param(dict(durable=False, arguments={"x-queue-type": "quorum"}),
                 "invalid property 'non-durable' for queue '{q}' in vhost '/'", id="quorum-non-durable"),
    pytest.param(dict(durable=True, exclusive=True, arguments={"x-queue-type": "quorum"}),
                 "invalid property 'exclusive-owner' for queue '{q}' in vhost '/'", id="quorum-exclusive"),
    pytest.param(dict(durable=True, auto_delete=True, arguments={"x-queue-type": "quorum"}),
                 "invalid property 'auto-delete' for queue '{q}' in vhost '/'", id="quorum-auto-delete"),
    pytest.param(dict(durable=True, arguments={"x-queue-type": "quorum", "x-max-priority": 5}),
                 "invalid arg 'x-max-priority' for queue '{q}' in vhost '/' of queue type "
                 "rabbit_quorum_queue", id="quorum-max-priority"),
    pytest.param(dict(durable=True, arguments={"x-queue-type": "bogus"}),
                 "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue type "
                 "'bogus'\"", id="type-bogus-durable"),
    pytest.param(dict(durable=False, arguments={"x-queue-type": "bogus"}),
                 "invalid arg 'x-queue-type' for queue '{q}' in vhost '/': \"unsupported queue type "
                 "'bogus'\"", id="type-bogus-transient"),
]


@pytest.mark.parametrize(("kwargs", "detail"), INVALID_PROPERTIES)
def test_declare_invalid_property_for_queue_type(broker_url, conn, qname, kwargs, detail):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(qname, **kwargs),
                         406, PF + detail.format(q=qname))


VALID_DECLARES = [
    pytest.param(dict(arguments={"x-overflow": "reject-publish-dlx"}), id="classic-reject-publish-dlx"),
    pytest.param(dict(durable=True, arguments={"x-queue-type": "quorum", "x-overflow": "reject-publish-dlx"}),
                 id="quorum-reject-publish-dlx"),
    pytest.param(dict(durable=True, arguments={"x-queue-type": "quorum"}), id="quorum-durable"),
    pytest.param(dict(durable=True, exclusive=True), id="classic-durable-exclusive"),
]


@pytest.mark.parametrize("kwargs", VALID_DECLARES)
def test_declare_valid_combinations(broker_url, conn, qname, kwargs):
    ch = conn.channel()
    ok = expect_ok(broker_url, conn, ch, lambda c: c.queue_declare(qname, **kwargs))
    assert ok.method.queue == qname


# ---------------------------------------------------------------------------
# 13. reserved / special queue names
# ---------------------------------------------------------------------------

def test_declare_reserved_amq_prefix(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare("amq.foo"),
                         403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'")


def test_declare_reserved_amq_prefix_passive(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare("amq.foo", passive=True),
                         404, "NOT_FOUND - no queue 'amq.foo' in vhost '/'")


def test_delete_missing_amq_queue_is_ok(broker_url, conn):
    ch = conn.channel()
    ok = expect_ok(broker_url, conn, ch, lambda c: c.queue_delete("amq.foo"))
    assert ok.method.message_count == 0


def test_declare_empty_name_gets_server_name(broker_url, conn):
    ch = conn.channel()
    ok = expect_ok(broker_url, conn, ch, lambda c: c.queue_declare("", exclusive=True))
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", ok.method.queue), ok.method.queue


# ---------------------------------------------------------------------------
# 14. basic.get / counts
# ---------------------------------------------------------------------------

def test_get_empty_has_empty_cluster_id(broker_url, qname):
    raw = raw_session(broker_url)
    try:
        raw.rpc(1, cmd.Queue.Declare(queue=qname), cmd.Queue.DeclareOk)
        empty = raw.rpc(1, cmd.Basic.Get(queue=qname), cmd.Basic.GetEmpty)
        assert empty.cluster_id == ""
        raw.rpc(1, cmd.Queue.Delete(queue=qname), cmd.Queue.DeleteOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_counts_exclude_unacked(broker_url, conn, qname):
    ch = conn.channel()
    ch.confirm_delivery()  # the publishes have reached the queue before we count
    ch.queue_declare(qname)
    for i in range(3):
        ch.basic_publish("", qname, f"m{i}".encode())
    ok = ch.queue_declare(qname, passive=True)
    assert (ok.method.message_count, ok.method.consumer_count) == (3, 0)
    got: list[bytes] = []
    ch.basic_consume(qname, lambda c, m, p, b: got.append(b))
    deadline = 50
    while len(got) < 3 and deadline:
        conn.process_data_events(time_limit=0.1)
        deadline -= 1
    assert len(got) == 3
    ok = conn.channel().queue_declare(qname, passive=True)
    assert (ok.method.message_count, ok.method.consumer_count) == (0, 1)


def test_get_ok_fields_and_remaining_count(broker_url, conn, qname):
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(qname)
    for i in range(3):
        ch.basic_publish("", qname, f"m{i}".encode())
    method, _props, body = ch.basic_get(qname)
    assert body == b"m0"
    assert (method.delivery_tag, method.redelivered, method.exchange, method.routing_key,
            method.message_count) == (1, False, "", qname, 2)
    ok = ch.queue_declare(qname, passive=True)
    assert ok.method.message_count == 2
