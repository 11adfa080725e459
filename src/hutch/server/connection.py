"""One client connection: handshake, authentication, heartbeats, frame routing.

The connection's state (``self.state``) moves only through the state machine in
``protocol/state.py``, which also says which connection-class methods each state
accepts; why the socket is not read at times is ``self.flow`` (``flow.py``).

``data_received`` only feeds the frame reader and handles every complete
frame of the read in one pass; outgoing frames are collected in ``_out`` and
written by ``flush`` once per loop turn (see ``broker/pump.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import platform
import struct
import time
from typing import Any

from ..broker import limits
from ..broker.node import Node
from ..broker.permissions import Access, vhost_access_allowed
from ..errors import AMQPError, ChannelError, HardError
from ..protocol import constants as rc
from ..protocol import methods as m
from ..protocol.codec import DecodeError, Utf8Error
from ..protocol.frames import HEARTBEAT_FRAME, FrameError, FrameReader, method_frame
from ..protocol.state import (
    CLOSED,
    CLOSING,
    ENDING,
    HANDSHAKE,
    PRE_INIT,
    RUNNING,
    STARTING,
    TUNING,
    Action,
    ConnState,
    Event,
    RemoteProtocolError,
    advance,
    channel_frame,
    method_action,
)
from ..version import RABBITMQ_VERSION, __version__
from .auth import AuthSettings, LoginRefusedError
from .channel import Channel
from .closing import closing_timeout, linger
from .flow import FlowControl

log = logging.getLogger("hutch.connection")

# The defaults; the node's own values are ``broker.limits`` (broker/limits.py).
CHANNEL_MAX = limits.CHANNEL_MAX
FRAME_MAX = limits.FRAME_MAX
HEARTBEAT = limits.HEARTBEAT
HANDSHAKE_TIMEOUT = limits.HANDSHAKE_TIMEOUT / 1000
DEFAULT_AUTH = AuthSettings()
# Errors in these states are logged as "during handshake": the user is not known yet,
# or (tuning) has just been; from opening on they name the vhost and user as RabbitMQ does.
_LOG_AS_HANDSHAKE = (PRE_INIT, STARTING, TUNING)

SERVER_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,  # broker/consumer_order.py
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


def _negotiated(field: str, minimum: int, server: int, client: int) -> None:
    """connection.tune-ok's value refused as RabbitMQ refuses it (530, 'connection.tune')."""
    if client != 0 and client < minimum:
        raise HardError(rc.NOT_ALLOWED, f"negotiated {field} = {client} is lower than the "
                                        f"minimum allowed value ({minimum})")
    if server != 0 and (client == 0 or client > server):
        detail = " (no limit)" if field == "channel_max" and client == 0 else ""
        raise HardError(rc.NOT_ALLOWED, f"negotiated {field} = {client}{detail} is higher "
                                        f"than the maximum allowed value ({server})")


