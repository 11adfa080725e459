"""Publish and consume errors (catalog .ci/RABBITMQ_BEHAVIOUR.md sections 6 and 7)."""

from __future__ import annotations

import time

import pytest
from pamqp import body as pbody
from pamqp import commands as cmd
from pamqp import header as pheader

from tests.integration.rawamqp import (
    assert_broker_ok,
    cleanup,
    close_fields,
    connect,
    expect_channel_error,
    raw_name,
    raw_session,
)

NO_EXCHANGE = "NOT_FOUND - no exchange 'nosuchx' in vhost '/'"


@pytest.fixture
def conn(broker_url, qname):
    c = connect(broker_url)
    yield c
    if c.is_open:
        c.close()
    cleanup(broker_url, queues=(qname, qname + ".2"))


# ---------------------------------------------------------------------------
# 6. publish
# ---------------------------------------------------------------------------

def test_publish_to_missing_exchange(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_publish("nosuchx", "k", b"body"),
                         404, NO_EXCHANGE)


def test_publish_to_missing_exchange_in_confirm_mode(broker_url, conn):
    ch = conn.channel()
    ch.confirm_delivery()
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_publish("nosuchx", "k", b"body"),
                         404, NO_EXCHANGE)


def test_publish_missing_exchange_class_method_ids(broker_url):
    raw = raw_session(broker_url)
    try:
        raw.publish(1, "nosuchx", "k", b"body")
        close = raw.expect_channel_close(1)
        assert close_fields(close) == (404, NO_EXCHANGE, 60, 40)
        # The channel number can be used again after close-ok.
        raw.open_channel(1)
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_publish_immediate(broker_url, qname):
    raw = raw_session(broker_url)
    try:
        raw.rpc(1, cmd.Queue.Declare(queue=qname, exclusive=True), cmd.Queue.DeclareOk)
        raw.publish(1, "", qname, b"now", immediate=True)
        close = raw.expect_connection_close()
        assert close_fields(close) == (540, "NOT_IMPLEMENTED - immediate=true", 60, 40)
        raw.wait_socket_closed()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


@pytest.mark.parametrize(("exchange", "routing_key"), [
    pytest.param("amq.direct", "nowhere", id="amq.direct"),
    pytest.param("", "nosuchq.for-mandatory", id="default-exchange"),
])
def test_mandatory_unroutable_is_returned(broker_url, conn, exchange, routing_key):
    ch = conn.channel()
    returned: list = []
    ch.add_on_return_callback(lambda c, method, props, body: returned.append((method, body)))
    ch.basic_publish(exchange, routing_key, b"lost", mandatory=True)
    deadline = time.monotonic() + 5
    while not returned and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert returned, "no basic.return"
    method, body = returned[0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key, body) == (
        312, "NO_ROUTE", exchange, routing_key, b"lost")
    assert ch.is_open
    ch.queue_declare("", exclusive=True)
    assert_broker_ok(broker_url)


def test_confirm_mandatory_unroutable_return_then_ack(broker_url):
    raw = raw_session(broker_url)
    try:
        raw.rpc(1, cmd.Confirm.Select(), cmd.Confirm.SelectOk)
        raw.publish(1, "amq.direct", "nowhere", b"lost", mandatory=True)
        ret = raw.expect(1, cmd.Basic.Return)
        assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == (
            312, "NO_ROUTE", "amq.direct", "nowhere")
        hdr = raw.expect(1, pheader.ContentHeader)
        assert hdr.body_size == 4
        assert raw.expect(1, pbody.ContentBody).value == b"lost"
        ack = raw.expect(1, cmd.Basic.Ack)
        assert (ack.delivery_tag, ack.multiple) == (1, False)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


# ---------------------------------------------------------------------------
# 7. consume
# ---------------------------------------------------------------------------

def test_consume_missing_queue(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_consume("nosuchq", lambda *a: None),
                         404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'")


@pytest.mark.parametrize(("first_exclusive", "second_exclusive"), [
    pytest.param(False, True, id="exclusive-after-normal"),
    pytest.param(True, False, id="normal-after-exclusive"),
])
def test_exclusive_consumer_conflict(broker_url, conn, qname, first_exclusive, second_exclusive):
    ch = conn.channel()
    ch.queue_declare(qname)
    ch.basic_consume(qname, lambda *a: None, exclusive=first_exclusive)
    ch2 = conn.channel()
    expect_channel_error(broker_url, conn, ch2,
                         lambda c: c.basic_consume(qname, lambda *a: None, exclusive=second_exclusive),
                         403, f"ACCESS_REFUSED - queue '{qname}' in vhost '/' in exclusive use")
    # The first consumer is still there.
    assert conn.channel().queue_declare(qname, passive=True).method.consumer_count == 1


@pytest.mark.parametrize("same_queue", [True, False], ids=["same-queue", "other-queue"])
def test_duplicate_consumer_tag(broker_url, qname, same_queue):
    qname = raw_name(qname)
    other = qname if same_queue else qname + ".2"
    raw = raw_session(broker_url)
    try:
        raw.rpc(1, cmd.Queue.Declare(queue=qname, exclusive=True), cmd.Queue.DeclareOk)
        raw.rpc(1, cmd.Queue.Declare(queue=other, exclusive=True), cmd.Queue.DeclareOk)
        ok = raw.rpc(1, cmd.Basic.Consume(queue=qname, consumer_tag="ctag1"), cmd.Basic.ConsumeOk)
        assert ok.consumer_tag == "ctag1"
        raw.send(1, cmd.Basic.Consume(queue=other, consumer_tag="ctag1"))
        close = raw.expect_connection_close()
        assert close_fields(close) == (530, "NOT_ALLOWED - attempt to reuse consumer tag 'ctag1'", 60, 20)
        raw.wait_socket_closed()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_cancel_unknown_consumer_tag_is_ok(broker_url):
    raw = raw_session(broker_url)
    try:
        ok = raw.rpc(1, cmd.Basic.Cancel(consumer_tag="no-such-tag"), cmd.Basic.CancelOk)
        assert ok.consumer_tag == "no-such-tag"
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_queue_deleted_under_consumer_sends_cancel(broker_url, conn, qname):
    raw = raw_session(broker_url)  # advertises consumer_cancel_notify
    try:
        raw.rpc(1, cmd.Queue.Declare(queue=qname), cmd.Queue.DeclareOk)
        raw.rpc(1, cmd.Basic.Consume(queue=qname, consumer_tag="watcher"), cmd.Basic.ConsumeOk)
        conn.channel().queue_delete(qname)
        cancel = raw.expect(1, cmd.Basic.Cancel)
        assert (cancel.consumer_tag, cancel.nowait) == ("watcher", True)
        # The channel stays open.
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_queue_deleted_under_pika_consumer_calls_on_cancel(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname)
    cancelled: list = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(qname, lambda *a: None)
    other = connect(broker_url)
    try:
        other.channel().queue_delete(qname)
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while not cancelled and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert cancelled == [tag]
    assert ch.is_open
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_declare(qname, passive=True),
                         404, f"NOT_FOUND - no queue '{qname}' in vhost '/'")
