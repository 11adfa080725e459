"""Helpers for the error-behaviour tests (``test_errors_*.py``).

* ``RawConnection``: an AMQP 0-9-1 client over a plain socket, for the methods and
  malformed frames pika will not send.  Frames are built and parsed with pamqp,
  except where pamqp's validation refuses what we want to send (then by hand).
* pika helpers that run an operation, expect the broker to close the channel or
  the connection with an exact reply code and text, and then check the broker
  still serves a fresh connection (declare + publish + get).
* ``hutch_bug``: an xfail(strict) marker applied only when testing Hutch.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

import pika
import pika.exceptions
import pytest
from pamqp import body as pbody
from pamqp import commands as cmd
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

AGAINST_RABBITMQ = bool(os.environ.get("HUTCH_TEST_AMQP_URL"))

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = b"\xce"


def hutch_bug(reason: str) -> pytest.MarkDecorator:
    """Known Hutch deviation: xfail(strict) against Hutch, a normal test against RabbitMQ."""
    return pytest.mark.xfail(not AGAINST_RABBITMQ, strict=True, reason=f"hutch bug: {reason}")


def wire_text(text: str) -> str:
    """A reply text as it travels: reply-text is a shortstr, so RabbitMQ cuts a text
    longer than 255 bytes to its first 252 bytes followed by '...'."""
    raw = text.encode()
    if len(raw) <= 255:
        return text
    return raw[:252].decode("utf-8", "ignore") + "..."


def raw_name(name: str) -> str:
    """pamqp only encodes names made of word characters, '.', ':' and '-'."""
    return re.sub(r"[^\w.:-]", "-", name)


def locked(q: str) -> str:
    return (f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. "
            "It could be originally declared on another connection or the exclusive property "
            "value does not match that of the original declaration.")


# ---------------------------------------------------------------------------------------
# pika helpers
# ---------------------------------------------------------------------------------------

def connect(url: str) -> pika.BlockingConnection:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


def assert_broker_ok(url: str) -> None:
    """A fresh connection can declare a queue, publish to it and get the message back."""
    conn = connect(url)
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        body = uuid.uuid4().bytes
        ch.basic_publish("", q, body)
        method, _props, got = ch.basic_get(q, auto_ack=True)
        assert method is not None, "health check: basic.get found no message"
        assert got == body
    finally:
        conn.close()


def expect_channel_error(url: str, conn: pika.BlockingConnection, ch: Any,
                         action: Callable[[Any], Any], code: int, text: str) -> None:
    """``action(ch)`` makes the broker close ``ch`` (only) with ``code``/``text``."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        action(ch)
        # Asynchronous methods (publish, ack, ...) report errors on the next round trip.
        ch.queue_declare("", exclusive=True)
    got = (info.value.reply_code, info.value.reply_text)
    text = wire_text(text)
    assert got == (code, text), f"channel closed with {got!r}, expected {(code, text)!r}"
    assert ch.is_closed
    assert conn.is_open, "the connection must survive a channel error"
    other = conn.channel()
    other.queue_declare("", exclusive=True)
    other.close()
    assert_broker_ok(url)


def expect_connection_error(url: str, conn: pika.BlockingConnection, ch: Any,
                            action: Callable[[Any], Any], code: int, text: str) -> None:
    """``action(ch)`` makes the broker close the whole connection with ``code``/``text``."""
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        action(ch)
        ch.queue_declare("", exclusive=True)
    got = (info.value.reply_code, info.value.reply_text)
    text = wire_text(text)
    assert got == (code, text), f"connection closed with {got!r}, expected {(code, text)!r}"
    assert conn.is_closed
    assert_broker_ok(url)


def expect_ok(url: str, conn: pika.BlockingConnection, ch: Any, action: Callable[[Any], Any]) -> Any:
    """``action(ch)`` succeeds and the channel stays usable."""
    result = action(ch)
    ch.queue_declare("", exclusive=True)
    assert ch.is_open and conn.is_open
    return result


