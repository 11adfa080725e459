"""Why a connection's socket is not read right now, and the pausing itself.

The broker stops reading a client's socket while any of these reasons holds
(``FlowControl.reasons``), and reads it again once none does:

* ``WRITE``  TCP backpressure: the client does not read what we write
  (``pause_writing``); a publisher gets backpressure in turn, and no deliveries go out.
* ``ALARM``  a resource alarm is on and this connection published since it went on
  (``blocked``, rabbit_reader's ``blocked`` state); until it publishes it is only
  ``blocking`` and read as usual, so consumers drain what raised the alarm.
* ``QUEUES`` queues it published to have ready messages a consumer could take right
  now (``Queue.is_behind``): they get to deliver before this publisher adds more.
* ``SHARE``  one of them is congested (``Queue.is_congested``): the publisher waits out
  its fair share of the loop (``after_read``).

Nothing else pauses or resumes the transport's reading (the shape of uvicorn's
``protocols/http/flow_control.py``).  A connection that is closing is read whatever
holds (``read_to_end``).  Not reading also hides the client's heartbeats and its going
away; ``alive_while_paused`` and ``_watch_peer`` make up for it.
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import logging
import socket
import sys
import termios
import time
from typing import TYPE_CHECKING

from ..protocol.state import CLOSED, ENDING, RUNNING

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("hutch.connection")

# While a resource alarm keeps a connection unread, how often the kernel is asked
# whether the client has gone (see _watch_peer).
PEER_CHECK = 1.0
# Linux TCP states (include/net/tcp_states.h) in which the peer has closed or reset.
_TCP_PEER_GONE = (7, 8)  # TCP_CLOSE, TCP_CLOSE_WAIT
# RabbitMQ shows a connection as "flow" for a second after flow control last held
# it back (credit_flow's state-change interval), so a publisher that is paused and
# resumed many times a second reads as "flow", not as a flicker of "running".
FLOW_STATE_SECONDS = 1.0


class Reason(enum.Enum):
    # Members are singletons compared by identity: hash them so too (Enum's own
    # __hash__ is a Python function, called on every test of ``reasons``).
    __hash__ = object.__hash__

    WRITE = "write"
    ALARM = "alarm"
    QUEUES = "queues"
    SHARE = "share"


# The reasons that are the broker's doing (not the client's): see alive_while_paused.
_BROKER_REASONS = frozenset({Reason.ALARM, Reason.QUEUES, Reason.SHARE})


def _unread_bytes(transport: asyncio.Transport) -> int:
    """Bytes the peer sent that wait in the socket's receive queue (FIONREAD)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(buf, sys.byteorder)


def _peer_gone(transport: asyncio.Transport) -> bool:
    """Whether the client closed or reset the connection, asked without reading (a FIN
    or RST is only seen by a read, and we may not be reading)."""
    sock = transport.get_extra_info("socket")
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)
    except (AttributeError, OSError):  # not Linux, not TCP, or already closed
        return False
    return bool(info) and info[0] in _TCP_PEER_GONE