class Connection(asyncio.Protocol):
    def __init__(self, broker: Node, auth: AuthSettings | None = None) -> None:
        self.broker = broker
        self.auth = auth or DEFAULT_AUTH
        self.tls = False  # accepted on a TLS listener (server/tls.py)
        self.transport: asyncio.Transport | None = None
        self.state: ConnState = PRE_INIT  # changed by _advance only
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
        self.exclusive_queues: list[Any] = []
        self.last_recv = time.monotonic()
        self._sent_since_tick = False
        self._timer: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        # Queues this connection published to since its reading was last allowed, for
        # publisher flow control (flow.py); channels add to it on every routed publish.
        self.fed_queues: set[Any] = set()
        self.flow = FlowControl(self)
        self.connected_at = time.time()
        # Bytes and socket reads/writes, RabbitMQ's recv_oct/recv_cnt/send_oct/send_cnt.
        self.recv_oct = self.recv_cnt = self.send_oct = self.send_cnt = 0

    # -- asyncio.Protocol --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.tls = transport.get_extra_info("ssl_object") is not None
        peer = transport.get_extra_info("peername") or ("?", 0)
        sock = transport.get_extra_info("sockname") or ("?", 0)
        self.peer_host = str(peer[0])
        self.name = f"{peer[0]}:{peer[1]} -> {sock[0]}:{sock[1]}"
        log.info("accepting AMQP connection %s", self.name)
        self.broker.connections.add(self)
        timeout = self.broker.limits.handshake_timeout
        if timeout is not None:
            self._handshake_timer = self.broker.loop.call_later(timeout / 1000,
                                                                self._handshake_timeout)

    def data_received(self, data: bytes) -> None:
        self.last_recv = time.monotonic()
        self.recv_oct += len(data)
        self.recv_cnt += 1
        state = self.state
        if state is PRE_INIT:
            self._receive_header(data)
            return
        if state is CLOSED:
            return
        self.reader.feed(data)
        started = time.perf_counter()
        try:
            frames = self.reader.frames()
        except FrameError as exc:
            self._hard_error(HardError(rc.FRAME_ERROR, str(exc)))
            return
        for ftype, channel, payload in frames:
            if self.state is CLOSED:
                break
            try:
                self._handle_frame(ftype, channel, payload)
            except AMQPError as exc:
                self._hard_error(exc)
            except Exception:  # a bug must not take the broker down with it
                log.exception("internal error on connection %s", self.name)
                self._hard_error(HardError(rc.INTERNAL_ERROR, "internal error"))
        if self.fed_queues and self.state is RUNNING:
            self.flow.after_read(time.perf_counter() - started)
        if self.reader.error_pending and self.state is not CLOSED:
            try:
                self.reader.frames()
            except FrameError as exc:
                self._hard_error(HardError(rc.FRAME_ERROR, str(exc)))
        if self._out:
            self.broker.pump.conn_dirty(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker.lingering.discard(self)
        if self.state is RUNNING or self.state is CLOSING:
            log.info("closing AMQP connection %s (%s)", self.name,
                     "client closed the TCP connection" if exc is None else exc)
        self._advance(Event.DROP)
        self._cleanup()

    def pause_writing(self) -> None:
        # The client is not reading what we send: stop reading what it sends
        # (a publisher gets TCP backpressure) and stop delivering to it.
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        for ch in self.channels.values():
            ch.redispatch()

    def _advance(self, event: Event) -> None:
        self.state = advance(self.state, event)

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
            self.send_oct += sum(map(len, self._out))
            self.send_cnt += 1
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
            self._advance(Event.DROP)
            self.transport.close()
            return
        self._header_buf = b""
        self._advance(Event.HEADER)
        self.send_method(0, m.ConnectionStart(
            version_major=0, version_minor=9, server_properties=server_properties(),
            mechanisms=self.auth.mechanisms_field(self.tls), locales=b"en_US"))
        rest = buf[8:]
        if rest:
            self.data_received(rest)
        self.flush()

    def _handshake_timeout(self) -> None:
        self._handshake_timer = None
        if self.state in HANDSHAKE:
            log.warning("closing AMQP connection %s: handshake timeout", self.name)
            self._advance(Event.DROP)
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
        if self.state is not RUNNING:  # the only state check per channel frame
            try:
                channel_frame(self.state)  # raises unless the frame is to be dropped
            except RemoteProtocolError as exc:
                raise HardError(exc.code, exc.detail) from None
            return
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
        # Like RabbitMQ, channel_max limits how many channels are open, not the
        # channel id; 0 is no limit.
        if self.channel_max and len(self.channels) >= self.channel_max:
            raise HardError(
                rc.NOT_ALLOWED,
                f"number of channels opened ({len(self.channels)}) has reached the "
                f"negotiated channel_max ({self.channel_max})")
        if self.user.limits or self.broker.users.users.get(self.user.name, self.user).limits:
            refusal = limits.channel_refusal(self.broker, self.user)
            if refusal is not None:
                raise HardError(rc.NOT_ALLOWED, refusal)
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
        try:
            action = method_action(self.state, method.CLASS_ID, method.METHOD_ID)
        except RemoteProtocolError as exc:
            raise HardError(exc.code, exc.detail) from None
        if action is Action.START_OK:
            self._start_ok(method)
        elif action is Action.TUNE_OK:
            self._tune_ok(method)
        elif action is Action.OPEN:
            self._open(method)
        elif action is Action.UPDATE_SECRET:
            self.send_method(0, m.ConnectionUpdateSecretOk())
        elif action is Action.CLIENT_CLOSE:
            assert isinstance(method, m.ConnectionClose)
            self._client_close(method)
        elif action is Action.CLOSE_AGAIN:
            self.send_method(0, m.ConnectionCloseOk())
        elif action is Action.CLOSE_OK:
            self._advance(Event.CLOSE_OK)
            self.finish_close()

    def _client_close(self, method: m.ConnectionClose) -> None:
        log.info("closing AMQP connection %s (client requested: %s %s)", self.name,
                 method.reply_code, method.reply_text)
        self.send_method(0, m.ConnectionCloseOk())
        self.flush()
        self._advance(Event.CLIENT_CLOSE)
        self._cleanup()
        # Not closed yet: frames the client sent before it saw close-ok may still
        # come, and closing now would reset the connection (closing.py).
        self._close_timer = linger(self)

    def _start_ok(self, method: Any) -> None:
        self.client_properties = method.client_properties
        caps = method.client_properties.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        mechanism = method.mechanism
        self.auth.check_mechanism(mechanism, self.tls)
        try:
            username, user = self.auth.login(self.broker.users, mechanism, method.response,
                                             self.transport)
        except LoginRefusedError as exc:
            log.error("Error on AMQP connection %s, state: starting:\n%s login refused: %s",
                      self.name, mechanism, exc)
            self._refuse_login(mechanism)
            return
        if username in self.broker.users.loopback_only and not is_loopback(self.peer_host):
            log.error("Error on AMQP connection %s, state: starting:\nuser '%s' can only "
                      "connect via localhost", self.name, username)
            self._refuse_login(mechanism)
            return
        self.user = user
        self.auth_mechanism = mechanism
        self._advance(Event.LOGGED_IN)
        conf = self.broker.limits
        self.send_method(0, m.ConnectionTune(channel_max=conf.channel_max,
                                             frame_max=conf.frame_max, heartbeat=conf.heartbeat))

    def _refuse_login(self, mechanism: str) -> None:
        text = (f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
                "For details see the broker logfile.")
        if self.capabilities.get("authentication_failure_close"):
            self.send_method(0, m.ConnectionClose(reply_code=rc.ACCESS_REFUSED, reply_text=text))
            self.flush()
            self._advance(Event.SERVER_CLOSE)
            self._close_timer = self.broker.loop.call_later(1.0, self.finish_close)
        else:
            # Clients without the capability learn of it by the socket closing (spec).
            self.flush()
            self._advance(Event.DROP)
            if self.transport is not None:
                self.transport.close()

    def _tune_ok(self, method: Any) -> None:
        conf = self.broker.limits
        # rabbit_reader:validate_negotiated_integer_value: frame_max first.  The client's
        # value is taken as it is; 0 (no limit) only where the node has none either.
        _negotiated("frame_max", rc.FRAME_MIN_SIZE, conf.frame_max, method.frame_max)
        _negotiated("channel_max", 1, conf.channel_max, method.channel_max)
        self.channel_max = method.channel_max
        self.frame_max = method.frame_max
        self.reader.frame_max = self.frame_max
        self.heartbeat = method.heartbeat
        self._advance(Event.TUNED)
        if self.heartbeat:
            interval = self.heartbeat / 2
            self._timer = self.broker.loop.call_later(interval, self._heartbeat_tick)

    def _open(self, method: Any) -> None:
        vhost = self.broker.vhosts.get(method.virtual_host)
        if vhost is None:
            # RabbitMQ refuses after Open (not in Tune): 530 NOT_ALLOWED.
            raise HardError(rc.NOT_ALLOWED, f"vhost {method.virtual_host} not found")
        refusal = limits.connection_refusal(self.broker, vhost, self.user)
        if refusal is not None:
            raise HardError(rc.NOT_ALLOWED, refusal)
        if not vhost_access_allowed(self.broker.users, vhost.name, self.user.name):
            # RabbitMQ: no permission entry for the vhost at all -> 530 on open.
            raise HardError(rc.NOT_ALLOWED, f"access to vhost '{vhost.name}' refused for user "
                            f"'{self.user.name}'")
        self.access = Access(self.broker.users, vhost.name, self.user.name)
        self.vhost = vhost
        self._advance(Event.OPENED)
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        log.info("connection %s: user '%s' authenticated and granted access to vhost '%s'",
                 self.name, self.user.name, vhost.name)
        self.send_method(0, m.ConnectionOpenOk())
        if self.broker.resources.alarms:
            self.on_alarm(self.broker.resources.alarms)

    # -- heartbeats ------------------------------------------------------------
    def _heartbeat_tick(self) -> None:
        self._timer = None
        if self.state is CLOSED:
            return
        now = time.monotonic()
        if self.flow.reading_paused and self.flow.alive_while_paused():
            self.last_recv = now
        if now - self.last_recv > self.heartbeat * 2:
            log.error("closing AMQP connection %s: missed heartbeats from client, timeout: %ds",
                      self.name, self.heartbeat)
            self._advance(Event.DROP)
            self._cleanup()
            if self.transport is not None:
                self.transport.abort()
            return
        if not self._sent_since_tick and self.transport is not None:
            self.transport.write(HEARTBEAT_FRAME)
            self.send_oct += len(HEARTBEAT_FRAME)
            self.send_cnt += 1
        self._sent_since_tick = False
        self._timer = self.broker.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    # -- resource alarms -------------------------------------------------------------
    # As rabbit_reader (4.x): an alarm going on blocks no one by itself; a connection
    # that publishes while one is on is blocked then (no longer read; told with
    # connection.blocked "low on memory" / "low on disk" / "low on disk & memory" if it
    # has the capability), and unblocked once every alarm has cleared.  Connections
    # that only consume are never blocked, so they drain what raised the alarm.
    def on_alarm(self, alarms: frozenset[str]) -> None:
        """The node's resource alarms changed."""
        if self.state is not RUNNING:
            return
        flow = self.flow
        flow.alarms = alarms
        if alarms or not flow.blocked:
            return
        if flow.blocked_sent:
            flow.blocked_sent = False
            self.send_method(0, m.ConnectionUnblocked())
        flow.set_blocked(False)

    def on_publish(self) -> None:
        """Called for every basic.publish; the first while an alarm is on blocks."""
        flow = self.flow
        if flow.alarms and not flow.blocked:
            if self.capabilities.get("connection.blocked"):
                # rabbit_reader lists the alarms in term order: disk before memory.
                reason = "low on " + " & ".join(sorted(flow.alarms))
                self.send_method(0, m.ConnectionBlocked(reason=reason))
                flow.blocked_sent = True
            flow.set_blocked(True)

    # -- closing -----------------------------------------------------------------
    def _hard_error(self, exc: AMQPError) -> None:
        if self.state in ENDING:
            return
        if self.state in _LOG_AS_HANDSHAKE and exc.code != rc.ACCESS_REFUSED:
            log.error("closing connection %s during handshake: %s", self.name, exc.text)
        else:
            log.error("Error on AMQP connection %s (vhost '%s', user '%s'): %s", self.name,
                      self.vhost.name if self.vhost else "", self.user.name if self.user else "",
                      exc.text)
        self.close(exc.code, exc.text, exc.class_id, exc.method_id)

    def close(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Server-initiated Connection.Close; the socket closes on CloseOk (or after the
        closing timeout, closing.py)."""
        if self.state in ENDING:
            return
        self._release_channels()
        self.send_method(0, m.ConnectionClose(reply_code=code, reply_text=text,
                                              class_id=class_id, method_id=method_id))
        self.flush()
        self._advance(Event.SERVER_CLOSE)
        # Everything but close-ok is read and dropped until it comes (spec), for as
        # long as RabbitMQ waits (closing.py).
        self.flow.read_to_end()
        self._close_timer = self.broker.loop.call_later(closing_timeout(self.heartbeat),
                                                        self.finish_close)

    def finish_close(self) -> None:
        """Close the socket now (the closing timeout passed, close-ok came, or the
        broker stops)."""
        self._advance(Event.DROP)
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
        for t in (self._timer, self._handshake_timer, self._close_timer):
            if t is not None:
                t.cancel()
        self._timer = self._handshake_timer = self._close_timer = None
        self.flow.stop()
        self.broker.connections.discard(self)

    # -- used by channels -----------------------------------------------------------
    def channel_closed(self, number: int) -> None:
        self.channels.pop(number, None)

    def channel_error(self, number: int, exc: ChannelError) -> None:
        log.error("Channel error on connection %s, channel %d: %s", self.name, number, exc.text)