def cleanup(url: str, queues: tuple[str, ...] = (), exchanges: tuple[str, ...] = ()) -> None:
    conn = connect(url)
    try:
        for q in queues:
            ch = conn.channel()
            try:
                ch.queue_delete(q)
                ch.close()
            except pika.exceptions.AMQPError:
                # e.g. still locked by an exclusive owner (it goes away with its owner)
                if not conn.is_open:
                    conn = connect(url)
        for x in exchanges:
            ch = conn.channel()
            try:
                ch.exchange_delete(x)
                ch.close()
            except pika.exceptions.AMQPError:
                if not conn.is_open:
                    conn = connect(url)
    finally:
        if conn.is_open:
            conn.close()


# ---------------------------------------------------------------------------------------
# raw frames
# ---------------------------------------------------------------------------------------

def raw_frame(ftype: int, channel: int, payload: bytes, end: bytes = FRAME_END) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + end


def shortstr(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def method_payload(class_id: int, method_id: int, args: bytes = b"") -> bytes:
    return struct.pack(">HH", class_id, method_id) + args


def header_payload(body_size: int, class_id: int = 60) -> bytes:
    """A content header with no properties."""
    return struct.pack(">HHQH", class_id, 0, body_size, 0)


def amqplain_response(user: str, password: str) -> str:
    def entry(k: str, v: str) -> bytes:
        vb = v.encode()
        return shortstr(k) + b"S" + struct.pack(">I", len(vb)) + vb
    return (entry("LOGIN", user) + entry("PASSWORD", password)).decode("latin-1")


class SocketClosedError(Exception):
    """The socket was closed by the broker."""


CLIENT_PROPERTIES = {
    "product": "hutch-tests rawamqp",
    "capabilities": {
        "authentication_failure_close": True,
        "consumer_cancel_notify": True,
        "basic.nack": True,
        "publisher_confirms": True,
        "connection.blocked": True,
    },
}


class RawConnection:
    """A minimal blocking AMQP client: handshake, send frames, read frames."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        u = urlparse(url)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 5672
        self.user = unquote(u.username or "guest")
        self.password = unquote(u.password or "guest")
        path = u.path[1:] if u.path else ""
        self.vhost = unquote(path) if path else "/"
        self.timeout = timeout
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.buf = b""
        self.frame_max = 131072
        self.channel_max = 2047
        self.last_close: Any = None

    # -- plumbing --------------------------------------------------------------------
    def close_socket(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_socket()

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, channel: int, value: Any) -> None:
        self.send_bytes(pframe.marshal(value, channel))

    def send_method_raw(self, channel: int, class_id: int, method_id: int, args: bytes = b"") -> None:
        self.send_bytes(raw_frame(1, channel, method_payload(class_id, method_id, args)))

    def send_content(self, channel: int, body: bytes, properties: Any = None) -> None:
        self.send(channel, pheader.ContentHeader(0, len(body), properties or cmd.Basic.Properties()))
        if body:
            self.send(channel, pbody.ContentBody(body))

    def publish(self, channel: int, exchange: str, routing_key: str, body: bytes,
                mandatory: bool = False, immediate: bool = False) -> None:
        self.send(channel, cmd.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                             mandatory=mandatory, immediate=immediate))
        self.send_content(channel, body)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame from the broker in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("no frame from the broker in time") from None
        except ConnectionResetError:
            raise SocketClosedError("connection reset") from None
        if not data:
            raise SocketClosedError("socket closed by the broker")
        self.buf += data

    def read_frame(self, timeout: float | None = None) -> tuple[int, Any]:
        """(channel, frame) of the next frame; heartbeats are skipped."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            while len(self.buf) < 7:
                self._fill(deadline)
            size = struct.unpack_from(">I", self.buf, 3)[0]
            while len(self.buf) < size + 8:
                self._fill(deadline)
            consumed, channel, value = pframe.unmarshal(self.buf[: size + 8])
            self.buf = self.buf[consumed:]
            if isinstance(value, pheartbeat.Heartbeat):
                continue
            return channel, value

    def expect(self, channel: int, kind: type, timeout: float | None = None) -> Any:
        ch, value = self.read_frame(timeout)
        assert (ch, type(value)) == (channel, kind), (
            f"expected {kind.__name__} on {channel}, got {ch} {value!r}")
        return value

    def expect_nothing(self, timeout: float) -> None:
        """No frame arrives (and the socket stays open) for ``timeout`` seconds."""
        try:
            ch, value = self.read_frame(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame on channel {ch}: {value!r}")

    def wait_socket_closed(self, timeout: float = 5.0) -> list[tuple[int, Any]]:
        """Read until the broker closes the socket; returns the frames seen before."""
        seen: list[tuple[int, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen.append(self.read_frame(max(0.01, deadline - time.monotonic())))
            except SocketClosedError:
                return seen
            except OSError:
                return seen

    # -- handshake ---------------------------------------------------------------------
    def handshake(self, mechanism: str = "PLAIN", user: str | None = None,
                  password: str | None = None, vhost: str | None = None,
                  open_connection: bool = True) -> RawConnection:
        self.send_bytes(PROTOCOL_HEADER)
        self.expect(0, cmd.Connection.Start)
        user = self.user if user is None else user
        password = self.password if password is None else password
        if mechanism == "PLAIN":
            response = f"\x00{user}\x00{password}"
        else:
            response = amqplain_response(user, password)
        self.send(0, cmd.Connection.StartOk(client_properties=CLIENT_PROPERTIES, mechanism=mechanism,
                                            response=response, locale="en_US"))
        _ch, tune = self.read_frame()
        if isinstance(tune, cmd.Connection.Close):
            self.last_close = tune  # refused: the caller inspects it
            return self
        assert isinstance(tune, cmd.Connection.Tune), tune
        self.frame_max = tune.frame_max
        self.channel_max = tune.channel_max
        self.send(0, cmd.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max,
                                           heartbeat=0))
        if open_connection:
            self.send(0, cmd.Connection.Open(virtual_host=self.vhost if vhost is None else vhost))
            self.expect(0, cmd.Connection.OpenOk)
        return self

    def open_channel(self, channel: int = 1) -> None:
        self.send(channel, cmd.Channel.Open())
        self.expect(channel, cmd.Channel.OpenOk)

    def rpc(self, channel: int, method: Any, reply: type) -> Any:
        self.send(channel, method)
        return self.expect(channel, reply)

    # -- error outcomes ----------------------------------------------------------------
    def expect_channel_close(self, channel: int, timeout: float | None = None) -> Any:
        """The broker closes ``channel``: answer close-ok and return the Channel.Close."""
        ch, value = self.read_frame(timeout)
        assert (ch, type(value)) == (channel, cmd.Channel.Close), f"got {ch} {value!r}"
        self.send(channel, cmd.Channel.CloseOk())
        return value

    def expect_connection_close(self, timeout: float | None = None) -> Any:
        """The broker closes the connection: answer close-ok and return the Connection.Close."""
        while True:
            ch, value = self.read_frame(timeout)
            if ch == 0 and isinstance(value, cmd.Connection.Close):
                break
            # Anything on other channels before the close is ignored (e.g. a channel.close-ok).
            assert ch != 0, f"unexpected {value!r} on channel 0"
        try:
            self.send(0, cmd.Connection.CloseOk())
        except OSError:
            pass
        return value

    def close(self) -> None:
        """Client-initiated close (the connection must still be healthy)."""
        self.send(0, cmd.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        while True:
            ch, value = self.read_frame()
            if ch == 0 and isinstance(value, cmd.Connection.CloseOk):
                break
        self.close_socket()


def raw_session(url: str, channels: int = 1) -> RawConnection:
    """A handshaken connection with channels 1..``channels`` open."""
    conn = RawConnection(url).handshake()
    for n in range(1, channels + 1):
        conn.open_channel(n)
    return conn


def close_fields(close: Any) -> tuple[int, str, int, int]:
    return close.reply_code, close.reply_text, close.class_id, close.method_id
