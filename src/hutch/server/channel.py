"""One AMQP channel: content assembly, consumers, delivery tags, qos, confirms, tx.

A channel error (``ChannelError``) closes only this channel: we send
channel.close, forget its consumers, requeue its unacked messages, and ignore
every frame but channel.close/close-ok until the client answers.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..admin.stats import fold_into_totals
from ..broker.consumer import Consumer
from ..broker.expiration import parse_expiration
from ..broker.message import Message
from ..broker.permissions import CONFIGURE, READ, WRITE
from ..broker.queue import REJECT_PUBLISH_DLX
from ..broker.vhost import server_named
from ..errors import AMQPError, ChannelError, HardError
from ..protocol import constants as rc
from ..protocol import fast
from ..protocol import methods as m
from ..protocol.codec import DecodeError
from ..protocol.frames import body_frames, header_frame, method_frame
from ..protocol.properties import peek
from ..protocol.state import ENDING
from . import direct_reply
from .replies import HeldReplies

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("hutch.channel")

_PUBLISH_IDS = b"\x00\x3c\x00\x28"
_ACK_IDS = b"\x00\x3c\x00\x50"
_u64 = struct.Struct(">Q")


class Channel:
    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.number = number
        self.vhost = conn.vhost
        self.closing = False
        self.flow_active = True
        # Answers to durable changes wait for the definitions write (replies.py).
        store = conn.broker.store
        self._defs = store.definitions if store is not None else None
        self._defs_before: int | None = None  # definitions version when the method began
        self._held = HeldReplies(self._defs, self._definitions_failed)
        self.consumers: dict[str, Consumer] = {}
        # While this channel deletes a queue: tags of its own consumers the deletion
        # cancelled, notified after queue.delete-ok (see _m_queue_delete).
        self._cancel_after_delete: list[str] | None = None
        # Direct reply-to (direct_reply.py): (token, consumer) while this channel
        # consumes from amq.rabbitmq.reply-to.
        self.reply_consumer: tuple[str, Consumer] | None = None
        # delivery tag -> Message, in tag order (OrderedDict pops from the front in O(1)).
        self.unacked: OrderedDict[int, Message] = OrderedDict()
        self.next_tag = 1
        self.prefetch_global = 0  # basic.qos global=true: shared by the channel's consumers
        self.prefetch_consumer = 0  # basic.qos global=false: for consumers created later
        # Content assembly for basic.publish: (exchange, routing_key, mandatory) then header, body.
        self._publish: tuple[str, str, bool] | None = None
        self._header: bytes | None = None
        self._body_size = 0
        self._body_parts: list[bytes] = []
        self._body_len = 0
        # Bytes of a multi-frame body received so far, counted by the memory alarm while
        # they come in (up to max_message_size per channel, so they matter).
        self._body_counted = 0
        # Publisher confirms.
        self.confirm = False
        self.publish_seq = 0
        self._acks: list[int] = []
        self._nacks: list[int] = []
        self._in_flight: set[int] = set()  # confirmed seqs still waiting for the store
        # Stored publishes of this loop turn whose confirm waits for the disk: handed to
        # the store as one group (one callback per turn, not a closure per message).
        # _unsynced_nack: stored in one queue but refused by another (reject-publish).
        self._unsynced: list[int] = []
        self._unsynced_nack: list[int] = []
        self._store_failures = 0  # the store's failure count at the group's first add
        # Deliveries: (exchange, routing key) -> both shortstr-encoded, back to back.
        self._route_enc: dict[tuple[str, str], bytes] = {}
        self.confirms_pending = False
        # Transactions.
        self.tx = False
        # (exchange, routing key, mandatory, header, body, persistent, ttl seconds or None)
        self._tx_publishes: list[tuple[str, str, bool, bytes, bytes, bool, float | None]] = []
        self._tx_acks: list[tuple[str, list[Message]]] = []
        # Message counters for the management API and /metrics (RabbitMQ's
        # channel message_stats).  Plain ints keep the hot path cheap; release()
        # folds them into the broker-wide totals (admin/stats.py).
        self.stat_publish = 0
        self.stat_confirm = 0
        self.stat_deliver = 0
        self.stat_deliver_no_ack = 0
        self.stat_get = 0
        self.stat_get_no_ack = 0
        self.stat_get_empty = 0
        self.stat_ack = 0
        self.stat_redeliver = 0
        self.stat_return_unroutable = 0
        self.stat_drop_unroutable = 0

    # -- frame entry point ------------------------------------------------------
    def handle_frame(self, ftype: int, payload: bytes) -> None:
        if self.closing:
            # Waiting for close-ok: everything but close/close-ok is dropped (spec 2.3.5.2).
            if ftype == rc.FRAME_METHOD and payload[:4] in (b"\x00\x14\x00\x29", b"\x00\x14\x00\x28"):
                if payload[:4] == b"\x00\x14\x00\x28":
                    # Both sides closed at once: our close (perhaps still held behind a
                    # declare-ok) goes first, then close-ok, then the number is free.
                    self._reply(m.ChannelCloseOk(),
                                then=lambda: self.conn.channel_closed(self.number))
                else:
                    self.conn.channel_closed(self.number)
            return
        try:
            if ftype == rc.FRAME_METHOD:
                if self._publish is not None:
                    exc = HardError(
                        rc.UNEXPECTED_FRAME,
                        "expected content header for class 60, got non content header frame instead")
                    exc.class_id, exc.method_id = 60, 40
                    raise exc
                ids = payload[:4]
                if ids == _PUBLISH_IDS:
                    self._on_publish(payload)
                elif ids == _ACK_IDS:
                    tag, bits = fast.decode_ack(payload)
                    self._on_ack(tag, bool(bits & 1))
                else:
                    self._on_method(payload)
            elif ftype == rc.FRAME_HEADER:
                self._on_header(payload)
            elif ftype == rc.FRAME_BODY:
                self._on_body(payload)
        except ChannelError as exc:
            if not exc.class_id:
                if ftype == rc.FRAME_METHOD and len(payload) >= 4:
                    exc.class_id, exc.method_id = struct.unpack_from(">HH", payload, 0)
                else:  # found while assembling content: it belongs to basic.publish
                    exc.class_id, exc.method_id = 60, 40
            self.error(exc)
        except AMQPError as exc:
            if not exc.class_id and ftype == rc.FRAME_METHOD and len(payload) >= 4:
                exc.class_id, exc.method_id = struct.unpack_from(">HH", payload, 0)
            raise
        except DecodeError as exc:  # 502, or 501 for a name that is not UTF-8 (class 0)
            raise HardError(exc.code, str(exc)) from None

    def error(self, exc: ChannelError) -> None:
        """Close this channel with a soft error; the connection lives on."""
        self.conn.channel_error(self.number, exc)
        self.release()
        self.closing = True
        self._reply(m.ChannelClose(reply_code=exc.code, reply_text=exc.text,
                                   class_id=exc.class_id, method_id=exc.method_id))

    # -- publishing -----------------------------------------------------------------
    def _on_publish(self, payload: bytes) -> None:
        exchange, routing_key, mandatory, immediate = fast.decode_publish(payload)
        if immediate:
            # RabbitMQ never implemented immediate; it closes the connection.
            raise HardError(rc.NOT_IMPLEMENTED, "immediate=true")
        if not self.conn.access.allowed("exchange", exchange or "amq.default", WRITE):
            # RabbitMQ checks write permission before the exchange exists; the
            # error is reported once the content frames are swallowed.
            self._publish = ("\x00denied", exchange, False)
            self.conn.on_publish()
            return
        ex = self.vhost.exchanges.get(exchange)
        if ex is None:
            # Reported now, but the content frames still follow: swallow them first.
            self._publish = ("\x00missing", exchange, False)
        else:
            if ex.internal:
                raise ChannelError(rc.ACCESS_REFUSED,
                                   f"cannot publish to internal exchange '{exchange}' in vhost "
                                   f"'{self.vhost.name}'")
            self._publish = (exchange, routing_key, mandatory)
        self.conn.on_publish()

    def _on_header(self, payload: bytes) -> None:
        if self._publish is None or self._header is not None:
            raise HardError(rc.UNEXPECTED_FRAME,
                                   "expected method frame, got non method frame instead")
        if len(payload) < 14:
            raise HardError(rc.FRAME_ERROR, "content header frame too short")
        class_id, _weight, body_size = struct.unpack_from(">HHQ", payload, 0)
        if class_id != 60:
            exc = HardError(rc.UNEXPECTED_FRAME, "expected content header for class 60, "
                                   f"got one for class {class_id} instead")
            exc.class_id, exc.method_id = 60, 40
            raise exc
        max_size = self.conn.broker.max_message_size
        if body_size > max_size:
            self._reset_content()
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"message size {body_size} is larger than configured max size "
                               f"{max_size}")
        self._header = payload
        self._body_size = body_size
        if body_size == 0:
            self._complete_publish(b"")

    def _on_body(self, payload: bytes) -> None:
        if self._header is None:
            raise HardError(rc.UNEXPECTED_FRAME,
                                   "expected method frame, got non method frame instead")
        self._body_parts.append(payload)
        self._body_len += len(payload)
        if self._body_len >= self._body_size:
            if self._body_len > self._body_size:
                raise HardError(rc.FRAME_ERROR, "content body larger than declared")
            parts = self._body_parts
            if len(parts) == 1:
                self._complete_publish(parts[0])
                return
            # Uncounted only once the queues have counted the whole body, so the total
            # never dips below the watermark in between (which would flap the alarm).
            counted, self._body_counted = self._body_counted, 0
            try:
                self._complete_publish(b"".join(parts))
            finally:
                self.conn.broker.account(-counted)
        else:
            self._body_counted += len(payload)
            self.conn.broker.account(len(payload))

    def _reset_content(self) -> None:
        self._publish = None
        self._header = None
        self._body_parts = []
        self._body_len = 0
        if self._body_counted:  # a body abandoned half-way (the channel closes)
            self.conn.broker.account(-self._body_counted)
            self._body_counted = 0

    def _complete_publish(self, body: bytes) -> None:
        assert self._publish is not None and self._header is not None
        exchange, routing_key, mandatory = self._publish
        header = self._header
        self._reset_content()
        if exchange == "\x00denied":
            try:
                self.conn.access.check("exchange", routing_key, WRITE)
            except ChannelError as exc:
                exc.class_id, exc.method_id = 60, 40
                raise
        if exchange == "\x00missing":
            exc = ChannelError(rc.NOT_FOUND, f"no exchange '{routing_key}' in vhost '{self.vhost.name}'")
            exc.class_id, exc.method_id = 60, 40  # reported for the publish, not the content frame
            raise exc
        delivery_mode, expiration, _has_headers, user_id = peek(header[12:])
        if header[12] & direct_reply.REPLY_TO_FLAG_HIGH and direct_reply.MARK in header:
            header = direct_reply.rewrite_reply_to(self, header)
        if user_id is not None and user_id != self.conn.user.name:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"user_id property set to '{user_id}' but authenticated user "
                               f"was '{self.conn.user.name}'")
        ttl = None  # seconds; the clock starts when the message is routed
        if expiration is not None:  # 0 .. 10 years, or 406 with RabbitMQ's text
            ttl = parse_expiration(expiration) / 1000.0
        self.stat_publish += 1
        if self.confirm:
            self.publish_seq += 1
        if self.tx:
            self._tx_publishes.append((exchange, routing_key, mandatory, header, body,
                                       delivery_mode == 2, ttl))
            return
        self._route(exchange, routing_key, mandatory, header, body, delivery_mode == 2,
                    None if ttl is None else time.monotonic() + ttl,
                    self.publish_seq if self.confirm else 0)

    def _route(self, exchange: str, routing_key: str, mandatory: bool, header: bytes,
               body: bytes, persistent: bool, expires_at: float | None, seq: int) -> bool:
        """Route and enqueue one message; True if the store now holds a copy."""
        vhost = self.vhost
        ex = vhost.exchanges.get(exchange)
        if ex is vhost.default_exchange:
            # The work-queue case, kept short: no bindings, no alternate exchange.
            q = vhost.queues.get(routing_key)
            queues = [q] if q is not None else []
            if q is None and routing_key.startswith(direct_reply.PREFIX):
                # Never counted as routed (a mandatory reply also comes back), as in
                # RabbitMQ's rabbit_exchange:route.
                direct_reply.deliver_reply(self, routing_key, header, body)
        else:
            queues = vhost.route(ex, routing_key, header) if ex is not None else []
        rejected = False
        stored = False
        if not queues:
            if mandatory:
                self.stat_return_unroutable += 1
                self.conn.write_many([
                    method_frame(self.number, m.BasicReturn(
                        reply_code=rc.NO_ROUTE, reply_text="NO_ROUTE", exchange=exchange,
                        routing_key=routing_key).encode()),
                    header_frame(self.number, header),
                    *body_frames(self.number, body, self.conn.frame_max),
                ])
            else:
                self.stat_drop_unroutable += 1
        else:
            for q in queues:
                if q.would_overflow(len(body)):
                    rejected = True
                    if q.overflow == REJECT_PUBLISH_DLX and q.dlx is not None:
                        vhost.dead_letter(q, Message(exchange, routing_key, header, body,
                                                     persistent, expires_at), "maxlen")
                    continue
                msg = Message(exchange, routing_key, header, body, persistent, expires_at)
                q.enqueue(msg)
                self.conn.fed_queues.add(q)
                if msg.store_ref is not None:
                    stored = True
        if seq:
            if stored:
                # The storage seam: confirm only once the store says it is on disk.
                self._in_flight.add(seq)
                if not self._unsynced and not self._unsynced_nack:
                    self.conn.broker.loop.call_soon(self._wait_for_disk)
                    self._store_failures = self.conn.broker.store.failures
                (self._unsynced_nack if rejected else self._unsynced).append(seq)
            else:
                self._settle_confirm(seq, rejected)
        return stored

    def _wait_for_disk(self) -> None:
        """Hand this turn's stored publishes to the store as one group.  It runs after
        they were all added, so ``when_durable`` puts the callback on the batch that
        holds the last of them or a later one — the store writes batches in order, so
        none is confirmed before it is on disk."""
        acks, nacks = self._unsynced, self._unsynced_nack
        self._unsynced, self._unsynced_nack = [], []
        self.conn.broker.store.when_durable(lambda ok: self._settle_synced(acks, nacks, ok),
                                            since=self._store_failures)

    def _settle_synced(self, acks: list[int], nacks: list[int], ok: bool) -> None:
        self._in_flight.difference_update(acks)
        self._in_flight.difference_update(nacks)
        self.stat_confirm += len(acks) + len(nacks)
        (self._acks if ok else self._nacks).extend(acks)
        self._nacks.extend(nacks)
        if not self.confirms_pending:
            self.confirms_pending = True
            self.conn.broker.pump.conn_dirty(self.conn)

    def _settle_confirm(self, seq: int, rejected: bool) -> None:
        self._in_flight.discard(seq)
        self.stat_confirm += 1
        (self._nacks if rejected else self._acks).append(seq)
        if not self.confirms_pending:
            self.confirms_pending = True
            self.conn.broker.pump.conn_dirty(self.conn)

    def emit_confirms(self) -> None:
        """Send pending basic.ack/nack to a confirming publisher, coalesced.

        One ``multiple=true`` ack covers a run of successes; if the batch holds a
        nack, or an older publish still waits for the disk, everything is sent
        one by one so no nacked or unsynced tag is ever covered.
        """
        self.confirms_pending = False
        acks, nacks = self._acks, self._nacks
        self._acks, self._nacks = [], []
        if not acks and not nacks:
            return
        n = self.number
        if not nacks and not (self._in_flight and min(self._in_flight) < max(acks)):
            if len(acks) == 1:
                self.conn.write(fast.confirm_frame(n, acks[0], False))
            else:
                self.conn.write(fast.confirm_frame(n, max(acks), True))
            return
        frames = [fast.confirm_frame(n, t, False) for t in acks]
        frames += [fast.confirm_frame(n, t, False, nack=True) for t in nacks]
        self.conn.write_many(frames)

    # -- delivering -------------------------------------------------------------
    def can_deliver(self) -> bool:
        if not self.flow_active or self.conn.flow.write_paused or self.closing:
            return False
        return not self.prefetch_global or len(self.unacked) < self.prefetch_global

    def can_deliver_no_ack(self) -> bool:
        return self.flow_active and not self.conn.flow.write_paused and not self.closing

    def deliver(self, consumer: Consumer, msg: Message) -> None:
        tag = self.next_tag
        self.next_tag = tag + 1
        if not consumer.no_ack:
            self.unacked[tag] = msg
            self.stat_deliver += 1
        else:
            self.stat_deliver_no_ack += 1
        if msg.redelivered:
            self.stat_redeliver += 1
        conn = self.conn
        n = self.number
        # A work queue delivers one routing key over and over: encode it once.
        key = (msg.exchange, msg.routing_key)
        route = self._route_enc.get(key)
        if route is None:
            if len(self._route_enc) >= 1024:
                self._route_enc.clear()
            route = self._route_enc[key] = fast.shortstr(msg.exchange) + fast.shortstr(msg.routing_key)
        body = msg.body
        if len(body) <= conn.frame_max - 8:
            conn.write(fast.delivery(n, consumer.tag_enc, tag, msg.redelivered, route, msg.header, body))
            return
        conn.write_many([
            fast.deliver_frame(n, consumer.tag_enc, tag, msg.redelivered, route),
            header_frame(n, msg.header),
            *body_frames(n, body, conn.frame_max),
        ])

    def redispatch(self) -> None:
        """Capacity came back (ack, qos, flow, socket drained): wake our queues."""
        pump = self.conn.broker.pump
        for c in self.consumers.values():
            pump.queue_dirty(c.queue)

    def cancel_by_server(self, consumer: Consumer) -> None:
        """The queue went away: tell the client if it understands basic.cancel."""
        self.consumers.pop(consumer.tag, None)
        if self._cancel_after_delete is not None:
            self._cancel_after_delete.append(consumer.tag)
        elif self.conn.capabilities.get("consumer_cancel_notify") and not self.closing:
            self.conn.send_method(self.number, m.BasicCancel(consumer_tag=consumer.tag, nowait=True))

    # -- acknowledgements ------------------------------------------------------------
    def _take(self, tag: int, multiple: bool) -> list[tuple[int, Message]]:
        """Remove and return (tag, message) for every unacked message an
        ack/nack/reject with ``tag`` covers; ``multiple`` with tag 0 means all."""
        unacked = self.unacked
        if multiple:
            if tag == 0:
                taken = list(unacked.items())
                unacked.clear()
                return taken
            taken = []
            while unacked:
                if next(iter(unacked)) > tag:
                    break
                taken.append(unacked.popitem(last=False))
            if not taken and tag >= self.next_tag:
                raise ChannelError(rc.PRECONDITION_FAILED, f"unknown delivery tag {tag}")
            return taken
        msg = unacked.pop(tag, None)
        if msg is None:
            raise ChannelError(rc.PRECONDITION_FAILED, f"unknown delivery tag {tag}")
        return [(tag, msg)]

    def _on_ack(self, tag: int, multiple: bool) -> None:
        taken = self._take(tag, multiple)
        if self.tx:
            self._tx_acks.append(("ack", taken))
            return
        self.stat_ack += len(taken)
        for _tag, msg in taken:
            q = msg.queue
            if q is not None:
                q.ack(msg)

    def _settle_negative(self, msgs: list[Message], requeue: bool) -> None:
        if requeue:
            by_queue: dict[Any, list[Message]] = {}
            for msg in msgs:
                if msg.queue is not None:
                    by_queue.setdefault(msg.queue, []).append(msg)
            for q, group in by_queue.items():
                q.requeue(group)
        else:
            for msg in msgs:
                if msg.queue is not None:
                    msg.queue.reject(msg)

    # -- channel teardown -----------------------------------------------------------
    def release(self) -> None:
        """Forget consumers and requeue everything unacked (channel or connection closing)."""
        for c in list(self.consumers.values()):
            c.queue.remove_consumer(c)
        self.consumers.clear()
        direct_reply.forget(self)
        if self.unacked:
            msgs = list(self.unacked.values())
            self.unacked.clear()
            self._settle_negative(msgs, requeue=True)
        for _kind, taken in self._tx_acks:
            self._settle_negative([msg for _t, msg in taken], requeue=True)
        self._tx_acks.clear()
        self._tx_publishes.clear()
        self._reset_content()
        fold_into_totals(self)

    # -- every other method -------------------------------------------------------------
    def _on_method(self, payload: bytes) -> None:
        try:
            method = m.decode_method(payload)
        except KeyError:
            raise HardError(rc.COMMAND_INVALID, "unknown method") from None
        handler = getattr(self, "_m_" + method.NAME.replace(".", "_"), None)
        if handler is None:
            raise HardError(rc.COMMAND_INVALID,
                                   f"method '{method.NAME}' not allowed on a channel")
        if self._defs is None:
            handler(method)
            return
        self._defs_before = self._defs.version
        try:
            handler(method)
        finally:
            self._defs_before = None

    def _reply(self, method: m.Method, then: Callable[[], None] | None = None) -> None:
        """Send ``method`` (then run ``then``), after every reply held before it and,
        if the method being handled changed durable definitions, once they are on disk."""
        if not self._conn_open():
            return  # after connection.close (either side's) only close/close-ok may go out
        defs = self._defs
        if defs is not None:
            changed = self._defs_before is not None and defs.version != self._defs_before
            if changed or self._held:
                def send() -> None:
                    if self.conn.state in ENDING:
                        return  # the connection was closed meanwhile: nothing more goes out
                    self.conn.send_method(self.number, method)
                    if then is not None:
                        then()
                self._held.hold(defs.version if changed else 0, send)
                return
        self.conn.send_method(self.number, method)
        if then is not None:
            then()

    def _in_order(self, action: Callable[[], None]) -> None:
        """Run ``action`` (which writes to the client) after the replies held so far."""
        if self._held:
            self._held.hold(0, lambda: self._conn_open() and action())
        elif self._conn_open():
            action()

    def _conn_open(self) -> bool:
        return self.conn.state not in ENDING

    def _definitions_failed(self, error: OSError | None) -> None:
        # Never answer declare-ok for something that would not survive a restart:
        # the connection is closed with 541 instead, as when the disk fails a commit.
        why = (error.strerror or str(error)) if error is not None else "unknown error"
        self.conn.close(rc.INTERNAL_ERROR, f"INTERNAL_ERROR - could not write definitions: {why}")

    # channel class
    def _m_channel_open(self, method: Any) -> None:
        raise HardError(rc.CHANNEL_ERROR, "second 'channel.open' seen")

    def _m_channel_flow(self, method: Any) -> None:
        if not method.active:
            # RabbitMQ does not let a client pause deliveries with channel.flow
            # (use basic.qos); it closes the connection with 540.  We follow it.
            raise HardError(rc.NOT_IMPLEMENTED, "active=false")
        self.flow_active = method.active
        self._reply(m.ChannelFlowOk(active=method.active))
        if method.active:
            self.redispatch()

    def _m_channel_flow_ok(self, method: Any) -> None:
        pass

    def _m_channel_close(self, method: Any) -> None:
        self.release()
        self._reply(m.ChannelCloseOk(), then=lambda: self.conn.channel_closed(self.number))

    def _m_channel_close_ok(self, method: Any) -> None:
        self.conn.channel_closed(self.number)

    # exchange class
    def _m_exchange_declare(self, method: Any) -> None:
        if not method.passive:
            self.conn.access.check_exchange_declare(method.exchange, method.arguments)
        self.vhost.declare_exchange(method.exchange, method.type, method.passive, method.durable,
                                    method.auto_delete, method.internal, method.arguments)
        if not method.nowait:
            self._reply(m.ExchangeDeclareOk())

    def _m_exchange_delete(self, method: Any) -> None:
        self.conn.access.check_exchange_delete(method.exchange)
        self.vhost.delete_exchange(method.exchange, method.if_unused)
        if not method.nowait:
            self._reply(m.ExchangeDeleteOk())

    def _m_exchange_bind(self, method: Any) -> None:
        self.conn.access.check_binding("exchange", method.destination, method.source)
        self.vhost.bind_exchange(method.destination, method.source, method.routing_key,
                                 method.arguments)
        if not method.nowait:
            self._reply(m.ExchangeBindOk())

    def _m_exchange_unbind(self, method: Any) -> None:
        self.conn.access.check_binding("exchange", method.destination, method.source)
        self.vhost.unbind_exchange(method.destination, method.source, method.routing_key,
                                   method.arguments)
        if not method.nowait:
            self._reply(m.ExchangeUnbindOk())

    # queue class
    def _m_queue_declare(self, method: Any) -> None:
        if method.queue.startswith(direct_reply.PSEUDO_QUEUE):
            direct_reply.declare(self, method)
            return
        if not method.passive:
            self.conn.access.check_queue_declare(method.queue, method.arguments)
        q = self.vhost.declare_queue(method.queue, method.passive, method.durable,
                                     method.exclusive, method.auto_delete, method.arguments,
                                     self.conn)
        if not method.nowait:
            self._reply(m.QueueDeclareOk(queue=q.name, message_count=q.message_count,
                                         consumer_count=q.consumer_count))

    def _m_queue_bind(self, method: Any) -> None:
        self.conn.access.check_binding("queue", method.queue, method.exchange)
        self.vhost.bind_queue(method.queue, method.exchange, method.routing_key, method.arguments,
                              self.conn)
        if not method.nowait:
            self._reply(m.QueueBindOk())

    def _m_queue_unbind(self, method: Any) -> None:
        self.conn.access.check_binding("queue", method.queue, method.exchange)
        self.vhost.unbind_queue(method.queue, method.exchange, method.routing_key,
                                method.arguments, self.conn)
        self._reply(m.QueueUnbindOk())

    def _m_queue_purge(self, method: Any) -> None:
        self.conn.access.check("queue", method.queue, READ)
        q = self.vhost.get_queue(method.queue, self.conn)
        count = q.purge()
        if not method.nowait:
            self._reply(m.QueuePurgeOk(message_count=count))

    def _m_queue_delete(self, method: Any) -> None:
        self.conn.access.check("queue", method.queue, CONFIGURE)
        # RabbitMQ answers delete-ok before it cancels this channel's own consumers of the
        # queue (py-amqp raises ConsumerCancelled out of queue_delete() otherwise).
        self._cancel_after_delete = []
        try:
            count = self.vhost.delete_queue_by_name(method.queue, method.if_unused,
                                                    method.if_empty, self.conn)
        finally:
            tags, self._cancel_after_delete = self._cancel_after_delete, None

        def cancel() -> None:
            if self.conn.capabilities.get("consumer_cancel_notify") and not self.closing:
                for tag in tags:
                    self.conn.send_method(self.number, m.BasicCancel(consumer_tag=tag, nowait=True))
        if not method.nowait:
            self._reply(m.QueueDeleteOk(message_count=count), then=cancel if tags else None)
        else:
            cancel()

    # basic class
    def _m_basic_qos(self, method: Any) -> None:
        if method.prefetch_size:
            raise HardError(rc.NOT_IMPLEMENTED,
                                   f"prefetch_size!=0 ({method.prefetch_size})")
        if method.global_:
            self.prefetch_global = method.prefetch_count
        else:
            self.prefetch_consumer = method.prefetch_count
        self._reply(m.BasicQosOk())
        self.redispatch()

    def _m_basic_consume(self, method: Any) -> None:
        if method.queue == direct_reply.PSEUDO_QUEUE:
            direct_reply.consume(self, method)
            return
        self.conn.access.check("queue", method.queue, READ)
        q = self.vhost.get_queue(method.queue, self.conn)
        tag = method.consumer_tag or server_named("amq.ctag-")
        if tag in self.consumers:
            raise HardError(rc.NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
        if q.exclusive_consumer is not None or (method.exclusive and q.consumers):
            raise ChannelError(rc.ACCESS_REFUSED, f"queue '{q.name}' in vhost "
                               f"'{self.vhost.name}' in exclusive use")
        consumer = Consumer(tag, self, q, method.no_ack, method.exclusive,
                            self.prefetch_consumer, method.arguments)
        self.consumers[tag] = consumer
        def start() -> None:
            # Only once consume-ok is out (it may wait behind a held declare-ok): a
            # delivery must never reach the client before the tag it names.
            if self.consumers.get(tag) is consumer:
                q.add_consumer(consumer)

        if not method.nowait:
            self._reply(m.BasicConsumeOk(consumer_tag=tag), then=start)
        else:
            self._in_order(start)

    def _m_basic_cancel(self, method: Any) -> None:
        if self.reply_consumer is not None and direct_reply.cancel(self, method):
            return
        consumer = self.consumers.pop(method.consumer_tag, None)
        if consumer is not None:
            consumer.queue.remove_consumer(consumer)
        if not method.nowait:
            self._reply(m.BasicCancelOk(consumer_tag=method.consumer_tag))

    def _m_basic_get(self, method: Any) -> None:
        self.conn.access.check("queue", method.queue, READ)
        q = self.vhost.get_queue(method.queue, self.conn)
        msg = q.get(method.no_ack)
        if msg is None:
            self.stat_get_empty += 1
            self._reply(m.BasicGetEmpty())
            return
        if method.no_ack:
            self.stat_get_no_ack += 1
        else:
            self.stat_get += 1
        if msg.redelivered:
            self.stat_redeliver += 1
        tag = self.next_tag
        self.next_tag += 1
        if not method.no_ack:
            self.unacked[tag] = msg
        n = self.number
        frames = [
            method_frame(n, m.BasicGetOk(delivery_tag=tag, redelivered=msg.redelivered,
                                         exchange=msg.exchange, routing_key=msg.routing_key,
                                         message_count=q.message_count).encode()),
            header_frame(n, msg.header),
        ]
        if msg.body:
            frames += body_frames(n, msg.body, self.conn.frame_max)
        self._in_order(lambda: self.conn.write_many(frames))

    def _m_basic_ack(self, method: Any) -> None:
        self._on_ack(method.delivery_tag, method.multiple)

    def _m_basic_reject(self, method: Any) -> None:
        self._negative(self._take(method.delivery_tag, False), method.requeue)

    def _m_basic_nack(self, method: Any) -> None:
        self._negative(self._take(method.delivery_tag, method.multiple), method.requeue)

    def _negative(self, taken: list[tuple[int, Message]], requeue: bool) -> None:
        if self.tx:
            self._tx_acks.append(("requeue" if requeue else "reject", taken))
            return
        self._settle_negative([msg for _t, msg in taken], requeue)

    def _m_basic_recover(self, method: Any) -> None:
        self._recover(method)
        self._reply(m.BasicRecoverOk())

    def _m_basic_recover_async(self, method: Any) -> None:
        self._recover(method)

    def _recover(self, method: Any) -> None:
        if not method.requeue:
            # RabbitMQ does not implement redelivery to the same consumer.
            raise HardError(rc.NOT_IMPLEMENTED, "requeue=false")
        msgs = list(self.unacked.values())
        self.unacked.clear()
        self._settle_negative(msgs, requeue=True)

    # confirm class
    def _m_confirm_select(self, method: Any) -> None:
        if self.tx:
            raise ChannelError(rc.PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        self.confirm = True
        if not method.nowait:
            self._reply(m.ConfirmSelectOk())

    # tx class
    def _m_tx_select(self, method: Any) -> None:
        if self.confirm:
            raise ChannelError(rc.PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        self.tx = True
        self._reply(m.TxSelectOk())

    def _m_tx_commit(self, method: Any) -> None:
        if not self.tx:
            raise ChannelError(rc.PRECONDITION_FAILED, "channel is not transactional")
        publishes, self._tx_publishes = self._tx_publishes, []
        acks, self._tx_acks = self._tx_acks, []
        stored = False
        store = self.conn.broker.store
        since = store.failures if store is not None else 0
        for exchange, routing_key, mandatory, header, body, persistent, ttl in publishes:
            expires_at = None if ttl is None else time.monotonic() + ttl
            stored |= self._route(exchange, routing_key, mandatory, header, body, persistent,
                                  expires_at, 0)
        for kind, taken in acks:
            if kind == "ack":
                for _tag, msg in taken:
                    if msg.queue is not None:
                        msg.queue.ack(msg)
            else:
                self._settle_negative([msg for _t, msg in taken], kind == "requeue")
        if stored:
            # commit-ok promises the same as a confirm: the messages are on disk.
            store.when_durable(self._commit_durable, since=since)
        else:
            self._reply(m.TxCommitOk())

    def _commit_durable(self, ok: bool) -> None:
        if ok:
            self._reply(m.TxCommitOk())
        else:
            # The promise of commit-ok cannot be kept: say so loudly rather than lie.
            self.conn.close(rc.INTERNAL_ERROR, "INTERNAL_ERROR - message store write failed; "
                            "the transaction was not made durable")

    def _m_tx_rollback(self, method: Any) -> None:
        if not self.tx:
            raise ChannelError(rc.PRECONDITION_FAILED, "channel is not transactional")
        self._tx_publishes = []
        # Acks are undone: the messages are unacked again, under their old tags.
        acks, self._tx_acks = self._tx_acks, []
        restored = dict(self.unacked)
        for _kind, taken in acks:
            restored.update(taken)
        self.unacked = OrderedDict(sorted(restored.items()))
        self._reply(m.TxRollbackOk())
