"""Framing and channel-state errors over raw frames (catalog .ci/RABBITMQ_BEHAVIOUR.md section 16).

All of these close the whole connection; each test checks code, text and
class/method ids of the connection.close, that the socket then goes away, and
that the broker still serves a fresh connection.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pamqp import commands as cmd
from pamqp import header as pheader

from tests.integration.rawamqp import (
    AGAINST_RABBITMQ,
    RawConnection,
    assert_broker_ok,
    close_fields,
    header_payload,
    method_payload,
    raw_frame,
    raw_session,
    shortstr,
)

SECOND_OPEN = "CHANNEL_ERROR - second 'channel.open' seen"
EXPECTED_OPEN = "CHANNEL_ERROR - expected 'channel.open'"
UNEXPECTED_RUNNING = "CHANNEL_ERROR - unexpected method in connection state running"
NON_METHOD = "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
NO_HEADER = "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"

CHANNEL_OPEN = raw_frame(1, 2, method_payload(20, 10, shortstr("")))
# queue.declare: ticket, queue '', bits (0x04 = exclusive), empty arguments table
QUEUE_DECLARE = method_payload(50, 10, b"\x00\x00" + shortstr("") + b"\x04" + b"\x00\x00\x00\x00")
PUBLISH = method_payload(60, 40, b"\x00\x00" + shortstr("amq.direct") + shortstr("k") + b"\x00")


def _connection_error(broker_url: str, send: Callable[[RawConnection], None],
                      expected: tuple[int, str, int, int], wait_closed: bool = True) -> None:
    raw = raw_session(broker_url)
    try:
        try:
            send(raw)
        except OSError:
            pass  # the broker may already have closed the socket while we were still writing
        close = raw.expect_connection_close()
        assert close_fields(close) == expected
        if wait_closed:
            # (After a framing error RabbitMQ no longer parses our close-ok and drops the
            # socket only after a 3 s timeout, so those tests do not wait for it.)
            raw.wait_socket_closed()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


CASES = {
    "second-channel-open": (
        lambda r: r.send_bytes(raw_frame(1, 1, method_payload(20, 10, shortstr("")))),
        (504, SECOND_OPEN, 20, 10)),
    "method-on-unopened-channel": (
        lambda r: r.send_bytes(raw_frame(1, 2, QUEUE_DECLARE)),
        (504, EXPECTED_OPEN, 50, 10)),
    "close-ok-on-unopened-channel": (
        lambda r: r.send_bytes(raw_frame(1, 2, method_payload(20, 41))),
        (504, EXPECTED_OPEN, 20, 41)),
    "queue-declare-on-channel-0": (
        lambda r: r.send_bytes(raw_frame(1, 0, QUEUE_DECLARE)),
        (504, UNEXPECTED_RUNNING, 50, 10)),
    "header-without-publish": (
        lambda r: r.send_bytes(raw_frame(2, 1, header_payload(3))),
        (505, NON_METHOD, 0, 0)),
    "body-without-publish": (
        lambda r: r.send_bytes(raw_frame(3, 1, b"abc")),
        (505, NON_METHOD, 0, 0)),
    "method-instead-of-header": (
        lambda r: r.send_bytes(raw_frame(1, 1, PUBLISH) + raw_frame(1, 1, QUEUE_DECLARE)),
        (505, NO_HEADER, 60, 40)),
    "header-of-class-50": (
        lambda r: r.send_bytes(raw_frame(1, 1, PUBLISH) + raw_frame(2, 1, header_payload(3, class_id=50))),
        (505, "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
         60, 40)),
    "heartbeat-on-channel-1": (
        lambda r: r.send_bytes(raw_frame(8, 1, b"")),
        (505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", 0, 0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_channel_and_content_state_errors(broker_url, case):
    send, expected = CASES[case]
    _connection_error(broker_url, send, expected)


def test_connection_open_twice(broker_url):
    _connection_error(broker_url, lambda r: r.send(0, cmd.Connection.Open(virtual_host="/")),
                      (504, UNEXPECTED_RUNNING, 10, 40))


def test_frame_too_large(broker_url):
    body = b"z" * 200000

    def send(r: RawConnection) -> None:
        r.send_bytes(raw_frame(1, 1, PUBLISH) + raw_frame(2, 1, header_payload(len(body))))
        r.send_bytes(raw_frame(3, 1, body))

    _connection_error(broker_url, send,
                      (501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,200000,131064}", 0, 0),
                      wait_closed=False)


def test_bad_frame_end(broker_url):
    text = "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}"
    _connection_error(broker_url, lambda r: r.send_bytes(CHANNEL_OPEN[:-1] + b"\x00"),
                      (501, text, 0, 0), wait_closed=False)


def test_unknown_frame_type(broker_url):
    _connection_error(broker_url, lambda r: r.send_bytes(raw_frame(9, 1, b"")),
                      (501, "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame", 0, 0),
                      wait_closed=False)


def test_unknown_method_closes_connection(broker_url):
    """RabbitMQ 3.10's reader crashes and drops the TCP connection without a word;
    Hutch deliberately answers 503 COMMAND_INVALID instead (README: known differences)."""
    if not AGAINST_RABBITMQ:
        _connection_error(broker_url, lambda r: r.send_bytes(raw_frame(1, 1, method_payload(99, 99))),
                          (503, "COMMAND_INVALID - unknown method", 99, 99), wait_closed=False)
        return
    raw = raw_session(broker_url)
    try:
        raw.send_bytes(raw_frame(1, 1, method_payload(99, 99)))
        seen = raw.wait_socket_closed(timeout=5)
        assert not any(isinstance(v, cmd.Connection.Close) for _c, v in seen), seen
        assert seen == []
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_channel_open_beyond_channel_max_is_accepted(broker_url):
    raw = raw_session(broker_url)
    try:
        assert raw.channel_max == 2047
        raw.open_channel(3000)
        raw.rpc(3000, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_body_larger_than_declared(broker_url):
    """RabbitMQ 3.10 silently keeps waiting; Hutch deliberately reports the frame error
    (501) the spec asks for, so the client learns of its bug (README: known differences)."""
    if not AGAINST_RABBITMQ:
        _connection_error(broker_url, lambda r: r.send_bytes(
            raw_frame(1, 1, PUBLISH) + raw_frame(2, 1, header_payload(5)) + raw_frame(3, 1, b"0123456789")),
            (501, "FRAME_ERROR - content body larger than declared", 0, 0), wait_closed=False)
        return
    raw = raw_session(broker_url, channels=2)
    try:
        raw.send_bytes(raw_frame(1, 1, PUBLISH) + raw_frame(2, 1, header_payload(5))
                       + raw_frame(3, 1, b"0123456789"))
        raw.expect_nothing(1.5)
        # The connection and its other channels still work.
        raw.rpc(2, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_publish_on_unopened_channel(broker_url):
    """RabbitMQ 3.10 waits for the content before complaining; Hutch refuses the
    publish at once with the 504 any other method on an unopened channel gets."""
    if not AGAINST_RABBITMQ:
        _connection_error(broker_url, lambda r: r.send_bytes(raw_frame(1, 5, PUBLISH)),
                          (504, "CHANNEL_ERROR - expected 'channel.open'", 60, 40), wait_closed=False)
        return
    raw = raw_session(broker_url)
    try:
        raw.send_bytes(raw_frame(1, 5, PUBLISH))
        raw.expect_nothing(1.5)
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_header_with_zero_body_size_completes_message(broker_url):
    raw = raw_session(broker_url)
    try:
        q = raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk).queue
        raw.send(1, cmd.Basic.Publish(exchange="", routing_key=q))
        raw.send(1, pheader.ContentHeader(0, 0, cmd.Basic.Properties()))
        # The next frame is a method: the empty message was complete.
        ok = raw.rpc(1, cmd.Basic.Get(queue=q, no_ack=True), cmd.Basic.GetOk)
        assert (ok.routing_key, ok.message_count) == (q, 0)
        assert raw.expect(1, pheader.ContentHeader).body_size == 0
        raw.rpc(1, cmd.Basic.Get(queue=q, no_ack=True), cmd.Basic.GetEmpty)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


def test_methods_after_channel_close_are_discarded_until_close_ok(broker_url):
    """Catalog conventions: after the broker's channel.close, further methods on that
    channel are dropped until close-ok; the channel number can then be reopened."""
    raw = raw_session(broker_url)
    try:
        raw.send(1, cmd.Queue.Declare(queue="nosuchq", passive=True))
        ch, close = raw.read_frame()
        assert (ch, type(close)) == (1, cmd.Channel.Close)
        assert close_fields(close) == (404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'", 50, 10)
        raw.send(1, cmd.Queue.Declare(queue="", exclusive=True))  # ignored
        raw.expect_nothing(0.3)
        raw.send(1, cmd.Channel.CloseOk())
        raw.open_channel(1)
        raw.rpc(1, cmd.Queue.Declare(queue="", exclusive=True), cmd.Queue.DeclareOk)
        raw.close()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)
