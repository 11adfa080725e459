"""The closing handshake's last step: never reset a connection under the client.

A socket closed while the peer's data still arrives (or waits unread) makes the kernel
answer with RST, and the client loses what it had not yet read: Node's amqplib writes
``connection.close`` ahead of publishes still queued in its channel mux, and got
``EPIPE`` and never its close callback when Hutch closed right after ``close-ok``.

RabbitMQ (rabbit_reader:close_connection) keeps reading, and discarding, until the
client closes its end, and terminates the connection itself only after the negotiated
heartbeat interval, or ``?CLOSING_TIMEOUT`` (30 s) when that is 0 or longer.  The same
timeout bounds the wait for ``close-ok`` after the broker sent ``connection.close``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection

CLOSING_TIMEOUT = 30.0  # rabbit_reader's ?CLOSING_TIMEOUT, seconds


def closing_timeout(heartbeat: int) -> float:
    """How long a closing connection is kept open for its client (rabbit_reader)."""
    return float(heartbeat) if 0 < heartbeat < CLOSING_TIMEOUT else CLOSING_TIMEOUT


def linger(conn: Connection) -> asyncio.TimerHandle:
    """After close-ok went to a client that asked to close: the connection is gone for
    the broker, but the socket stays open, read and discarded (``data_received`` drops
    everything once ``state`` is ``closed``), until the client closes its end
    (``connection_lost``) or the closing timeout passes.  Returns the timer, which the
    caller cancels when the socket goes first."""
    conn.flow.read_to_end()
    conn.broker.lingering.add(conn)  # the listener closes these at shutdown

    def give_up() -> None:
        if conn.transport is not None:
            conn.transport.close()

    return conn.broker.loop.call_later(closing_timeout(conn.heartbeat), give_up)
