"""One client connection: handshake, authentication, heartbeats, frame routing.

State machine (each state names what we wait for from the client)::

    header -> start_ok -> tune_ok -> open -> running -> closing -> closed

``data_received`` only feeds the frame reader and handles every complete
frame of the read in one pass; outgoing frames are collected in ``_out`` and
written by ``flush`` once per loop turn (see ``broker/pump.py``).
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import platform
import socket
import struct
import sys
import termios
import time
from typing import Any

from .. import RABBITMQ_VERSION, __version__
from ..broker.broker import Broker
from ..broker.permissions import Access, vhost_access_allowed
from ..errors import AMQPError, ChannelError, HardError
from ..protocol import constants as rc
from ..protocol import methods as m
from ..protocol.codec import DecodeError, Utf8Error, decode_table
from ..protocol.frames import HEARTBEAT_FRAME, FrameError, FrameReader, method_frame
from .channel import Channel
from .closing import closing_timeout, keep_reading, linger

log = logging.getLogger("hutch.connection")

CHANNEL_MAX = 2047
FRAME_MAX = 131072
HEARTBEAT = 60
HANDSHAKE_TIMEOUT = 10.0
# While a resource alarm keeps a connection unread, how often the kernel is asked
# whether the client has gone (see _watch_peer).
PEER_CHECK = 1.0
# Linux TCP states (include/net/tcp_states.h) in which the peer has closed or reset.
_TCP_PEER_GONE = (7, 8)  # TCP_CLOSE, TCP_CLOSE_WAIT

SERVER_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,  # server/direct_reply.py
}


def server_properties() -> dict[str, Any]:
    """What connection.start tells the client about the server.

    ``product``/``version`` say RabbitMQ and the release whose behaviour Hutch follows,
    because clients choose their dialect by them: kombu (so Celery) takes a server whose
    product is not ``RabbitMQ`` (or a RabbitMQ older than 3.3) to follow the spec's
    basic.qos, where ``global=false`` limits the whole channel; it then sends
    ``global=false`` expecting that, while Hutch, as RabbitMQ, applies it to consumers
    created afterwards only, and Celery's prefetch is never raised for its running
    consumer (a worker holding countdown tasks stops taking others).  Hutch names itself
    in ``platform`` and ``information`` (see README, Known differences)."""
    return {
        "capabilities": SERVER_CAPABILITIES,
        "cluster_name": f"hutch@{platform.node() or 'localhost'}",
        "copyright": "Copyright (c) the Hutch developers",
        "information": f"Hutch {__version__}, a RabbitMQ-compatible work-queue broker that "
                       f"follows RabbitMQ {RABBITMQ_VERSION}. Licensed under the MIT License",
        "platform": f"Hutch {__version__} on Python {platform.python_version()}",
        "product": "RabbitMQ",
        "version": RABBITMQ_VERSION,
    }


def is_loopback(host: str) -> bool:
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


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


class Connection(asyncio.Protocol):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.transport: asyncio.Transport | None = None
        self.state = "header"
        self.name = "?"
        self.peer_host = ""
        self.user: Any = None
        self.vhost: Any = None
        # The user's permissions in self.vhost (broker/permissions.py), set on open.
        self.access: Access | None = None
        self.auth_mechanism = ""
        self.client_properties: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.channels: dict[int, Channel] = {}
        self.channel_max = CHANNEL_MAX
        self.frame_max = FRAME_MAX
        self.heartbeat = 0
        self.reader = FrameReader(FRAME_MAX)
        self._header_buf = b""
        self._out: list[bytes] = []
        self.write_paused = False
        self.exclusive_queues: list[Any] = []
        self.last_recv = time.monotonic()
        self._sent_since_tick = False
        self._timer: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._peer_timer: asyncio.TimerHandle | None = None
        self.has_published = False
        # Publisher flow control: queues this connection published to since its
        # reading was last allowed, and whether it is paused until they catch up.
        self.fed_queues: set[Any] = set()
        self.flow_paused = False
        self.sharing = False  # waiting out its share of the loop (see _after_publishing)
        self.last_flow = -1e9  # monotonic time the fair share last held this connection back
        self.blocked = False  # paused by a resource alarm
        # Whether the broker is not reading this socket right now (see _update_reading),
        # and, while it is not, what the socket held at the last heartbeat tick (bytes
        # the client sent that we have not read, bytes we wrote it has not taken; None
        # until the first tick of a pause): _paused_liveness.
        self.reading_paused = False
        self._socket_levels: tuple[int, int] | None = None
        self.connected_at = time.time()

    # -- asyncio.Protocol --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.peer_host = str(peer[0])
        self.name = f"{peer[0]}:{peer[1]} -> {sock[0]}:{sock[1]}"
        log.info("accepting AMQP connection %s", self.name)
        self.broker.connections.add(self)
        self._handshake_timer = self.broker.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        self.last_recv = time.monotonic()
        if self.state == "header":
            self._receive_header(data)
            return
        if self.state == "closed":
            return
        self.reader.feed(data)
        started = time.perf_counter()
        try:
            frames = self.reader.frames()
        except FrameError as exc:
            self._hard_error(HardError(rc.FRAME_ERROR, str(exc)))
            return
        for ftype, channel, payload in frames:
            if self.state == "closed":
                break
            try:
                self._handle_frame(ftype, channel, payload)
            except AMQPError as exc:
                self._hard_error(exc)
            except Exception:  # a bug must not take the broker down with it
                log.exception("internal error on connection %s", self.name)
                self._hard_error(HardError(rc.INTERNAL_ERROR, "internal error"))
        if self.fed_queues and self.state == "running":
            self._after_publishing(time.perf_counter() - started)
        if self.reader.error_pending and self.state != "closed":
            try:
                self.reader.frames()
            except FrameError as exc:
                self._hard_error(HardError(rc.FRAME_ERROR, str(exc)))
        if self._out:
            self.broker.pump.conn_dirty(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker.lingering.discard(self)
        if self.state not in ("closed",):
            if self.state in ("running", "closing"):
                log.info("closing AMQP connection %s (%s)", self.name,
                         "client closed the TCP connection" if exc is None else exc)
        self.state = "closed"
        self._cleanup()

    def pause_writing(self) -> None:
        # The client is not reading what we send: stop reading what it sends
        # (a publisher gets TCP backpressure) and stop delivering to it.
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()
        for ch in self.channels.values():
            ch.redispatch()

    def _update_reading(self) -> None:
        """Read from the socket unless one of the reasons to stop holds: the client does
        not read our writes, a resource alarm blocks this publisher, or flow control
        waits for the queues it feeds to deliver what they have or for this publisher's
        fair share of the loop to come round (``_after_publishing``)."""
        if self.transport is None or self.transport.is_closing():
            return
        paused = (self.write_paused or self.flow_paused or self.sharing
                  or (self.blocked and self.has_published)) \
            and self.state not in ("closing", "closed")  # closing.py: those read to the end
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()
        if paused and self.blocked and self._peer_timer is None:
            self._peer_timer = self.broker.loop.call_later(PEER_CHECK, self._watch_peer)
        if paused != self.reading_paused:
            self.reading_paused = paused
            self._socket_levels = None
            if not paused:
                # Whatever the client sent while we were not reading (heartbeats
                # included) is still in the socket: its heartbeat clock starts
                # afresh, as rabbit_heartbeat's receiver does on resume.
                self.last_recv = time.monotonic()

    def _after_publishing(self, spent: float) -> None:
        """Flow control after a read that published (the other half is check_flow).

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
        if not self.sharing and any(q.is_congested() for q in self.fed_queues):
            self.sharing = True
            self.last_flow = time.monotonic()
            self._update_reading()
            self.broker.loop.call_later(spent, self._shared)
        self.check_flow()

    def _shared(self) -> None:
        self.sharing = False
        self._update_reading()

    def check_flow(self) -> None:
        """Publisher flow control, after each read that published and after each pump
        run.  A fast publisher must not starve the consumers of the queues it feeds:
        while any of them has ready messages a consumer could take right now, this
        connection is not read (TCP pushes back on the client); it resumes once they
        have been dispatched.  A queue nobody can consume from does not hold anyone
        back — its backlog is paged to disk (durable) or limited by the memory alarm."""
        behind = any(q.is_behind() for q in self.fed_queues)
        if behind != self.flow_paused:
            self.flow_paused = behind
            if behind:
                self.broker.pump.flow_paused(self)
            self._update_reading()
        if not behind:
            self.fed_queues.clear()

    # -- output --------------------------------------------------------------------
    def write(self, frame: bytes) -> None:
        if not self._out:
            self.broker.pump.conn_dirty(self)
        self._out.append(frame)

    def write_many(self, frames: list[bytes]) -> None:
        if not self._out:
            self.broker.pump.conn_dirty(self)
        self._out.extend(frames)

    def send_method(self, channel: int, method: m.Method) -> None:
        self.write(method_frame(channel, method.encode()))

    def flush(self) -> None:
        for ch in self.channels.values():
            if ch.confirms_pending:
                ch.emit_confirms()
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(self._out)
            self._sent_since_tick = True
        self._out = []

    # -- handshake ----------------------------------------------------------------
    def _receive_header(self, data: bytes) -> None:
        buf = self._header_buf + data
        if len(buf) < 8:
            if rc.PROTOCOL_HEADER.startswith(buf):
                self._header_buf = buf
                return
        if buf[:8] != rc.PROTOCOL_HEADER:
            # Spec: answer with the header we do speak, then close.
            log.warning("closing connection %s: bad protocol header %r", self.name, buf[:8])
            assert self.transport is not None
            self.transport.write(rc.PROTOCOL_HEADER)
            self.state = "closed"
            self.transport.close()
            return
        self._header_buf = b""
        self.state = "start_ok"
        self.send_method(0, m.ConnectionStart(
            version_major=0, version_minor=9, server_properties=server_properties(),
            mechanisms=b"AMQPLAIN PLAIN", locales=b"en_US"))
        rest = buf[8:]
        if rest:
            self.data_received(rest)
        self.flush()

    def _handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self.state in ("header", "start_ok", "tune_ok", "open"):
            log.warning("closing AMQP connection %s: handshake timeout", self.name)
            self.state = "closed"
            if self.transport is not None:
                self.transport.close()

    def _handle_frame(self, ftype: int, channel: int, payload: bytes) -> None:
        if ftype == rc.FRAME_HEARTBEAT:
            if channel != 0:
                raise HardError(rc.UNEXPECTED_FRAME, "type 8, all octets = <<>>")
            return
        if channel == 0:
            if ftype != rc.FRAME_METHOD:
                raise HardError(rc.UNEXPECTED_FRAME,
                                       "expected method frame, got non method frame instead")
            self._connection_method(payload)
            return
        if self.state != "running":
            if self.state == "closing":
                return  # after Close only Close/CloseOk on channel 0 matter
            raise HardError(rc.COMMAND_INVALID, "channel frame before connection.open")
        ch = self.channels.get(channel)
        if ch is None:
            self._new_channel(channel, ftype, payload)
            return
        ch.handle_frame(ftype, payload)

    def _new_channel(self, number: int, ftype: int, payload: bytes) -> None:
        if ftype != rc.FRAME_METHOD:
            raise HardError(rc.UNEXPECTED_FRAME,
                                   "expected method frame, got non method frame instead")
        if payload[:4] != b"\x00\x14\x00\x0a":
            exc = HardError(rc.CHANNEL_ERROR, "expected 'channel.open'")
            if len(payload) >= 4:
                exc.class_id = payload[0] << 8 | payload[1]
                exc.method_id = payload[2] << 8 | payload[3]
            raise exc
        # Like RabbitMQ 3.10, channel_max limits how many channels are open,
        # not the channel id.
        if len(self.channels) >= self.channel_max:
            raise HardError(
                rc.NOT_ALLOWED,
                f"number of channels opened ({len(self.channels)}) has reached the "
                f"negotiated channel_max ({self.channel_max})")
        ch = Channel(self, number)
        self.channels[number] = ch
        self.send_method(number, m.ChannelOpenOk())

    def _decode(self, payload: bytes) -> m.Method:
        try:
            return m.decode_method(payload)
        except KeyError:
            raise HardError(rc.COMMAND_INVALID, "unknown method") from None
        except DecodeError as exc:
            err = HardError(exc.code, str(exc))
            if isinstance(exc, Utf8Error):  # RabbitMQ names the connection method here
                err.class_id, err.method_id = struct.unpack_from(">HH", payload, 0)
            raise err from None

    def _connection_method(self, payload: bytes) -> None:
        method = self._decode(payload)
        try:
            self._connection_method_checked(method)
        except AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = method.CLASS_ID, method.METHOD_ID
            raise

    def _connection_method_checked(self, method: m.Method) -> None:
        name = method.NAME
        if self.state == "closing":
            if name == "connection.close_ok":
                self._finish_close()
            elif name == "connection.close":
                self.send_method(0, m.ConnectionCloseOk())
            return
        if name == "connection.close":
            log.info("closing AMQP connection %s (client requested: %s %s)", self.name,
                     method.reply_code, method.reply_text)
            self.send_method(0, m.ConnectionCloseOk())
            self.flush()
            self.state = "closed"
            self._cleanup()
            # Not closed yet: frames the client sent before it saw close-ok may still
            # come, and closing now would reset the connection (closing.py).
            self._close_timer = linger(self)
            return
        expected = {"start_ok": "connection.start_ok", "tune_ok": "connection.tune_ok",
                    "open": "connection.open"}.get(self.state)
        if expected is not None and name != expected:
            raise HardError(rc.COMMAND_INVALID,
                                   f"expected '{expected}', got '{name}'")
        if name == "connection.start_ok":
            self._start_ok(method)
        elif name == "connection.tune_ok":
            self._tune_ok(method)
        elif name == "connection.open" and self.state == "open":
            self._open(method)
        elif name == "connection.update_secret":
            # Hutch has no token-based auth backend: accept the new secret as
            # RabbitMQ does for its internal backend, which ignores it.
            self.send_method(0, m.ConnectionUpdateSecretOk())
        elif name in ("connection.blocked", "connection.unblocked"):
            pass  # client-sent notifications (RabbitMQ ignores them too)
        elif name == "connection.close_ok":
            pass
        else:  # e.g. a second connection.open, or a channel method on channel 0
            exc = HardError(rc.CHANNEL_ERROR, "unexpected method in connection state running")
            exc.class_id, exc.method_id = method.CLASS_ID, method.METHOD_ID
            raise exc

    def _start_ok(self, method: Any) -> None:
        self.client_properties = method.client_properties
        caps = method.client_properties.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        mechanism = method.mechanism
        username, password = "", ""
        if mechanism == "PLAIN":
            parts = method.response.split(b"\x00")
            if len(parts) != 3:
                raise HardError(rc.ACCESS_REFUSED, "PLAIN: malformed response")
            username, password = parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
        elif mechanism == "AMQPLAIN":
            resp = method.response
            try:
                table, _ = decode_table(len(resp).to_bytes(4, "big") + resp, 0)
            except DecodeError:
                raise HardError(rc.ACCESS_REFUSED, "AMQPLAIN: malformed response") from None
            username = str(table.get("LOGIN", ""))
            password = str(table.get("PASSWORD", ""))
        else:
            raise HardError(
                rc.ACCESS_REFUSED,
                f"unsupported authentication mechanism '{mechanism}' (supported: PLAIN, AMQPLAIN)")
        user = self.broker.users.authenticate(username, password)
        if user is None:
            log.error("Error on AMQP connection %s, state: starting:\n%s login refused: "
                      "user '%s' - invalid credentials", self.name, mechanism, username)
            self._refuse_login(mechanism)
            return
        if username in self.broker.users.loopback_only and not is_loopback(self.peer_host):
            log.error("Error on AMQP connection %s, state: starting:\nuser '%s' can only "
                      "connect via localhost", self.name, username)
            self._refuse_login(mechanism)
            return
        self.user = user
        self.auth_mechanism = mechanism
        self.state = "tune_ok"
        self.send_method(0, m.ConnectionTune(channel_max=CHANNEL_MAX, frame_max=FRAME_MAX,
                                             heartbeat=HEARTBEAT))

    def _refuse_login(self, mechanism: str) -> None:
        text = (f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
                "For details see the broker logfile.")
        if self.capabilities.get("authentication_failure_close"):
            self.send_method(0, m.ConnectionClose(reply_code=rc.ACCESS_REFUSED, reply_text=text))
            self.flush()
            self.state = "closing"
            self._close_timer = self.broker.loop.call_later(1.0, self._finish_close)
        else:
            # Clients without the capability learn of it by the socket closing (spec).
            self.flush()
            self.state = "closed"
            if self.transport is not None:
                self.transport.close()

    def _tune_ok(self, method: Any) -> None:
        if method.channel_max and method.channel_max > CHANNEL_MAX:
            raise HardError(rc.NOT_ALLOWED,
                                   f"negotiated channel_max = {method.channel_max} is higher "
                                   f"than the maximum allowed value ({CHANNEL_MAX})")
        if method.frame_max and method.frame_max > FRAME_MAX:
            raise HardError(rc.NOT_ALLOWED,
                                   f"negotiated frame_max = {method.frame_max} is higher than "
                                   f"the maximum allowed value ({FRAME_MAX})")
        if method.frame_max and method.frame_max < rc.FRAME_MIN_SIZE:
            raise HardError(rc.NOT_ALLOWED,
                                   f"negotiated frame_max = {method.frame_max} is lower than "
                                   f"the minimum allowed value ({rc.FRAME_MIN_SIZE})")
        self.channel_max = method.channel_max or CHANNEL_MAX
        self.frame_max = method.frame_max or FRAME_MAX
        self.reader.frame_max = self.frame_max
        self.heartbeat = method.heartbeat
        self.state = "open"
        if self.heartbeat:
            interval = self.heartbeat / 2
            self._timer = self.broker.loop.call_later(interval, self._heartbeat_tick)

    def _open(self, method: Any) -> None:
        vhost = self.broker.vhosts.get(method.virtual_host)
        if vhost is None:
            # RabbitMQ refuses after Open (not in Tune): 530 NOT_ALLOWED.
            raise HardError(rc.NOT_ALLOWED, f"vhost {method.virtual_host} not found")
        if not vhost_access_allowed(self.broker.users, vhost.name, self.user.name):
            # RabbitMQ: no permission entry for the vhost at all -> 530 on open.
            raise HardError(rc.NOT_ALLOWED, f"access to vhost '{vhost.name}' refused for user "
                            f"'{self.user.name}'")
        self.access = Access(self.broker.users, vhost.name, self.user.name)
        self.vhost = vhost
        self.state = "running"
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        log.info("connection %s: user '%s' authenticated and granted access to vhost '%s'",
                 self.name, self.user.name, vhost.name)
        self.send_method(0, m.ConnectionOpenOk())
        if self.broker.memory_alarm:
            self.on_memory_alarm(True)

    # -- heartbeats ------------------------------------------------------------
    def _heartbeat_tick(self) -> None:
        self._timer = None
        if self.state == "closed":
            return
        now = time.monotonic()
        if self.reading_paused and self._paused_liveness():
            self.last_recv = now
        if now - self.last_recv > self.heartbeat * 2:
            log.error("closing AMQP connection %s: missed heartbeats from client, timeout: %ds",
                      self.name, self.heartbeat)
            self.state = "closed"
            self._cleanup()
            if self.transport is not None:
                self.transport.abort()
            return
        if not self._sent_since_tick and self.transport is not None:
            self.transport.write(HEARTBEAT_FRAME)
        self._sent_since_tick = False
        self._timer = self.broker.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    def _paused_liveness(self) -> bool:
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
        if self.flow_paused or self.sharing or (self.blocked and self.has_published):
            return True
        transport = self.transport
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
        if self.state == "closed" or self.transport is None or not self.reading_paused:
            return
        if _peer_gone(self.transport):
            log.info("closing AMQP connection %s (client closed the TCP connection while "
                     "blocked)", self.name)
            self.transport.abort()  # connection_lost cleans up
            return
        self._peer_timer = self.broker.loop.call_later(PEER_CHECK, self._watch_peer)

    # -- resource alarms -------------------------------------------------------------
    def on_memory_alarm(self, active: bool) -> None:
        if self.state != "running":
            return
        notify = bool(self.capabilities.get("connection.blocked"))
        if active and not self.blocked:
            self.blocked = True
            if notify:
                self.send_method(0, m.ConnectionBlocked(reason="low on memory"))
            # Connections that publish stop being read; pure consumers keep going.
            self._update_reading()
        elif not active and self.blocked:
            self.blocked = False
            if notify:
                self.send_method(0, m.ConnectionUnblocked())
            self._update_reading()

    def on_publish(self) -> None:
        """First publish while a resource alarm is on: stop reading this connection."""
        self.has_published = True
        if self.blocked:
            self._update_reading()

    # -- closing -----------------------------------------------------------------
    def _hard_error(self, exc: AMQPError) -> None:
        if self.state in ("closing", "closed"):
            return
        if self.state in ("header", "start_ok", "tune_ok") and exc.code != rc.ACCESS_REFUSED:
            log.error("closing connection %s during handshake: %s", self.name, exc.text)
        else:
            log.error("Error on AMQP connection %s (vhost '%s', user '%s'): %s", self.name,
                      self.vhost.name if self.vhost else "", self.user.name if self.user else "",
                      exc.text)
        self.close(exc.code, exc.text, exc.class_id, exc.method_id)

    def close(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Server-initiated Connection.Close; the socket closes on CloseOk (or after the
        closing timeout, closing.py)."""
        if self.state in ("closing", "closed"):
            return
        self._release_channels()
        self.send_method(0, m.ConnectionClose(reply_code=code, reply_text=text,
                                              class_id=class_id, method_id=method_id))
        self.flush()
        self.state = "closing"
        # Everything but close-ok is read and dropped until it comes (spec), for as
        # long as RabbitMQ waits (closing.py).
        keep_reading(self)
        self._close_timer = self.broker.loop.call_later(closing_timeout(self.heartbeat),
                                                        self._finish_close)

    def _finish_close(self) -> None:
        self.state = "closed"
        self._cleanup()
        if self.transport is not None:
            self.transport.close()

    def _release_channels(self) -> None:
        for ch in list(self.channels.values()):
            ch.release()
        self.channels.clear()

    def _cleanup(self) -> None:
        self._release_channels()
        for q in list(self.exclusive_queues):
            q.vhost.delete_queue(q, reason="owner closed")
        self.exclusive_queues.clear()
        for t in (self._timer, self._handshake_timer, self._close_timer, self._peer_timer):
            if t is not None:
                t.cancel()
        self._timer = self._handshake_timer = self._close_timer = self._peer_timer = None
        self.broker.connections.discard(self)

    # -- used by channels -----------------------------------------------------------
    def channel_closed(self, number: int) -> None:
        self.channels.pop(number, None)

    def channel_error(self, number: int, exc: ChannelError) -> None:
        log.error("Channel error on connection %s, channel %d: %s", self.name, number, exc.text)
