"""The ``expiration`` property: RabbitMQ's checks and texts, and nothing left counted.

The expected texts are what RabbitMQ 3.10.8 answered to the same frames (Erlang's
``~p`` puts a long number on a second line, indented under the brace).
"""

from __future__ import annotations

import struct
import time

import pytest
from pamqp import commands as cmd

from tests.integration.rawamqp import (
    RawConnection,
    close_fields,
    raw_frame,
    raw_name,
    raw_session,
    wire_text,
)
from tests.mgmt import Api

NINES = "9" * 255

REFUSED = [
    ("-1", "{value_negative,-1}"),
    ("abc", "no_integer"),
    ("", "no_integer"),
    (" 5", "no_integer"),
    ("+", "no_integer"),
    ("\uff10", "no_integer"),  # a digit, but not an ASCII one
    ("5 ", '{leftover_string," "}'),
    ("1.5", '{leftover_string,".5"}'),
    ("1_000", '{leftover_string,"_000"}'),  # Python's int() would take it
    ("5\x00", "{leftover_string,[0]}"),
    ("5abcdéf", '{leftover_string,"abcdéf"}'),
    ("315360000001", "{value_too_large,315360000001}"),
    ("20000000000000000000", "{value_too_large,\n" + " " * 44 + "20000000000000000000}"),
    ("-99999999999999999999999", "{value_negative,\n" + " " * 48 + "-99999999999999999999999}"),
    (NINES, "{value_too_large,\n" + " " * 279 + NINES + "}"),
]


def _publish(conn: RawConnection, queue: str, expiration: bytes, body: bytes) -> None:
    """basic.publish, persistent, with ``expiration`` as raw bytes; body frames of at
    most frame_max."""
    props = struct.pack(">H", (1 << 12) | (1 << 8)) + b"\x02" + bytes([len(expiration)]) + expiration
    conn.send(1, cmd.Basic.Publish(exchange="", routing_key=queue))
    conn.send_bytes(raw_frame(2, 1, struct.pack(">HHQ", 60, 0, len(body)) + props))
    step = conn.frame_max - 8
    for i in range(0, len(body), step):
        conn.send_bytes(raw_frame(3, 1, body[i:i + step]))


def _declared(conn: RawConnection, queue: str) -> None:
    conn.rpc(1, cmd.Queue.Declare(queue=queue, durable=True), cmd.Queue.DeclareOk)


@pytest.mark.parametrize(("value", "reason"), REFUSED, ids=[repr(v[:24]) for v, _ in REFUSED])
def test_invalid_expiration_closes_the_channel_with_rabbitmqs_text(broker_url, qname, value, reason):
    qname = raw_name(qname)
    conn = raw_session(broker_url)
    try:
        _declared(conn, qname)
        _publish(conn, qname, value.encode(), b"x")
        close = conn.expect_channel_close(1)
        text = wire_text(f"PRECONDITION_FAILED - invalid expiration '{value}': {reason}")
        assert close_fields(close) == (406, text, 60, 40)
        conn.open_channel(2)  # the connection lives on
        conn.rpc(2, cmd.Queue.Delete(queue=qname), cmd.Queue.DeleteOk)
    finally:
        conn.close_socket()


@pytest.mark.parametrize("value", ["+5000", "-0", "00012", "4294967296", "315360000000"])
def test_valid_expiration_is_taken(broker_url, qname, value):
    qname = raw_name(qname)
    conn = raw_session(broker_url)
    try:
        conn.rpc(1, cmd.Confirm.Select(), cmd.Confirm.SelectOk)
        _declared(conn, qname)
        _publish(conn, qname, value.encode(), b"x")
        conn.expect(1, cmd.Basic.Ack)
        conn.rpc(1, cmd.Queue.Delete(queue=qname), cmd.Queue.DeleteOk)
    finally:
        conn.close_socket()


@pytest.mark.hutch_only
@pytest.mark.parametrize("value", ["20000000000000000000", NINES, "-1"], ids=["2e19", "255-nines", "-1"])
@pytest.mark.parametrize("size", [10, 300_000], ids=["one-frame", "multi-frame"])
def test_refused_publish_leaves_nothing_counted(hutch_http, value, size):
    """A poison expiration on a persistent message used to fail after the body was
    counted by the memory alarm (2e19 overflowed the store's expiry field, 255 nines
    the float conversion, 541 with a traceback): the count leaked and the alarm would
    never clear.  Now it is refused before anything is queued."""
    api = Api(hutch_http.http_url)
    conn = raw_session(hutch_http.url)
    try:
        _declared(conn, "poison")
        _publish(conn, "poison", value.encode(), b"p" * size)
        assert close_fields(conn.expect_channel_close(1))[0] == 406
        conn.open_channel(2)
        conn.send(2, cmd.Queue.Declare(queue="poison", passive=True))
        assert conn.expect(2, cmd.Queue.DeclareOk).message_count == 0
    finally:
        conn.close_socket()
    deadline = time.monotonic() + 5
    while (node := api.ok("GET", "nodes")[0])["queued_message_bytes"] != 0:
        assert time.monotonic() < deadline, f"still counted: {node['queued_message_bytes']}"
        time.sleep(0.05)
    assert node["mem_alarm"] is False
    assert "Traceback" not in hutch_http.log_text()
