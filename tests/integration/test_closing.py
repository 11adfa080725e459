"""Closing a connection never resets it under the client's feet.

RabbitMQ (rabbit_reader:close_connection) keeps reading, and discarding, what a client
sends after the close until the client closes its end; it gives up after the heartbeat
interval or 30 s.  A socket closed while the client's frames still arrive is answered
with RST: the client gets ECONNRESET/EPIPE instead of close-ok and a FIN.

RabbitMQ's sockets have ``{linger, {true, 0}}`` (its default tcp_listen_options), so its
end of the connection is always a reset, once the client has closed its own; Hutch's is
a FIN (README, Known differences): the checks of the broker's FIN are Hutch-only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid

import pytest
from pamqp import body as pbody
from pamqp import commands as cmd
from pamqp import frame as pframe
from pamqp import header as pheader

from tests.integration.rawamqp import raw_session
from tests.integration.test_amqplib import NODE_DIR, node_client  # noqa: F401  (fixture)

CLOSE = cmd.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)


def _publishes(queue: str, n: int) -> bytes:
    one = (pframe.marshal(cmd.Basic.Publish(exchange="", routing_key=queue), 1)
           + pframe.marshal(pheader.ContentHeader(0, 1000, cmd.Basic.Properties()), 1)
           + pframe.marshal(pbody.ContentBody(b"x" * 1000), 1))
    return one * n


def _read_to_clean_end(sock: socket.socket) -> bytes:
    """Everything the broker still sends, up to its FIN; a reset fails the test."""
    sock.settimeout(10)
    rest = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            pytest.fail("the broker reset the connection")
        if not data:
            return rest
        rest += data


@pytest.fixture
def queue(broker_url):
    name = f"closing.{uuid.uuid4().hex[:8]}"
    yield name
    with raw_session(broker_url) as conn:
        conn.rpc(1, cmd.Queue.Delete(queue=name), cmd.Queue.DeleteOk)
        conn.close()


def _close_with_frames_in_flight(broker_url: str, queue: str, order: str) -> socket.socket:
    conn = raw_session(broker_url)
    conn.rpc(1, cmd.Queue.Declare(queue=queue), cmd.Queue.DeclareOk)
    burst = _publishes(queue, 2000)
    close = pframe.marshal(CLOSE, 0)
    conn.sock.sendall(close + burst if order == "close-then-frames" else burst + close)
    conn.expect(0, cmd.Connection.CloseOk, timeout=10)
    # The broker keeps the connection open for the client to close.
    conn.sock.settimeout(0.5)
    try:
        assert conn.sock.recv(1) == b"", "nothing may follow close-ok"
        pytest.fail("the broker closed before the client did")
    except TimeoutError:
        pass
    except ConnectionResetError:
        pytest.fail("the broker reset the connection")
    return conn.sock


@pytest.mark.parametrize("order", ["close-then-frames", "frames-then-close"])
def test_client_close_with_frames_in_flight_gets_close_ok(broker_url, queue, order):
    """The client's frames after (or just before) its connection.close are read and
    dropped; it gets close-ok, and its socket stays open until it closes it."""
    _close_with_frames_in_flight(broker_url, queue, order).close()


@pytest.mark.hutch_only
@pytest.mark.parametrize("order", ["close-then-frames", "frames-then-close"])
def test_client_close_ends_with_the_brokers_fin(broker_url, queue, order):
    sock = _close_with_frames_in_flight(broker_url, queue, order)
    sock.shutdown(socket.SHUT_WR)  # the client is done: FIN
    assert _read_to_clean_end(sock) == b""
    sock.close()


@pytest.mark.hutch_only
def test_broker_close_discards_frames_until_close_ok(broker_url, queue):
    """A hard error: connection.close, then the client's frames sent before it saw the
    close are dropped until close-ok, after which the broker closes without a reset."""
    with raw_session(broker_url) as conn:
        conn.rpc(1, cmd.Queue.Declare(queue=queue), cmd.Queue.DeclareOk)
        burst = _publishes(queue, 1000)
        second_open = pframe.marshal(cmd.Channel.Open(), 1)  # 504 CHANNEL_ERROR
        conn.sock.sendall(burst + second_open + burst)
        close = conn.expect(0, cmd.Connection.Close, timeout=10)
        assert close.reply_code == 504
        conn.send(0, cmd.Connection.CloseOk())
        assert _read_to_clean_end(conn.sock) == b""


def test_amqplib_burst_then_close_gets_its_close_callback(broker_url, queue, node_client):  # noqa: F811
    out = subprocess.run(["node", str(NODE_DIR / "closeburst.js"), broker_url, queue, "2000"],
                         capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"closed": True, "closeError": None, "events": []}, out.stderr


@pytest.mark.hutch_only
def test_shutdown_does_not_wait_for_a_client_that_keeps_its_socket_after_close_ok() -> None:
    """A client that asked to close but keeps its end open is read until the closing
    timeout (30 s): a broker stopping meanwhile closes that socket instead of waiting
    (Python 3.12's Server.wait_closed waits for every transport)."""
    from pamqp import commands as cmd

    from tests.brokerproc import HutchProcess
    from tests.integration.rawamqp import raw_session

    proc = HutchProcess()
    proc.start()
    raw = raw_session(proc.url)
    try:
        raw.send(0, cmd.Connection.Close(reply_code=200, reply_text="bye", class_id=0,
                                         method_id=0))
        raw.expect(0, cmd.Connection.CloseOk)  # and the socket stays open
        assert proc.stop(timeout=10) == 0  # stopped by SIGTERM, not killed after 10 s
    finally:
        raw.close_socket()
        proc.stop()