class FlowControl:
    """One connection's reasons not to read its socket (see the module docstring)."""

    __slots__ = ("_conn", "_peer_timer", "_socket_levels", "alarms", "blocked",
                 "blocked_sent", "last_flow", "reading_paused", "reasons", "write_paused")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.reasons: set[Reason] = set()
        # Reason.WRITE in reasons, as a plain attribute: Channel.can_deliver reads it
        # for every delivery.
        self.write_paused = False
        # The node's resource alarms in effect ("disk", "memory"), as this connection
        # heard of them; blocked: it published while one was (so it is not read);
        # blocked_sent: it was told so with connection.blocked.
        self.alarms: frozenset[str] = frozenset()
        self.blocked = False
        self.blocked_sent = False
        self.last_flow = -1e9  # monotonic time the fair share last held it back
        # Whether the socket is not read right now, and, while it is not, what it held
        # at the last heartbeat tick (bytes the client sent that we have not read, bytes
        # we wrote it has not taken; None until the first tick of a pause).
        self.reading_paused = False
        self._socket_levels: tuple[int, int] | None = None
        self._peer_timer: asyncio.TimerHandle | None = None

    # -- the reasons ---------------------------------------------------------------
    def pause_writing(self) -> None:
        self.write_paused = True
        self.reasons.add(Reason.WRITE)
        self._update()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.reasons.discard(Reason.WRITE)
        self._update()

    def set_blocked(self, blocked: bool) -> None:
        """A publish while an alarm is on (True), or every alarm cleared (False)."""
        self.blocked = blocked
        if blocked:
            self.reasons.add(Reason.ALARM)
        else:
            self.reasons.discard(Reason.ALARM)
        self._update()

    def after_read(self, spent: float) -> None:
        """After a read that published (the other half is check_queues).

        Fair share: while a queue this read fed is congested (it has consumers and
        a backlog beyond its in-memory window, so they are not keeping up), the
        connection is not read again for as long as handling this read took.  A
        publisher then gets at most half the broker's time and the consumers'
        acks and deliveries the rest; without it one producer can take the whole
        loop and starve the very consumers its queue waits for (measured: 2 workers
        with prefetch 1 took 2,600 msgs/s while the producer put in 69,000/s;
        with the share, 5,000-6,400/s).  The publisher is slowed, never stopped:
        RabbitMQ's credit flow ("flow" state) does the same to publishers its
        queues cannot keep up with."""
        conn = self._conn
        if Reason.SHARE not in self.reasons and any(q.is_congested() for q in conn.fed_queues):
            self.reasons.add(Reason.SHARE)
            self.last_flow = time.monotonic()
            self._update()
            conn.broker.loop.call_later(spent, self._shared)
        self.check_queues()

    def _shared(self) -> None:
        self.reasons.discard(Reason.SHARE)
        self._update()

    def check_queues(self) -> None:
        """Publisher flow control, after each read that published and after each pump
        run.  A fast publisher must not starve the consumers of the queues it feeds:
        while any of them has ready messages a consumer could take right now, this
        connection is not read (TCP pushes back on the client); it resumes once they
        have been dispatched.  A queue nobody can consume from does not hold anyone
        back — its backlog is paged to disk (durable) or limited by the memory alarm."""
        conn = self._conn
        behind = any(q.is_behind() for q in conn.fed_queues)
        if behind != (Reason.QUEUES in self.reasons):
            if behind:
                self.reasons.add(Reason.QUEUES)
                conn.broker.pump.flow_paused(self)
            else:
                self.reasons.discard(Reason.QUEUES)
            self._update()
        if not behind:
            conn.fed_queues.clear()

    def recheck(self) -> bool:
        """After a pump run: whether this publisher still waits for its queues."""
        if Reason.QUEUES not in self.reasons or self._conn.state is not RUNNING:
            return False
        self.check_queues()
        return Reason.QUEUES in self.reasons

    def read_to_end(self) -> None:
        """Read the socket whatever held it back (flow control, an alarm, a client that
        does not read): a closing connection only looks for close/close-ok, or for the
        client's end of the socket, and unread bytes would turn our close into a reset
        (closing.py)."""
        self.reasons.clear()
        self.write_paused = self.blocked = False
        self.reading_paused = False
        transport = self._conn.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- reading -------------------------------------------------------------------
    def _update(self) -> None:
        """Pause or resume reading as the reasons now say."""
        conn = self._conn
        transport = conn.transport
        if transport is None or transport.is_closing():
            return
        paused = bool(self.reasons) and conn.state not in ENDING  # those read to the end
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()
        if paused and self.blocked and self._peer_timer is None:
            self._peer_timer = conn.broker.loop.call_later(PEER_CHECK, self._watch_peer)
        if paused != self.reading_paused:
            self.reading_paused = paused
            self._socket_levels = None
            if not paused:
                # Whatever the client sent while we were not reading (heartbeats
                # included) is still in the socket: its heartbeat clock starts
                # afresh, as rabbit_heartbeat's receiver does on resume.
                conn.last_recv = time.monotonic()

    def alive_while_paused(self) -> bool:
        """Whether a client we are not reading counts as alive at this heartbeat tick.

        While we do not read the socket, the client's heartbeats wait in it unread, so
        silence says nothing.  RabbitMQ pauses its heartbeat receiver whenever its
        reader stops reading a publisher (rabbit_reader's control_throttle/maybe_block
        call rabbit_heartbeat:pause_monitor, for a resource alarm or credit flow) and
        resumes it with a fresh count when reading resumes; it keeps sending its own
        heartbeats meanwhile.  Hutch does the same for the reasons that are the
        broker's doing: memory alarm, flow control, fair share.

        TCP backpressure is the client's doing (it does not read what we write), and
        RabbitMQ would still read its heartbeats there while we cannot.  So then the
        socket is asked instead: the client is alive while it sends anything (our
        unread bytes grow) or takes anything (our write buffer shrinks).  One that
        does neither for two heartbeat intervals is dropped as before — a hung client
        must not keep its connection and its unacked messages forever."""
        if not self.reasons.isdisjoint(_BROKER_REASONS):
            return True
        transport = self._conn.transport
        assert transport is not None
        levels = (_unread_bytes(transport), transport.get_write_buffer_size())
        before, self._socket_levels = self._socket_levels, levels
        if before is None:
            return True  # the first tick of this pause: nothing to compare with yet
        return levels[0] > before[0] or levels[1] < before[1]

    def _watch_peer(self) -> None:
        """A publisher blocked by a resource alarm is not read, so its going away goes
        unnoticed — and with it what it holds (a half-received body counts towards the
        alarm, its unacked messages stay taken) — until the alarm clears, which that
        may prevent.  So while blocked, the kernel is asked every PEER_CHECK seconds."""
        self._peer_timer = None
        conn = self._conn
        transport = conn.transport
        if conn.state is CLOSED or transport is None or not self.reading_paused:
            return
        if _peer_gone(transport):
            log.info("closing AMQP connection %s (client closed the TCP connection while "
                     "blocked)", conn.name)
            transport.abort()  # connection_lost cleans up
            return
        self._peer_timer = conn.broker.loop.call_later(PEER_CHECK, self._watch_peer)

    def stop(self) -> None:
        """The connection is gone: no more peer checks."""
        if self._peer_timer is not None:
            self._peer_timer.cancel()
            self._peer_timer = None

    # -- what the management API shows ----------------------------------------------
    @property
    def api_state(self) -> str:
        """The connection's state as RabbitMQ's management API names it: ``blocked``
        once it published while a resource alarm is on, ``blocking`` while one is on
        and it has not published since, ``flow`` for a while after the fair share held
        it back, else its protocol state (``running``, ``closing``)."""
        if self.blocked:
            return "blocked"
        state = self._conn.state
        if self.alarms and state is RUNNING:
            return "blocking"
        if state is RUNNING and time.monotonic() - self.last_flow < FLOW_STATE_SECONDS:
            return "flow"
        return str(state)

