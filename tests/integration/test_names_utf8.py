"""Names that are not UTF-8, sent as raw frames.

RabbitMQ 3.10.8 checks every short string of a method (rabbit_binary_parser:
assert_utf8) and closes the connection with 501 "FRAME_ERROR - Malformed UTF-8 in
shortstr" (class/method 0 for a method on a channel, the method's own ids on channel
0), except basic.publish's exchange and routing key, which it takes as bytes: a routing
key reaches no queue (names are UTF-8), a missing exchange is reported with the bytes.
"""

from __future__ import annotations

import struct

import pytest
from pamqp import commands as cmd

from tests.integration.rawamqp import (
    AGAINST_RABBITMQ,
    RawConnection,
    SocketClosedError,
    close_fields,
    raw_frame,
    raw_session,
)

BAD = b"bad\xff\xfename"
# What the old Hutch made of BAD (a latin-1 fallback): a valid, different name.
ALIAS = BAD.decode("latin-1")
NO_ARGS = b"\x00\x00\x00\x00"
FRAME_ERROR = (501, "FRAME_ERROR - Malformed UTF-8 in shortstr")


def ss(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


TOPIC, FANOUT = ss(b"amq.topic"), ss(b"amq.fanout")


def method(class_id: int, method_id: int, args: bytes, channel: int = 1) -> bytes:
    return raw_frame(1, channel, struct.pack(">HH", class_id, method_id) + args)


# method -> its frame with BAD in one name; amq.* names exist on every broker.
CHANNEL_METHODS = {
    "queue.declare": method(50, 10, b"\0\0" + ss(BAD) + b"\x00" + NO_ARGS),
    "queue.declare passive": method(50, 10, b"\0\0" + ss(BAD) + b"\x01" + NO_ARGS),
    "queue.bind queue": method(50, 20, b"\0\0" + ss(BAD) + TOPIC + ss(b"k") + b"\0" + NO_ARGS),
    "queue.bind exchange": method(50, 20, b"\0\0" + ss(b"q") + ss(BAD) + ss(b"k") + b"\0" + NO_ARGS),
    "queue.bind routing key": method(50, 20, b"\0\0" + ss(b"q") + TOPIC + ss(BAD) + b"\0"
                                     + NO_ARGS),
    "queue.unbind routing key": method(50, 50, b"\0\0" + ss(b"q") + TOPIC + ss(BAD) + NO_ARGS),
    "queue.purge": method(50, 30, b"\0\0" + ss(BAD) + b"\0"),
    "queue.delete": method(50, 40, b"\0\0" + ss(BAD) + b"\0"),
    "exchange.declare": method(40, 10, b"\0\0" + ss(BAD) + ss(b"direct") + b"\0" + NO_ARGS),
    "exchange.declare type": method(40, 10, b"\0\0" + ss(b"x") + ss(BAD) + b"\0" + NO_ARGS),
    "exchange.delete": method(40, 20, b"\0\0" + ss(BAD) + b"\0"),
    "exchange.bind destination": method(40, 30, b"\0\0" + ss(BAD) + TOPIC + ss(b"k") + b"\0"
                                        + NO_ARGS),
    "exchange.bind routing key": method(40, 30, b"\0\0" + FANOUT + TOPIC + ss(BAD) + b"\0"
                                        + NO_ARGS),
    "exchange.unbind routing key": method(40, 40, b"\0\0" + FANOUT + TOPIC + ss(BAD) + b"\0"
                                          + NO_ARGS),
    "basic.get": method(60, 70, b"\0\0" + ss(BAD) + b"\0"),
    "basic.consume queue": method(60, 20, b"\0\0" + ss(BAD) + ss(b"") + b"\0" + NO_ARGS),
    "basic.consume consumer tag": method(60, 20, b"\0\0" + ss(b"amq.rabbitmq.reply-to") + ss(BAD)
                                         + b"\x02" + NO_ARGS),
    "basic.cancel": method(60, 30, ss(BAD) + b"\0"),
    "channel.close reply text": method(20, 40, struct.pack(">H", 200) + ss(BAD) + b"\0\0\0\0"),
}


@pytest.fixture
def hutch_log(session_hutch):
    """The session broker's log lines written during the test ('' against RabbitMQ)."""
    start = len(session_hutch.log_lines) if session_hutch else 0
    yield lambda: "\n".join(session_hutch.log_lines[start:]) if session_hutch else ""


def _declare(name: str, passive: bool, exclusive: bool = False) -> bytes:
    # By hand: pamqp refuses names outside [\w.:-].
    return method(50, 10, b"\0\0" + ss(name.encode()) + bytes([passive | exclusive << 2]) + NO_ARGS)


def _queue_exists(url: str, name: str) -> bool:
    conn = raw_session(url)
    try:
        conn.send_bytes(_declare(name, passive=True))
        _ch, reply = conn.read_frame()
        return isinstance(reply, cmd.Queue.DeclareOk)
    finally:
        conn.close_socket()


@pytest.mark.parametrize("frame", CHANNEL_METHODS.values(), ids=CHANNEL_METHODS.keys())
def test_name_not_utf8_is_a_frame_error(broker_url, hutch_log, frame):
    conn = raw_session(broker_url)
    try:
        conn.send_bytes(frame)
        assert close_fields(conn.expect_connection_close()) == (*FRAME_ERROR, 0, 0)
    finally:
        conn.close_socket()
    # Nothing was created under the bytes or under what a latin-1 fallback made of them.
    assert not _queue_exists(broker_url, ALIAS)
    assert "Traceback" not in hutch_log()


def test_vhost_not_utf8_is_a_frame_error_naming_connection_open(broker_url, hutch_log):
    conn = RawConnection(broker_url).handshake(open_connection=False)
    try:
        conn.send_bytes(method(10, 40, ss(BAD) + ss(b"") + b"\0", channel=0))
        assert close_fields(conn.expect_connection_close()) == (*FRAME_ERROR, 10, 40)
    finally:
        conn.close_socket()
    assert "Traceback" not in hutch_log()


def _read_raw(conn: RawConnection, timeout: float = 5.0) -> tuple[int, int, bytes]:
    """(frame type, channel, payload) of the next frame, not decoded (pamqp refuses
    routing keys that are not UTF-8)."""
    import time
    deadline = time.monotonic() + timeout
    while len(conn.buf) < 7 or len(conn.buf) < 8 + struct.unpack_from(">I", conn.buf, 3)[0]:
        conn._fill(deadline)
    ftype, channel, size = struct.unpack_from(">BHI", conn.buf, 0)
    payload = conn.buf[7:7 + size]
    conn.buf = conn.buf[8 + size:]
    return ftype, channel, payload


def _publish(conn: RawConnection, exchange: bytes, routing_key: bytes, mandatory: bool) -> None:
    conn.send_bytes(method(60, 40, b"\0\0" + ss(exchange) + ss(routing_key) + bytes([mandatory])))
    conn.send_bytes(raw_frame(2, 1, struct.pack(">HHQH", 60, 0, 1, 0)))
    conn.send_bytes(raw_frame(3, 1, b"m"))


def test_publish_routing_key_not_utf8_is_taken_as_bytes(broker_url, hutch_log):
    conn = raw_session(broker_url)
    try:
        # A queue named like the latin-1 reading of the bytes must not get the message.
        conn.send_bytes(_declare(ALIAS, passive=False, exclusive=True))
        conn.expect(1, cmd.Queue.DeclareOk)
        conn.rpc(1, cmd.Queue.Declare(queue="rk-topic", exclusive=True), cmd.Queue.DeclareOk)
        conn.rpc(1, cmd.Queue.Bind(queue="rk-topic", exchange="amq.topic", routing_key="#"),
                 cmd.Queue.BindOk)
        _publish(conn, b"", BAD, mandatory=True)
        ftype, _ch, payload = _read_raw(conn)  # basic.return: the key as it came
        assert ftype == 1 and payload[:4] == b"\x00\x3c\x00\x32"
        assert payload.endswith(ss(b"") + ss(BAD))
        _read_raw(conn)  # header
        _read_raw(conn)  # body
        _publish(conn, b"amq.topic", BAD, mandatory=False)
        conn.send_bytes(method(60, 70, b"\0\0" + ss(b"rk-topic") + b"\x01"))
        ftype, _ch, payload = _read_raw(conn)  # basic.get-ok through '#', key unchanged
        assert payload[:4] == b"\x00\x3c\x00\x47", payload
        assert TOPIC + ss(BAD) in payload
        _read_raw(conn)
        _read_raw(conn)
        conn.send_bytes(_declare(ALIAS, passive=True))
        assert conn.expect(1, cmd.Queue.DeclareOk).message_count == 0
        # An exchange that cannot exist: 404 quoting the bytes.
        _publish(conn, BAD, b"k", mandatory=False)
        ftype, _ch, payload = _read_raw(conn)
        text = b"NOT_FOUND - no exchange '" + BAD + b"' in vhost '/'"
        assert payload == struct.pack(">HHH", 20, 40, 404) + ss(text) + struct.pack(">HH", 60, 40)
    finally:
        try:
            conn.close_socket()
        except SocketClosedError:
            pass
    assert "Traceback" not in hutch_log()


@pytest.mark.skipif(AGAINST_RABBITMQ, reason="Hutch's own limit")
@pytest.mark.hutch_only
def test_encoded_surrogate_in_a_name_is_refused(broker_url):
    """Erlang's UTF-8 check lets encoded surrogates (ED A0 80) through; a Python str
    could hold them but nothing could encode them back, so Hutch refuses them too
    (README, Known differences)."""
    conn = raw_session(broker_url)
    try:
        conn.send_bytes(method(50, 10, b"\0\0" + ss(b"q\xed\xa0\x80") + b"\x00" + NO_ARGS))
        assert close_fields(conn.expect_connection_close()) == (*FRAME_ERROR, 0, 0)
    finally:
        conn.close_socket()
