"""Acknowledgement, confirm/tx and qos/recover/flow errors (catalog sections 5, 8 and 11)."""

from __future__ import annotations

import pytest
from pamqp import commands as cmd

from tests.integration.rawamqp import (
    assert_broker_ok,
    cleanup,
    close_fields,
    connect,
    expect_channel_error,
    expect_connection_error,
    expect_ok,
    raw_session,
)

PF = "PRECONDITION_FAILED - "


@pytest.fixture
def conn(broker_url, qname):
    c = connect(broker_url)
    yield c
    if c.is_open:
        c.close()
    cleanup(broker_url, queues=(qname,))


def _queue_with(conn, qname: str, n: int):
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(qname)
    for i in range(n):
        ch.basic_publish("", qname, f"m{i}".encode())
    ch.close()
    return conn.channel()


def _unknown_tag(tag: int) -> str:
    return f"{PF}unknown delivery tag {tag}"


# ---------------------------------------------------------------------------
# 5. acks
# ---------------------------------------------------------------------------

def test_ack_unknown_tag_nothing_delivered(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_ack(999), 406, _unknown_tag(999))


def test_double_ack(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 1)
    method, _p, _b = ch.basic_get(qname)
    assert method.delivery_tag == 1
    ch.basic_ack(1)
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_ack(1), 406, _unknown_tag(1))


def test_ack_tag_beyond_outstanding(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 1)
    method, _p, _b = ch.basic_get(qname)
    assert method.delivery_tag == 1
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_ack(6), 406, _unknown_tag(6))
    # The unacked message went back to the queue when the channel closed.
    ok = conn.channel().queue_declare(qname, passive=True)
    assert ok.method.message_count == 1


def test_ack_multiple_nothing_outstanding(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_ack(5, multiple=True), 406, _unknown_tag(5))


def test_ack_zero_multiple_acks_everything(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 3)
    for _ in range(3):
        method, _p, _b = ch.basic_get(qname)
        assert method is not None
    expect_ok(broker_url, conn, ch, lambda c: c.basic_ack(0, multiple=True))
    ch.close()  # nothing is requeued: everything was acked
    ok = conn.channel().queue_declare(qname, passive=True)
    assert ok.method.message_count == 0


def test_ack_zero_single(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 1)
    ch.basic_get(qname)
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_ack(0), 406, _unknown_tag(0))


def test_reject_unknown_tag(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_reject(999), 406, _unknown_tag(999))


def test_nack_unknown_tag(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_nack(999), 406, _unknown_tag(999))


def test_ack_of_no_ack_delivery(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 1)
    method, _p, _b = ch.basic_get(qname, auto_ack=True)
    assert method.delivery_tag == 1
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_ack(1), 406, _unknown_tag(1))


def test_ack_on_other_channel(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 1)
    method, _p, _b = ch.basic_get(qname)
    assert method.delivery_tag == 1
    other = conn.channel()
    expect_channel_error(broker_url, conn, other, lambda c: c.basic_ack(1), 406, _unknown_tag(1))
    # The delivering channel is unaffected and can still ack.
    ch.basic_ack(1)
    ch.queue_declare(qname, passive=True)


def test_reject_requeue_then_get_again(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 1)
    method, _p, _b = ch.basic_get(qname)
    assert (method.delivery_tag, method.redelivered) == (1, False)
    ch.basic_reject(1, requeue=True)
    method, _p, body = ch.basic_get(qname)
    assert (method.delivery_tag, method.redelivered, body) == (2, True, b"m0")
    ch.basic_ack(2)


# ---------------------------------------------------------------------------
# 8. confirm / tx
# ---------------------------------------------------------------------------

def test_confirm_then_tx(broker_url, conn):
    ch = conn.channel()
    ch.confirm_delivery()
    expect_channel_error(broker_url, conn, ch, lambda c: c.tx_select(), 406,
                         f"{PF}cannot switch from confirm to tx mode")


