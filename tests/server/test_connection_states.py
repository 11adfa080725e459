"""A Connection driven in process through its states, with a fake transport: the bytes
it writes for each step of the handshake, and for every method a state refuses exactly
one connection.close (no socket, no running event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from hutch.broker.node import Node
from hutch.protocol import constants as rc
from hutch.protocol import methods as m
from hutch.protocol.frames import HEARTBEAT_FRAME, content_header_payload, header_frame, method_frame
from hutch.protocol.state import CLOSED, CLOSING, OPENING, PRE_INIT, RUNNING, STARTING, TUNING
from hutch.server.connection import CHANNEL_MAX, FRAME_MAX, HEARTBEAT, Connection, server_properties

LEGAL = {
    STARTING: {"connection.start_ok", "connection.close"},
    TUNING: {"connection.tune_ok", "connection.close"},
    OPENING: {"connection.open", "connection.close"},
    RUNNING: {"connection.close", "connection.update_secret", "connection.blocked",
              "connection.unblocked", "connection.close_ok"},
}
WAITS_FOR = {STARTING: "connection.start_ok", TUNING: "connection.tune_ok",
             OPENING: "connection.open"}


class FakeTransport:
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 5672)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.out.extend(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return 0


class Client:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.broker = Node(loop)
        self.conn = Connection(self.broker)
        self.transport = FakeTransport()
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]

    def feed(self, data: bytes) -> bytes:
        """What the connection writes in answer to ``data`` (the pump's turn included)."""
        self.conn.data_received(data)
        self.broker.pump.run()
        out = b"".join(self.transport.out)
        self.transport.out.clear()
        return out

    def send(self, method: m.Method, channel: int = 0) -> bytes:
        return self.feed(method_frame(channel, method.encode()))

    def to(self, state: Any) -> None:
        """Take the connection through the handshake up to ``state``."""
        steps = [(rc.PROTOCOL_HEADER, STARTING),
                 (method_frame(0, m.ConnectionStartOk(mechanism="PLAIN",
                                                      response=b"\0guest\0guest").encode()), TUNING),
                 (method_frame(0, m.ConnectionTuneOk(channel_max=CHANNEL_MAX,
                                                     frame_max=FRAME_MAX).encode()), OPENING),
                 (method_frame(0, m.ConnectionOpen(virtual_host="/").encode()), RUNNING)]
        for data, reached in steps:
            if self.conn.state is state:
                return
            self.feed(data)
            assert self.conn.state is reached
        assert self.conn.state is state


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def close_frame(code: int, text: str, class_id: int = 0, method_id: int = 0) -> bytes:
    return method_frame(0, m.ConnectionClose(reply_code=code, reply_text=text, class_id=class_id,
                                             method_id=method_id).encode())


def test_handshake_bytes(loop: asyncio.AbstractEventLoop) -> None:
    c = Client(loop)
    assert c.conn.state is PRE_INIT
    assert c.feed(rc.PROTOCOL_HEADER[:3]) == b""  # a header in pieces is waited for
    assert c.feed(rc.PROTOCOL_HEADER[3:]) == method_frame(0, m.ConnectionStart(
        version_major=0, version_minor=9, server_properties=server_properties(),
        mechanisms=b"AMQPLAIN PLAIN", locales=b"en_US").encode())
    assert c.conn.state is STARTING
    assert c.send(m.ConnectionStartOk(mechanism="PLAIN", response=b"\0guest\0guest")) == \
        method_frame(0, m.ConnectionTune(channel_max=CHANNEL_MAX, frame_max=FRAME_MAX,
                                         heartbeat=HEARTBEAT).encode())
    assert c.conn.state is TUNING
    assert c.send(m.ConnectionTuneOk(channel_max=CHANNEL_MAX, frame_max=FRAME_MAX,
                                     heartbeat=0)) == b""
    assert c.conn.state is OPENING
    assert c.send(m.ConnectionOpen(virtual_host="/")) == method_frame(0, m.ConnectionOpenOk().encode())
    assert c.conn.state is RUNNING
    assert c.feed(HEARTBEAT_FRAME) == b""
    assert c.send(m.ConnectionUpdateSecret()) == method_frame(0, m.ConnectionUpdateSecretOk().encode())
    for ignored in (m.ConnectionBlocked(), m.BY_NAME["connection.unblocked"](), m.ConnectionCloseOk()):
        assert c.send(ignored) == b""
    assert c.conn.state is RUNNING


def test_bad_header_gets_ours_back(loop: asyncio.AbstractEventLoop) -> None:
    c = Client(loop)
    assert c.feed(b"HTTP/1.1") == rc.PROTOCOL_HEADER
    assert c.conn.state is CLOSED and c.transport.closed


@pytest.mark.parametrize("state", [STARTING, TUNING, OPENING, RUNNING])
def test_client_close_in_each_state(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    c = Client(loop)
    c.to(state)
    assert c.send(m.ConnectionClose(reply_code=200, reply_text="bye")) == \
        method_frame(0, m.ConnectionCloseOk().encode())
    assert c.conn.state is CLOSED
    assert not c.transport.closed  # read to its end (closing.py)
    assert c.send(m.ConnectionOpen()) == b""


@pytest.mark.parametrize("state,cid,mid,name", [
    (state, cid, mid, name) for state in (STARTING, TUNING, OPENING, RUNNING)
    for cid, mid, name, _f, _c in m.SPEC if name not in LEGAL[state]])
def test_every_refused_method_gets_one_close(loop: asyncio.AbstractEventLoop, state: Any,
                                             cid: int, mid: int, name: str) -> None:
    c = Client(loop)
    c.to(state)
    out = c.send(m.BY_NAME[name]())
    if state is RUNNING:
        expected = close_frame(504, "CHANNEL_ERROR - unexpected method in connection state running",
                               cid, mid)
    else:
        expected = close_frame(503, f"COMMAND_INVALID - expected '{WAITS_FOR[state]}', got '{name}'",
                               cid, mid)
    assert out == expected
    assert c.conn.state is CLOSING


@pytest.mark.parametrize("state", [STARTING, TUNING, OPENING])
def test_channel_frame_before_open(loop: asyncio.AbstractEventLoop, state: Any) -> None:
    c = Client(loop)
    c.to(state)
    assert c.send(m.ChannelOpen(), channel=1) == close_frame(
        503, "COMMAND_INVALID - channel frame before connection.open")
    assert c.conn.state is CLOSING


def test_closing_reads_only_close_and_close_ok(loop: asyncio.AbstractEventLoop) -> None:
    c = Client(loop)
    c.to(RUNNING)
    c.conn.close(320, "CONNECTION_FORCED - test")
    assert b"".join(c.transport.out) == close_frame(320, "CONNECTION_FORCED - test")
    c.transport.out.clear()
    assert c.conn.state is CLOSING
    for _cid, _mid, name, _f, _c in m.SPEC:
        if name not in ("connection.close", "connection.close_ok"):
            assert c.send(m.BY_NAME[name]()) == b""
            assert c.send(m.BY_NAME[name](), channel=1) == b""
    assert c.feed(header_frame(0, content_header_payload(0, b"\0\0"))) == b""
    assert c.conn.state is CLOSING
    assert c.send(m.ConnectionClose()) == method_frame(0, m.ConnectionCloseOk().encode())
    assert c.conn.state is CLOSING
    assert c.send(m.ConnectionCloseOk()) == b""
    assert c.conn.state is CLOSED and c.transport.closed


def test_refused_login_with_authentication_failure_close(loop: asyncio.AbstractEventLoop) -> None:
    c = Client(loop)
    c.to(STARTING)
    out = c.send(m.ConnectionStartOk(
        client_properties={"capabilities": {"authentication_failure_close": True}},
        mechanism="PLAIN", response=b"\0guest\0wrong"))
    assert out == close_frame(403, "ACCESS_REFUSED - Login was refused using authentication "
                                   "mechanism PLAIN. For details see the broker logfile.")
    assert c.conn.state is CLOSING
    c2 = Client(loop)
    c2.to(STARTING)
    assert c2.send(m.ConnectionStartOk(mechanism="PLAIN", response=b"\0guest\0wrong")) == b""
    assert c2.conn.state is CLOSED and c2.transport.closed
