"""One AMQP channel: it translates methods and frames into broker operations.

What it holds lives in small helpers: content.py reassembles basic.publish,
deliveries.py keeps consumers and unacked messages, confirms.py publisher confirms,
tx.py transactions; the broker's vhost routes and enqueues (``Vhost.publish``).

A channel error (``ChannelError``) closes only this channel: we send
channel.close, forget its consumers, requeue its unacked messages, and ignore
every frame but channel.close/close-ok until the client answers.
"""

from __future__ import annotations

import logging
import struct
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..broker.arguments import check_consume_args
from ..broker.consumer import Consumer
from ..broker.expiration import parse_expiration
from ..broker.message import Message
from ..broker.permissions import CONFIGURE, READ, WRITE
from ..broker.vhost import DIRECT_REPLY, ROUTED, PublishResult, server_named
from ..errors import AMQPError, ChannelError, HardError
from ..protocol import constants as rc
from ..protocol import fast
from ..protocol import methods as m
from ..protocol.codec import DecodeError
from ..protocol.frames import body_frames, header_frame, method_frame
from ..protocol.properties import peek
from . import ack_timeout, direct_reply
from .confirms import Confirms
from .content import ContentAssembler, Publish
from .counters import fold_into_totals
from .deliveries import Deliveries, Taken
from .replies import ChannelReplies
from .tx import Transaction

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("hutch.channel")

_PUBLISH_IDS = b"\x00\x3c\x00\x28"
_ACK_IDS = b"\x00\x3c\x00\x50"


