"""A virtual host: its exchanges, queues and bindings, the rules for changing them,
and publishing into them (``Vhost.publish``).

Every check that answers a client with an error lives here, with RabbitMQ's
reply code and wording (see ``.ci/RABBITMQ_BEHAVIOUR.md`` for the texts
recorded from RabbitMQ 3.10), so the channel layer only translates methods.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

from ..errors import ChannelError, HardError
from ..protocol import constants as rc
from ..protocol.codec import DecodeError
from ..protocol.properties import decode_properties
from .arguments import check_exchange_equivalence, check_queue_equivalence, validate_queue_args
from .deadletter import dead_letter_header
from .delayed_store import DelayStore
from .exchanges import EXCHANGE_TYPES, Exchange
from .exchanges.delayed import DelayedExchange, DelayHeaderError, swap_delay_header
from .limits import queue_refusal
from .message import Message
from .policies import Policy, apply_to_exchange, apply_to_queue
from .queue import Queue
from .queue_settings import REJECT_PUBLISH_DLX

if TYPE_CHECKING:
    from .node import Node


# A routing key on the default exchange that starts with this and names no queue is a
# direct reply-to (server/direct_reply.py): rabbit_exchange:route hands the message to
# the waiting consumer of amq.rabbitmq.reply-to, with no queue in between.
REPLY_TO_PREFIX = "amq.rabbitmq.reply-to."

# What ``Vhost.publish`` did, as bit flags in an int: no object per publish, and the
# caller tests one bit with one ``&``.
PublishResult = int
ROUTED = 1  # some queue matched (so no basic.return), even if it refused its copy
STORED = 2  # the store holds a copy: a confirm or commit-ok waits for the disk
REJECTED = 4  # a full reject-publish(-dlx) queue refused its copy: confirm with a nack
DIRECT_REPLY = 8  # a direct reply-to routing key: the caller hands it to the consumer


class DefaultExchange(Exchange):
    """The nameless direct exchange every queue is implicitly bound to by its name
    (``Vhost.publish`` has the same rule inline for the work-queue case)."""

    type_name = "direct"

    def route(self, routing_key, headers):
        q = self.vhost.queues.get(routing_key)
        return [q] if q is not None else []


STANDARD_EXCHANGES = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
    ("amq.rabbitmq.trace", "topic"),
)


def server_named(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


class Vhost:
    def __init__(self, broker: Node, name: str) -> None:
        self.broker = broker
        self.name = name
        # RabbitMQ's vhost metadata, kept and shown; nothing in Hutch acts on it.
        self.description = "Default virtual host" if name == "/" else ""
        self.tags: list[str] = []
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        # name -> Policy (policies.py); the two kinds are separate sets, as in RabbitMQ.
        self.policies: dict[str, Policy] = {}
        self.operator_policies: dict[str, Policy] = {}
        # RabbitMQ's vhost-limits parameter (limits.py): None when it is not set.
        self.limits: dict[str, int] | None = None
        # (exchange, delay ms) for each x-delayed-message exchange that kept the message
        # being routed (filled by ``route``, emptied by ``_hold_delayed``).
        self._delayed: list[tuple[Any, int]] = []
        self.default_exchange = DefaultExchange(self, "", durable=True)
        self.exchanges[""] = self.default_exchange
        for name_, type_ in STANDARD_EXCHANGES:
            ex = EXCHANGE_TYPES[type_](self, name_, durable=True)
            if name_ == "amq.rabbitmq.trace":
                ex.internal = True
            self.exchanges[name_] = ex

    # -- lookups -------------------------------------------------------------
    def _no_exchange(self, name: str) -> ChannelError:
        return ChannelError(rc.NOT_FOUND, f"no exchange '{name}' in vhost '{self.name}'")

    def _no_queue(self, name: str) -> ChannelError:
        return ChannelError(rc.NOT_FOUND, f"no queue '{name}' in vhost '{self.name}'")

    def get_exchange(self, name: str) -> Exchange:
        ex = self.exchanges.get(name)
        if ex is None:
            raise self._no_exchange(name)
        return ex

    def get_queue(self, name: str, conn: Any) -> Queue:
        """A queue the connection may use (exclusive queues belong to their owner)."""
        q = self.queues.get(name)
        if q is None:
            raise self._no_queue(name)
        self.check_exclusive(q, conn)
        return q

    def check_exclusive(self, q: Queue, conn: Any) -> None:
        if q.exclusive_owner is not None and q.exclusive_owner is not conn:
            raise ChannelError(
                rc.RESOURCE_LOCKED,
                f"cannot obtain exclusive access to locked {q.describe()}. It could be "
                "originally declared on another connection or the exclusive property value "
                "does not match that of the original declaration.",
            )

    # -- exchanges -----------------------------------------------------------
    def declare_exchange(self, name: str, type_: str, passive: bool, durable: bool,
                         auto_delete: bool, internal: bool, arguments: dict[str, Any]) -> Exchange:
        if name == "":
            raise ChannelError(rc.ACCESS_REFUSED, "operation not permitted on the default exchange")
        existing = self.exchanges.get(name)
        if passive:
            if existing is None:
                raise self._no_exchange(name)
            return existing
        if name.startswith("amq.") and existing is None:
            raise ChannelError(rc.ACCESS_REFUSED,
                               f"exchange name '{name}' contains reserved prefix 'amq.*'")
        if existing is not None:
            check_exchange_equivalence(existing, type_, durable, auto_delete, internal, arguments)
            return existing
        cls = EXCHANGE_TYPES.get(type_)
        if cls is None:
            # RabbitMQ >= 3.13 answers an unknown type with a channel-level 406
            # (3.10 closed the connection with 503 COMMAND_INVALID); we follow
            # the newer behaviour, which does not punish the other channels.
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid exchange type '{type_}'")
        ex = cls(self, name, durable=durable, auto_delete=auto_delete, internal=internal,
                 arguments=arguments)
        self.exchanges[name] = ex
        if isinstance(ex, DelayedExchange):
            ex.store = DelayStore(ex)
        if self.policies or self.operator_policies:
            apply_to_exchange(self, ex)
        if durable:
            version = self.broker.definitions_changed()
            if isinstance(ex, DelayedExchange) and self.broker.store is not None:
                ex.store.attach(None, version)  # restore() puts back the logged id
        return ex

    def delete_exchange(self, name: str, if_unused: bool) -> None:
        if name == "":
            raise ChannelError(rc.ACCESS_REFUSED, "operation not permitted on the default exchange")
        if name.startswith("amq."):
            raise ChannelError(rc.ACCESS_REFUSED, f"deletion of system exchange '{name}' in vhost "
                               f"'{self.name}' not allowed")
        ex = self.exchanges.get(name)
        if ex is None:
            # RabbitMQ made exchange.delete idempotent: deleting a missing one is OK.
            return
        if if_unused and ex.bindings:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"exchange '{name}' in vhost '{self.name}' in use")
        self._remove_exchange(ex)

    def _remove_exchange(self, ex: Exchange) -> None:
        del self.exchanges[ex.name]
        ex.deleted = True
        if isinstance(ex, DelayedExchange):
            ex.store.close()  # its waiting messages are dropped (README: delayed messages)
        if ex.durable:
            self.broker.definitions_changed()
        for binding in list(ex.bindings.values()):
            ex.unbind(binding.destination, binding.routing_key, binding.arguments)
        # Bindings where it is the destination (exchange-to-exchange).
        for other in list(self.exchanges.values()):
            if other.unbind_destination(ex):
                self._maybe_auto_delete(other)

    def _maybe_auto_delete(self, ex: Exchange) -> None:
        if ex.auto_delete and not ex.bindings and ex.name in self.exchanges:
            self._remove_exchange(ex)

    # -- queues ----------------------------------------------------------------
    def declare_queue(self, name: str, passive: bool, durable: bool, exclusive: bool,
                      auto_delete: bool, arguments: dict[str, Any], conn: Any) -> Queue:
        if passive:
            if not name:
                raise ChannelError(rc.NOT_FOUND, f"no queue '' in vhost '{self.name}'")
            q = self.get_queue(name, conn)
            q.touch()
            return q
        if name.startswith("amq."):
            raise ChannelError(rc.ACCESS_REFUSED,
                               f"queue name '{name}' contains reserved prefix 'amq.*'")
        if not name:
            name = server_named("amq.gen-")
        self.broker.queues_declared += 1  # as RabbitMQ: before the equivalence checks
        existing = self.queues.get(name)
        if existing is not None:
            self.check_exclusive(existing, conn)
            if exclusive != existing.exclusive:
                # Same wording RabbitMQ uses: the exclusive flag does not match.
                raise ChannelError(
                    rc.RESOURCE_LOCKED,
                    f"cannot obtain exclusive access to locked {existing.describe()}. It could be "
                    "originally declared on another connection or the exclusive property value "
                    "does not match that of the original declaration.",
                )
            check_queue_equivalence(existing, durable, auto_delete, arguments)
            existing.touch()
            return existing
        validate_queue_args(self.name, name, durable, exclusive, auto_delete, arguments)
        if self.limits:
            refusal = queue_refusal(self, name)
            if refusal is not None:
                raise ChannelError(rc.PRECONDITION_FAILED, refusal)
        q = Queue(self, name, durable, conn if exclusive else None, auto_delete, arguments)
        self.queues[name] = q
        if self.policies or self.operator_policies:
            apply_to_queue(q)
        self.broker.queues_created += 1
        if exclusive and conn is not None:
            conn.exclusive_queues.append(q)
        if durable:
            self._attach_store(q, None)
            if not exclusive:  # exclusive queues die with their connection: never restored
                q.defs_version = self.broker.definitions_changed()
        q.touch()
        return q

    def restore_queue(self, name: str, auto_delete: bool, arguments: dict[str, Any],
                      store_id: int | None) -> Queue:
        """Recreate a durable queue from the definitions file at boot."""
        q = Queue(self, name, True, None, auto_delete, arguments)
        self.queues[name] = q
        if self.policies or self.operator_policies:
            apply_to_queue(q)
        self._attach_store(q, store_id)
        q.touch()
        return q

    def _attach_store(self, q: Queue, store_id: int | None) -> None:
        if self.broker.store is not None:
            # A fresh random id per queue incarnation: records of a deleted queue of
            # the same name can never be taken for this one's.
            q.store_id = store_id or int.from_bytes(os.urandom(8), "big") >> 1

    def delete_queue(self, q: Queue, reason: str = "deleted") -> int:
        """Unlink a queue, cancel its consumers, drop its bindings; returns messages lost."""
        if self.queues.get(q.name) is not q:
            return 0
        count = q.message_count
        del self.queues[q.name]
        self.broker.queues_deleted += 1
        for ex in list(self.exchanges.values()):
            if ex.unbind_destination(q):
                self._maybe_auto_delete(ex)
        for consumer in list(q.consumers):
            consumer.channel.cancel_by_server(consumer)
        q.consumers.clear()
        q.on_deleted()
        if q.durable and not q.exclusive:
            self.broker.definitions_changed()
        if q.exclusive_owner is not None:
            try:
                q.exclusive_owner.exclusive_queues.remove(q)
            except ValueError:
                pass
        return count

    def delete_queue_by_name(self, name: str, if_unused: bool, if_empty: bool, conn: Any) -> int:
        q = self.queues.get(name)
        if q is None:
            # Idempotent like RabbitMQ: deleting a missing queue answers delete-ok 0.
            return 0
        self.check_exclusive(q, conn)
        if if_unused and q.consumers:
            raise ChannelError(rc.PRECONDITION_FAILED, f"queue '{name}' in vhost '{self.name}' in use")
        if if_empty and q.message_count:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"queue '{name}' in vhost '{self.name}' not empty")
        return self.delete_queue(q)

    # -- bindings --------------------------------------------------------------
    def bind_queue(self, queue: str, exchange: str, routing_key: str, arguments: dict[str, Any],
                   conn: Any) -> None:
        if exchange == "":
            raise ChannelError(rc.ACCESS_REFUSED, "operation not permitted on the default exchange")
        ex = self.get_exchange(exchange)  # RabbitMQ checks the exchange first
        q = self.get_queue(queue, conn)
        if ex.bind(q, routing_key, arguments) and ex.durable and q.durable:
            self.broker.definitions_changed()

    def unbind_queue(self, queue: str, exchange: str, routing_key: str, arguments: dict[str, Any],
                     conn: Any) -> None:
        if exchange == "":
            raise ChannelError(rc.ACCESS_REFUSED, "operation not permitted on the default exchange")
        # Unbinding is idempotent in RabbitMQ: a missing queue, exchange or
        # binding answers unbind-ok.  Only a real binding of another
        # connection's exclusive queue is refused.
        ex = self.exchanges.get(exchange)
        q = self.queues.get(queue)
        if ex is None or q is None or not ex.has_binding(q, routing_key, arguments):
            return
        self.check_exclusive(q, conn)
        ex.unbind(q, routing_key, arguments)
        if ex.durable and q.durable:
            self.broker.definitions_changed()
        self._maybe_auto_delete(ex)

    def bind_exchange(self, destination: str, source: str, routing_key: str,
                      arguments: dict[str, Any]) -> None:
        if destination == "" or source == "":
            raise ChannelError(rc.ACCESS_REFUSED, "operation not permitted on the default exchange")
        src = self.get_exchange(source)
        dest = self.get_exchange(destination)
        if src.bind(dest, routing_key, arguments) and src.durable and dest.durable:
            self.broker.definitions_changed()

    def unbind_exchange(self, destination: str, source: str, routing_key: str,
                        arguments: dict[str, Any]) -> None:
        if destination == "" or source == "":
            raise ChannelError(rc.ACCESS_REFUSED, "operation not permitted on the default exchange")
        dest = self.exchanges.get(destination)
        src = self.exchanges.get(source)
        if dest is not None and src is not None and src.unbind(dest, routing_key, arguments):
            if src.durable and dest.durable:
                self.broker.definitions_changed()
            self._maybe_auto_delete(src)

    # -- publishing ------------------------------------------------------------
    def publish(self, exchange: str, routing_key: str, header: bytes, body: bytes,
                persistent: bool, expires_at: float | None, fed: set[Any]) -> PublishResult:
        """Route one message from ``exchange`` and give every queue it reaches that has
        room a copy; each queue that took one is added to ``fed`` (the publishing
        connection's set, for flow control).  An exchange deleted since the
        basic.publish routes nowhere."""
        ex = self.exchanges.get(exchange)
        if ex is self.default_exchange:
            # The work-queue case, kept short: one queue or none, no list, no
            # bindings, no alternate exchange.
            ex.publish_in += 1
            q = self.queues.get(routing_key)
            if q is None:
                # Never counted as routed (a mandatory reply also comes back), as in
                # RabbitMQ's rabbit_exchange:route.
                return DIRECT_REPLY if routing_key.startswith(REPLY_TO_PREFIX) else 0
            if q.would_overflow(len(body)):
                return ROUTED | self._refused(q, exchange, routing_key, header, body, persistent,
                                              expires_at, True)
            msg = Message(exchange, routing_key, header, body, persistent, expires_at)
            q.enqueue(msg)
            fed.add(q)
            ex.publish_out += 1
            return ROUTED if msg.msg_id is None else ROUTED | STORED
        if ex is None:
            return 0
        ex.publish_in += 1
        try:
            queues = self.route(ex, routing_key, header)
        except DelayHeaderError as exc:
            self._delayed.clear()
            # The plugin's binary_to_integer fails in the channel process, which
            # RabbitMQ answers by closing the connection with 541.
            raise HardError(rc.INTERNAL_ERROR,
                            f"x-delay header is not an integer: {str(exc)[:64]!r}") from None
        result = 0
        if self._delayed:
            result = self._hold_delayed(exchange, routing_key, header, body, persistent)
        if not queues:
            return result
        ex.publish_out += len(queues)
        return result | self._enqueue(queues, exchange, routing_key, header, body, persistent,
                                      expires_at, fed)

    def _hold_delayed(self, exchange: str, routing_key: str, header: bytes, body: bytes,
                      persistent: bool) -> PublishResult:
        """Give the message ``route`` left with delayed exchanges to their stores.  Not
        ROUTED (the plugin routes it nowhere now: a mandatory one is returned);
        STORED if a store logged it (its confirm waits for the disk)."""
        held, self._delayed = self._delayed, []
        result = 0
        for ex, delay in held:
            if ex.store.add(exchange, routing_key, swap_delay_header(header, delay), body,
                            persistent, delay):
                result = STORED
        return result

    def route_fired(self, ex: Exchange, exchange: str, routing_key: str, header: bytes,
                    body: bytes, persistent: bool) -> list[Queue]:
        """A delayed message is due: the queues it reaches from its delayed exchange
        (its ``x-delay`` is negative now, so it is not delayed again), as the plugin's
        route/3 does with rabbit_exchange:route — exchange-to-exchange bindings and
        alternate exchanges included.  delayed_store.py gives them their copies."""
        if ex.deleted:
            return []
        try:
            queues = self.route(ex, routing_key, header)
        except DelayHeaderError:
            queues = []
        if self._delayed:  # delayed again by a second delayed exchange bound to this one
            self._hold_delayed(exchange, routing_key, header, body, persistent)
        return queues

    def _enqueue(self, queues: list[Queue], exchange: str, routing_key: str, header: bytes,
                 body: bytes, persistent: bool, expires_at: float | None,
                 fed: set[Any] | None) -> PublishResult:
        """A copy for each of ``queues`` that has room.  ``fed`` is None for a
        dead-lettered message (no publisher to hold back, nobody to nack)."""
        result = ROUTED
        size = len(body)
        for q in queues:
            if q.would_overflow(size):
                result |= self._refused(q, exchange, routing_key, header, body, persistent,
                                        expires_at, fed is not None)
                continue
            msg = Message(exchange, routing_key, header, body, persistent, expires_at)
            q.enqueue(msg)
            if fed is not None:
                fed.add(q)
            if msg.msg_id is not None:
                result |= STORED
        return result

    def _refused(self, q: Queue, exchange: str, routing_key: str, header: bytes, body: bytes,
                 persistent: bool, expires_at: float | None, published: bool) -> PublishResult:
        """The overflow policy, when full queue ``q`` (x-overflow reject-publish or
        reject-publish-dlx) refuses a copy; a drop-head queue never refuses, it drops
        its head in ``Queue.enqueue``.  A client's publish is rejected (its confirm is
        a nack), and with reject-publish-dlx the refused copy is dead-lettered; a
        dead-lettered copy is just dropped."""
        if not published:
            return 0
        if q.overflow == REJECT_PUBLISH_DLX and q.dlx is not None:
            self.dead_letter(q, Message(exchange, routing_key, header, body, persistent,
                                        expires_at), "maxlen")
        return REJECTED

    # -- routing ---------------------------------------------------------------
    def route(self, ex: Exchange, routing_key: str, header: bytes) -> list[Queue]:
        """Every queue a message reaches from ``ex``, following exchange-to-exchange
        bindings (each exchange visited once, so binding cycles terminate) and
        alternate exchanges for messages nothing else took."""
        props_cache: list[dict[str, Any]] = []

        def headers() -> dict[str, Any] | None:
            if not props_cache:
                try:
                    props_cache.append(decode_properties(header[12:]))
                except DecodeError:
                    # Never decoded on publish (RabbitMQ would have refused it with
                    # 541): routed as a message without headers, never an exception.
                    props_cache.append({})
            return props_cache[0].get("headers")

        dests = ex.route(routing_key, headers) if not ex.delays else \
            self._route_delayed(ex, routing_key, headers)
        if len(dests) == 1 and not dests[0].is_exchange:
            return dests
        queues: dict[Queue, None] = {}
        seen = {ex}
        pending = [ex]
        first = True
        while pending:
            current = pending.pop()
            if first:
                found = dests
            elif current.delays:
                found = self._route_delayed(current, routing_key, headers)
            else:
                found = current.route(routing_key, headers)
            first = False
            for d in found:
                if d.is_exchange:
                    if d not in seen and not d.deleted:
                        seen.add(d)
                        pending.append(d)
                else:
                    queues[d] = None
            if not found:
                alt_name = current.alternate_exchange
                alt = self.exchanges.get(alt_name) if alt_name else None
                if alt is not None and alt not in seen:
                    seen.add(alt)
                    pending.append(alt)
        return list(queues)

    def _route_delayed(self, ex: Any, routing_key: str, headers: Any) -> list[Any]:
        """An x-delayed-message exchange routes a message whose ``x-delay`` asks for
        a delay nowhere (``_hold_delayed`` stores it), any other through its type."""
        delay = ex.delay_of(headers())
        if delay:
            self._delayed.append((ex, delay))
            return []
        return ex.route(routing_key, headers)

    # -- dead lettering ----------------------------------------------------------
    def dead_letter(self, source: Queue, msg: Message, reason: str) -> None:
        """Republish a dropped message to the queue's dead-letter exchange with an
        ``x-death`` history, as RabbitMQ 3.10 does."""
        ex = self.exchanges.get(source.dlx or "")
        if ex is None:
            return  # RabbitMQ silently drops when the DLX does not exist
        # Any header value of any type is tolerated (deadletter.py).
        header = dead_letter_header(msg.header, len(msg.body), reason, source.name, msg.exchange,
                                    msg.routing_key)
        routing_key = source.dlrk if source.dlrk is not None else msg.routing_key
        try:
            queues = self.route(ex, routing_key, header)
        except DelayHeaderError:  # a delayed DLX and a bad x-delay: dropped
            self._delayed.clear()
            return
        if self._delayed:
            self._hold_delayed(ex.name, routing_key, header, msg.body, msg.persistent)
        if reason != "rejected":
            # A dead-letter cycle without rejection: RabbitMQ drops it.  (A new list:
            # route may answer with an exchange's cached one.)
            queues = [q for q in queues if q is not source]
        if queues:
            self._enqueue(queues, ex.name, routing_key, header, msg.body, msg.persistent, None,
                          None)