def test_tx_then_confirm(broker_url, conn):
    ch = conn.channel()
    ch.tx_select()
    expect_channel_error(broker_url, conn, ch, lambda c: c.confirm_delivery(), 406,
                         f"{PF}cannot switch from tx to confirm mode")


@pytest.mark.parametrize("op", ["commit", "rollback"])
def test_tx_without_select(broker_url, conn, op):
    ch = conn.channel()
    action = (lambda c: c.tx_commit()) if op == "commit" else (lambda c: c.tx_rollback())
    expect_channel_error(broker_url, conn, ch, action, 406, f"{PF}channel is not transactional")


def test_confirm_select_twice_is_ok(broker_url):
    raw = raw_session(broker_url)
    try:
        raw.rpc(1, cmd.Confirm.Select(), cmd.Confirm.SelectOk)
        raw.rpc(1, cmd.Confirm.Select(), cmd.Confirm.SelectOk)
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_tx_select_twice_is_ok(broker_url, conn):
    ch = conn.channel()
    ch.tx_select()
    expect_ok(broker_url, conn, ch, lambda c: c.tx_select())


# ---------------------------------------------------------------------------
# 11. qos / recover / flow
# ---------------------------------------------------------------------------

def test_qos_prefetch_size(broker_url, conn):
    ch = conn.channel()
    expect_connection_error(broker_url, conn, ch, lambda c: c.basic_qos(prefetch_size=1000), 540,
                            "NOT_IMPLEMENTED - prefetch_size!=0 (1000)")


def test_qos_global_is_ok(broker_url, conn):
    ch = conn.channel()
    expect_ok(broker_url, conn, ch, lambda c: c.basic_qos(prefetch_count=10, global_qos=True))


def test_recover_requeue_false(broker_url, conn):
    ch = conn.channel()
    expect_connection_error(broker_url, conn, ch, lambda c: c.basic_recover(requeue=False), 540,
                            "NOT_IMPLEMENTED - requeue=false")


def test_recover_requeue_true_is_ok(broker_url, conn, qname):
    ch = _queue_with(conn, qname, 1)
    ch.basic_get(qname)
    expect_ok(broker_url, conn, ch, lambda c: c.basic_recover(requeue=True))
    method, _p, body = ch.basic_get(qname)
    assert (method.redelivered, body) == (True, b"m0")


def _raw_connection_error(broker_url: str, method, code: int, text: str, ids: tuple[int, int]) -> None:
    raw = raw_session(broker_url)
    try:
        raw.send(1, method)
        close = raw.expect_connection_close()
        assert close_fields(close) == (code, text, *ids)
        raw.wait_socket_closed()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pamqp: recover-async is deprecated
def test_recover_async_requeue_false(broker_url):
    _raw_connection_error(broker_url, cmd.Basic.RecoverAsync(requeue=False), 540,
                          "NOT_IMPLEMENTED - requeue=false", (60, 100))


def test_recover_requeue_false_class_method_ids(broker_url):
    _raw_connection_error(broker_url, cmd.Basic.Recover(requeue=False), 540,
                          "NOT_IMPLEMENTED - requeue=false", (60, 110))


def test_qos_prefetch_size_class_method_ids(broker_url):
    _raw_connection_error(broker_url, cmd.Basic.Qos(prefetch_size=1000), 540,
                          "NOT_IMPLEMENTED - prefetch_size!=0 (1000)", (60, 10))


def test_channel_flow_inactive(broker_url):
    _raw_connection_error(broker_url, cmd.Channel.Flow(active=False), 540,
                          "NOT_IMPLEMENTED - active=false", (20, 20))


def test_channel_flow_active_is_ok(broker_url):
    raw = raw_session(broker_url)
    try:
        ok = raw.rpc(1, cmd.Channel.Flow(active=True), cmd.Channel.FlowOk)
        assert ok.active is True
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)