class Channel:
    def __init__(self, conn: Connection, number: int) -> None:
        self.conn = conn
        self.number = number
        self.vhost = conn.vhost
        # The user's permissions in the vhost: set by connection.open, before any channel.
        access = conn.access
        assert access is not None
        self._access = access
        self.closing = False
        self.flow_active = True
        # Answers go out in order, those to durable changes once the definitions are
        # written (replies.py).  reply(method, then=None) sends one; in_order(action)
        # runs a write to the client after the replies held so far.
        self._replies = ChannelReplies(conn, number)
        self.reply = self._replies.reply
        self.in_order = self._replies.in_order
        self._content = ContentAssembler(conn.broker, self._complete_publish)
        self._deliveries = Deliveries()
        self.ack_timer: Any = None  # while timed deliveries are unacked (ack_timeout.py)
        # While this channel deletes a queue: tags of its own consumers the deletion
        # cancelled, notified after queue.delete-ok (see _m_queue_delete).
        self._cancel_after_delete: list[str] | None = None
        # Direct reply-to (direct_reply.py): (token, consumer) while this channel
        # consumes from amq.rabbitmq.reply-to.
        self.reply_consumer: tuple[str, Consumer] | None = None
        self.prefetch_global = 0  # basic.qos global=true: shared by the channel's consumers
        self.prefetch_consumer = 0  # basic.qos global=false: for consumers created later
        self.confirm = False  # confirm.select: publishes are confirmed (self._confirms)
        self._confirms = Confirms(self)
        self.tx = False  # tx.select: publishes and acks wait for commit (self._tx)
        self._tx = Transaction()
        # Deliveries: (exchange, routing key) -> both shortstr-encoded, back to back.
        self._route_enc: dict[tuple[str, str], bytes] = {}
        # Message counters for the management API and /metrics (RabbitMQ's
        # channel message_stats).  Plain ints keep the hot path cheap; release()
        # folds them into the broker-wide totals (counters.py), once.
        self.stats_folded = False
        self.stat_publish = self.stat_confirm = self.stat_ack = self.stat_redeliver = 0
        self.stat_deliver = self.stat_deliver_no_ack = 0
        self.stat_get = self.stat_get_no_ack = self.stat_get_empty = 0
        self.stat_return_unroutable = self.stat_drop_unroutable = 0

    # -- what the management API and /metrics read ------------------------------------
    @property
    def consumers(self) -> dict[str, Consumer]:
        return self._deliveries.consumers

    @property
    def deliveries(self) -> Deliveries:
        return self._deliveries

    @property
    def unacked(self) -> OrderedDict[int, Message]:
        return self._deliveries.unacked

    @property
    def messages_unconfirmed(self) -> int:
        return self._confirms.unconfirmed

    @property
    def messages_uncommitted(self) -> int:
        return self._tx.messages_uncommitted

    @property
    def acks_uncommitted(self) -> int:
        return self._tx.acks_uncommitted

    # -- frame entry point ------------------------------------------------------
    def handle_frame(self, ftype: int, payload: bytes) -> None:
        if self.closing:
            # Waiting for close-ok: everything but close/close-ok is dropped (spec 2.3.5.2).
            if ftype == rc.FRAME_METHOD and payload[:4] in (b"\x00\x14\x00\x29", b"\x00\x14\x00\x28"):
                if payload[:4] == b"\x00\x14\x00\x28":
                    # Both sides closed at once: our close (perhaps still held behind a
                    # declare-ok) goes first, then close-ok, then the number is free.
                    self.reply(m.ChannelCloseOk(),
                               then=lambda: self.conn.channel_closed(self.number))
                else:
                    self.conn.channel_closed(self.number)
            return
        try:
            if ftype == rc.FRAME_METHOD:
                if self._content.publish is not None:
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
                self._content.on_header(payload)
            elif ftype == rc.FRAME_BODY:
                self._content.on_body(payload)
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
        self.reply(m.ChannelClose(reply_code=exc.code, reply_text=exc.text,
                                  class_id=exc.class_id, method_id=exc.method_id))

    # -- publishing -----------------------------------------------------------------
    def _on_publish(self, payload: bytes) -> None:
        exchange, routing_key, mandatory, immediate = fast.decode_publish(payload)
        if immediate:
            # RabbitMQ never implemented immediate; it closes the connection.
            raise HardError(rc.NOT_IMPLEMENTED, "immediate=true")
        if not self._access.allowed("exchange", exchange or "amq.default", WRITE):
            # RabbitMQ checks write permission before the exchange exists; the
            # error is reported once the content frames are swallowed.
            self._content.begin(("\x00denied", exchange, False))
            self.conn.on_publish()
            return
        ex = self.vhost.exchanges.get(exchange)
        if ex is None:
            # Reported now, but the content frames still follow: swallow them first.
            self._content.begin(("\x00missing", exchange, False))
        else:
            if ex.internal:
                raise ChannelError(rc.ACCESS_REFUSED,
                                   f"cannot publish to internal exchange '{exchange}' in vhost "
                                   f"'{self.vhost.name}'")
            self._content.begin((exchange, routing_key, mandatory))
        self.conn.on_publish()

    def _complete_publish(self, publish: Publish, header: bytes, body: bytes) -> None:
        exchange, routing_key, mandatory = publish
        if exchange == "\x00denied":
            try:
                self._access.check("exchange", routing_key, WRITE)
            except ChannelError as exc:
                exc.class_id, exc.method_id = 60, 40
                raise
        if exchange == "\x00missing":
            missing = ChannelError(rc.NOT_FOUND,
                                   f"no exchange '{routing_key}' in vhost '{self.vhost.name}'")
            missing.class_id, missing.method_id = 60, 40  # for the publish, not the content frame
            raise missing
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
        if self.tx:
            self._tx.hold_publish((exchange, routing_key, mandatory, header, body,
                                   delivery_mode == 2, ttl))
            return
        self._publish_now(exchange, routing_key, mandatory, header, body, delivery_mode == 2,
                          None if ttl is None else time.monotonic() + ttl)

    def _publish_now(self, exchange: str, routing_key: str, mandatory: bool, header: bytes,
                     body: bytes, persistent: bool, expires_at: float | None) -> PublishResult:
        """Publish one message through the vhost and answer for it: the reply-to
        delivery, basic.return, the confirm (confirm and tx modes never mix, so a
        committed publish has none)."""
        result = self.vhost.publish(exchange, routing_key, header, body, persistent, expires_at,
                                    self.conn.fed_queues)
        if result & DIRECT_REPLY:
            direct_reply.deliver_reply(self, routing_key, header, body)
        if not result & ROUTED:
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
        if self.confirm:
            self._confirms.published(result)
        return result

    @property
    def confirms_pending(self) -> bool:
        return self._confirms.pending

    def emit_confirms(self) -> None:
        """Send pending basic.ack/nack (the connection calls this as it flushes)."""
        self._confirms.emit()

    # -- delivering -------------------------------------------------------------
    def can_deliver(self) -> bool:
        if not self.flow_active or self.conn.flow.write_paused or self.closing:
            return False
        return not self.prefetch_global or len(self._deliveries.unacked) < self.prefetch_global

    def can_deliver_no_ack(self) -> bool:
        return self.flow_active and not self.conn.flow.write_paused and not self.closing

    def deliver(self, consumer: Consumer, msg: Message) -> None:
        d = self._deliveries
        tag = d.next_tag
        d.next_tag = tag + 1
        if not consumer.no_ack:
            d.unacked[tag] = msg
            self.stat_deliver += 1
            if consumer.queue.ack_timeout is not None:
                ack_timeout.track(self, msg)
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
        for c in self._deliveries.consumers.values():
            pump.queue_dirty(c.queue)

    def cancel_by_server(self, consumer: Consumer) -> None:
        """The queue went away: tell the client if it understands basic.cancel."""
        self._deliveries.consumers.pop(consumer.tag, None)
        if self._cancel_after_delete is not None:
            self._cancel_after_delete.append(consumer.tag)
        elif self.conn.capabilities.get("consumer_cancel_notify") and not self.closing:
            self.conn.send_method(self.number, m.BasicCancel(consumer_tag=consumer.tag, nowait=True))

    # -- acknowledgements ------------------------------------------------------------
    def _on_ack(self, tag: int, multiple: bool) -> None:
        taken = self._deliveries.take(tag, multiple)
        if self.tx:
            self._tx.hold_settle("ack", taken)
            return
        self.stat_ack += len(taken)
        Deliveries.ack(taken)

    def _negative(self, taken: Taken, requeue: bool, failed: bool = False) -> None:
        # ``failed``: basic.reject's requeue counts as a failed delivery, nack's does
        # not (RabbitMQ 4.3, broker/redelivery.py).
        if self.tx:
            self._tx.hold_settle(("retry" if failed else "requeue") if requeue else "reject",
                                 taken)
            return
        Deliveries.settle_negative([msg for _t, msg in taken], requeue, failed)

    # -- channel teardown -----------------------------------------------------------
    def release(self) -> None:
        """Forget consumers and requeue everything unacked (channel or connection closing)."""
        self._deliveries.cancel_all()
        ack_timeout.stop(self)
        direct_reply.forget(self)
        self._deliveries.requeue_all(failed=True)
        self._tx.release()
        self._content.reset()
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
        self._replies.handle(handler, method)

    # channel class
    def _m_channel_open(self, method: Any) -> None:
        raise HardError(rc.CHANNEL_ERROR, "second 'channel.open' seen")

    def _m_channel_flow(self, method: Any) -> None:
        if not method.active:
            # RabbitMQ does not let a client pause deliveries with channel.flow
            # (use basic.qos); it closes the connection with 540.  We follow it.
            raise HardError(rc.NOT_IMPLEMENTED, "active=false")
        self.flow_active = method.active
        self.reply(m.ChannelFlowOk(active=method.active))
        if method.active:
            self.redispatch()

    def _m_channel_flow_ok(self, method: Any) -> None:
        pass

    def _m_channel_close(self, method: Any) -> None:
        self.release()
        self.reply(m.ChannelCloseOk(), then=lambda: self.conn.channel_closed(self.number))

    def _m_channel_close_ok(self, method: Any) -> None:
        self.conn.channel_closed(self.number)

    # exchange class
    def _m_exchange_declare(self, method: Any) -> None:
        if not method.passive:
            self._access.check_exchange_declare(method.exchange, method.arguments)
        self.vhost.declare_exchange(method.exchange, method.type, method.passive, method.durable,
                                    method.auto_delete, method.internal, method.arguments)
        if not method.nowait:
            self.reply(m.ExchangeDeclareOk())

    def _m_exchange_delete(self, method: Any) -> None:
        self._access.check_exchange_delete(method.exchange)
        self.vhost.delete_exchange(method.exchange, method.if_unused)
        if not method.nowait:
            self.reply(m.ExchangeDeleteOk())

    def _m_exchange_bind(self, method: Any) -> None:
        self._access.check_binding("exchange", method.destination, method.source)
        self.vhost.bind_exchange(method.destination, method.source, method.routing_key,
                                 method.arguments)
        if not method.nowait:
            self.reply(m.ExchangeBindOk())

    def _m_exchange_unbind(self, method: Any) -> None:
        self._access.check_binding("exchange", method.destination, method.source)
        self.vhost.unbind_exchange(method.destination, method.source, method.routing_key,
                                   method.arguments)
        if not method.nowait:
            self.reply(m.ExchangeUnbindOk())

    # queue class
    def _m_queue_declare(self, method: Any) -> None:
        if method.queue.startswith(direct_reply.PSEUDO_QUEUE):
            direct_reply.declare(self, method)
            return
        if not method.passive:
            self._access.check_queue_declare(method.queue, method.arguments)
        q = self.vhost.declare_queue(method.queue, method.passive, method.durable,
                                     method.exclusive, method.auto_delete, method.arguments,
                                     self.conn)
        if not method.nowait:
            self.reply(m.QueueDeclareOk(queue=q.name, message_count=q.message_count,
                                         consumer_count=q.consumer_count))

    def _m_queue_bind(self, method: Any) -> None:
        self._access.check_binding("queue", method.queue, method.exchange)
        self.vhost.bind_queue(method.queue, method.exchange, method.routing_key, method.arguments,
                              self.conn)
        if not method.nowait:
            self.reply(m.QueueBindOk())

    def _m_queue_unbind(self, method: Any) -> None:
        self._access.check_binding("queue", method.queue, method.exchange)
        self.vhost.unbind_queue(method.queue, method.exchange, method.routing_key,
                                method.arguments, self.conn)
        self.reply(m.QueueUnbindOk())

    def _m_queue_purge(self, method: Any) -> None:
        self._access.check("queue", method.queue, READ)
        q = self.vhost.get_queue(method.queue, self.conn)
        count = q.purge()
        if not method.nowait:
            self.reply(m.QueuePurgeOk(message_count=count))

    def _m_queue_delete(self, method: Any) -> None:
        self._access.check("queue", method.queue, CONFIGURE)
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
            self.reply(m.QueueDeleteOk(message_count=count), then=cancel if tags else None)
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
        self.reply(m.BasicQosOk())
        self.redispatch()

    def _m_basic_consume(self, method: Any) -> None:
        if method.queue == direct_reply.PSEUDO_QUEUE:
            direct_reply.consume(self, method)
            return
        self._access.check("queue", method.queue, READ)
        q = self.vhost.get_queue(method.queue, self.conn)
        tag = method.consumer_tag or server_named("amq.ctag-")
        if tag in self._deliveries.consumers:
            raise HardError(rc.NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
        check_consume_args(q, method.arguments, method.exclusive)
        if q.exclusive_consumer is not None or (method.exclusive and q.consumers):
            raise ChannelError(rc.ACCESS_REFUSED, f"queue '{q.name}' in vhost "
                               f"'{self.vhost.name}' in exclusive use")
        consumer = Consumer(tag, self, q, method.no_ack, method.exclusive,
                            self.prefetch_consumer, method.arguments)
        self._deliveries.consumers[tag] = consumer
        def start() -> None:
            # Only once consume-ok is out (it may wait behind a held declare-ok): a
            # delivery must never reach the client before the tag it names.
            if self._deliveries.consumers.get(tag) is consumer:
                q.add_consumer(consumer)

        if not method.nowait:
            self.reply(m.BasicConsumeOk(consumer_tag=tag), then=start)
        else:
            self.in_order(start)

    def _m_basic_cancel(self, method: Any) -> None:
        if self.reply_consumer is not None and direct_reply.cancel(self, method):
            return
        consumer = self._deliveries.consumers.pop(method.consumer_tag, None)
        if consumer is not None:
            consumer.queue.remove_consumer(consumer)
        if not method.nowait:
            self.reply(m.BasicCancelOk(consumer_tag=method.consumer_tag))

    def _m_basic_get(self, method: Any) -> None:
        self._access.check("queue", method.queue, READ)
        q = self.vhost.get_queue(method.queue, self.conn)
        msg = q.get(method.no_ack)
        if msg is None:
            self.stat_get_empty += 1
            self.reply(m.BasicGetEmpty())
            return
        if method.no_ack:
            self.stat_get_no_ack += 1
        else:
            self.stat_get += 1
        if msg.redelivered:
            self.stat_redeliver += 1
        d = self._deliveries
        tag = d.next_tag
        d.next_tag += 1
        if not method.no_ack:
            d.unacked[tag] = msg
            if q.ack_timeout is not None:
                ack_timeout.track(self, msg)
        n = self.number
        frames = [
            method_frame(n, m.BasicGetOk(delivery_tag=tag, redelivered=msg.redelivered,
                                         exchange=msg.exchange, routing_key=msg.routing_key,
                                         message_count=q.message_count).encode()),
            header_frame(n, msg.header),
        ]
        if msg.body:
            frames += body_frames(n, msg.body, self.conn.frame_max)
        self.in_order(lambda: self.conn.write_many(frames))

    def _m_basic_ack(self, method: Any) -> None:
        self._on_ack(method.delivery_tag, method.multiple)

    def _m_basic_reject(self, method: Any) -> None:
        self._negative(self._deliveries.take(method.delivery_tag, False), method.requeue,
                       failed=True)

    def _m_basic_nack(self, method: Any) -> None:
        self._negative(self._deliveries.take(method.delivery_tag, method.multiple), method.requeue)

    def _m_basic_recover(self, method: Any) -> None:
        self._recover(method)
        self.reply(m.BasicRecoverOk())

    def _m_basic_recover_async(self, method: Any) -> None:
        self._recover(method)

    def _recover(self, method: Any) -> None:
        if not method.requeue:
            # RabbitMQ does not implement redelivery to the same consumer.
            raise HardError(rc.NOT_IMPLEMENTED, "requeue=false")
        self._deliveries.requeue_all()

    # confirm class
    def _m_confirm_select(self, method: Any) -> None:
        if self.tx:
            raise ChannelError(rc.PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        self.confirm = True
        if not method.nowait:
            self.reply(m.ConfirmSelectOk())

    # tx class
    def _m_tx_select(self, method: Any) -> None:
        if self.confirm:
            raise ChannelError(rc.PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        self.tx = True
        self.reply(m.TxSelectOk())

    def _m_tx_commit(self, method: Any) -> None:
        if not self.tx:
            raise ChannelError(rc.PRECONDITION_FAILED, "channel is not transactional")
        store = self.conn.broker.store
        since = store.failures if store is not None else 0
        if self._tx.commit(self._publish_now):
            # commit-ok promises the same as a confirm: the messages are on disk.
            store.when_durable(self._commit_durable, since=since)
        else:
            self.reply(m.TxCommitOk())

    def _commit_durable(self, ok: bool) -> None:
        if ok:
            self.reply(m.TxCommitOk())
        else:
            # The promise of commit-ok cannot be kept: say so loudly rather than lie.
            self.conn.close(rc.INTERNAL_ERROR, "INTERNAL_ERROR - message store write failed; "
                            "the transaction was not made durable")

    def _m_tx_rollback(self, method: Any) -> None:
        if not self.tx:
            raise ChannelError(rc.PRECONDITION_FAILED, "channel is not transactional")
        self._tx.rollback(self._deliveries)
        self.reply(m.TxRollbackOk())
