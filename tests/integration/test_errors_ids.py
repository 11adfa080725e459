"""class_id/method_id of channel.close (catalog conventions: the offending method's ids).

pika does not expose them, so these run over raw frames: one representative
error per method, checking code, text and ids, that only the channel closed,
and that the channel number can be reopened afterwards.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pamqp import commands as cmd

from tests.integration.rawamqp import assert_broker_ok, close_fields, raw_session

PF = "PRECONDITION_FAILED - "
UNKNOWN_TAG = PF + "unknown delivery tag"
DEFAULT_REFUSED = "ACCESS_REFUSED - operation not permitted on the default exchange"


def _cases(q: str, x: str) -> dict[str, tuple[list[tuple[Any, type]], Any, tuple[int, str, int, int]]]:
    """name -> (setup rpcs, offending method, expected close fields)."""
    declare_q = (cmd.Queue.Declare(queue=q, exclusive=True), cmd.Queue.DeclareOk)
    return {
        "exchange.declare": ([], cmd.Exchange.Declare(exchange="nosuchx", passive=True),
                             (404, "NOT_FOUND - no exchange 'nosuchx' in vhost '/'", 40, 10)),
        "exchange.delete": ([], cmd.Exchange.Delete(exchange="amq.direct"),
                            (403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' "
                             "not allowed", 40, 20)),
        "exchange.bind": ([(cmd.Exchange.Declare(exchange=x, exchange_type="fanout", auto_delete=True),
                            cmd.Exchange.DeclareOk)],
                          cmd.Exchange.Bind(destination=x, source="nosuchx"),
                          (404, "NOT_FOUND - no exchange 'nosuchx' in vhost '/'", 40, 30)),
        "queue.declare": ([], cmd.Queue.Declare(queue="nosuchq", passive=True),
                          (404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'", 50, 10)),
        "queue.bind": ([declare_q], cmd.Queue.Bind(queue=q, exchange="nosuchx"),
                       (404, "NOT_FOUND - no exchange 'nosuchx' in vhost '/'", 50, 20)),
        "queue.unbind": ([declare_q], cmd.Queue.Unbind(queue=q, exchange=""), (403, DEFAULT_REFUSED, 50, 50)),
        "queue.purge": ([], cmd.Queue.Purge(queue="nosuchq"),
                        (404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'", 50, 30)),
        "queue.delete": ([declare_q, (cmd.Basic.Consume(queue=q, consumer_tag="c"), cmd.Basic.ConsumeOk)],
                         cmd.Queue.Delete(queue=q, if_unused=True),
                         (406, f"{PF}queue '{q}' in vhost '/' in use", 50, 40)),
        "basic.consume": ([], cmd.Basic.Consume(queue="nosuchq"),
                          (404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'", 60, 20)),
        "basic.get": ([], cmd.Basic.Get(queue="nosuchq"),
                      (404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'", 60, 70)),
        "basic.ack": ([], cmd.Basic.Ack(delivery_tag=999), (406, f"{UNKNOWN_TAG} 999", 60, 80)),
        "basic.reject": ([], cmd.Basic.Reject(delivery_tag=999), (406, f"{UNKNOWN_TAG} 999", 60, 90)),
        "basic.nack": ([], cmd.Basic.Nack(delivery_tag=999), (406, f"{UNKNOWN_TAG} 999", 60, 120)),
        "tx.select": ([(cmd.Confirm.Select(), cmd.Confirm.SelectOk)], cmd.Tx.Select(),
                      (406, f"{PF}cannot switch from confirm to tx mode", 90, 10)),
        "tx.commit": ([], cmd.Tx.Commit(), (406, f"{PF}channel is not transactional", 90, 20)),
        "tx.rollback": ([], cmd.Tx.Rollback(), (406, f"{PF}channel is not transactional", 90, 30)),
        "confirm.select": ([(cmd.Tx.Select(), cmd.Tx.SelectOk)], cmd.Confirm.Select(),
                           (406, f"{PF}cannot switch from tx to confirm mode", 85, 10)),
    }


CASE_NAMES = list(_cases("q", "x"))


@pytest.mark.parametrize("case", CASE_NAMES)
def test_channel_close_carries_offending_method_ids(broker_url, case):
    tag = uuid.uuid4().hex[:10]
    setup, method, expected = _cases(f"q.ids.{tag}", f"x.ids.{tag}")[case]
    raw = raw_session(broker_url)
    try:
        for request, reply in setup:
            raw.rpc(1, request, reply)
        raw.send(1, method)
        close = raw.expect_channel_close(1)
        assert close_fields(close) == expected
        # Only the channel closed: reopen the same number and use it.
        raw.open_channel(1)
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_publish_to_internal_exchange_ids(broker_url):
    x = f"x.ids.internal.{uuid.uuid4().hex[:10]}"
    raw = raw_session(broker_url)
    try:
        raw.rpc(1, cmd.Exchange.Declare(exchange=x, exchange_type="fanout", internal=True, auto_delete=True),
                cmd.Exchange.DeclareOk)
        raw.publish(1, x, "k", b"body")
        close = raw.expect_channel_close(1)
        assert close_fields(close) == (
            403, f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'", 60, 40)
        raw.open_channel(1)
        raw.rpc(1, cmd.Exchange.Delete(exchange=x), cmd.Exchange.DeleteOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)
