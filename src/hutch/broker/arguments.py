"""Validation and equivalence of queue and exchange declarations.

RabbitMQ checks a fixed list of ``x-`` arguments when a queue is declared and
compares that same list when it is redeclared.  The error texts copy RabbitMQ's
(``rabbit_amqqueue`` / ``rabbit_misc:assert_args_equivalence``), Erlang term
syntax included, because people search for them.

Which arguments a queue may carry follows RabbitMQ 4.3 (``check_declare_arguments``):
each queue type has its list (``capabilities()`` of ``rabbit_classic_queue``,
``rabbit_quorum_queue``, ``rabbit_stream_queue``); an argument of another type's
list is refused (``invalid arg 'x-delivery-limit' for queue 'q' in vhost '/' of
queue type rabbit_classic_queue``); an argument no type knows is accepted and
ignored, as everywhere in RabbitMQ (3.10 has the same check, with shorter
lists).  Every argument of a type's list is either honoured, or
accepted with no effect for a reason the README's argument table gives (a
single node has no replicas to place), or refused by ``UNSUPPORTED`` below:
nothing is accepted and ignored without saying so.
"""

from __future__ import annotations

from typing import Any

from ..errors import ChannelError
from ..protocol import constants as rc
from ..protocol.codec import Timestamp, field_type_name
from .expiration import MAX_EXPIRY_MS

QUEUE_TYPES = ("classic", "quorum", "stream")
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
DLX_STRATEGIES = ("at-most-once", "at-least-once")
LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders", "min-masters")
TYPE_MODULE = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue",
               "stream": "rabbit_stream_queue"}

# RabbitMQ 4.3's queue arguments per type, in its order: a redeclare compares them in
# this order (rabbit_misc:assert_args_equivalence over the type's list), so the first
# difference is the one reported.
TYPE_ARGS: dict[str, tuple[str, ...]] = {
    "classic": ((
        "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
        "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
        "x-queue-version", "x-single-active-consumer", "x-queue-type", "x-queue-master-locator",
        "x-queue-leader-locator",
        # Hutch extension (issue #14): the delivery limit on classic queues too.
        "x-delivery-limit",
        # RabbitMQ 3.12-4.2 honoured it on classic queues (4.3 has no classic consumer
        # timeout any more); Hutch follows 4.2 there (README, "Consumer timeout").
        "x-consumer-timeout")),
    "quorum": ((
        "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy",
        "x-expires", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
        "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
        "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
        "x-queue-leader-locator", "x-consumer-disconnected-timeout", "x-consumer-timeout",
        "x-delayed-retry-type", "x-delayed-retry-min", "x-delayed-retry-max")),
    "stream": ((
        "x-max-length-bytes", "x-queue-type", "x-max-age", "x-stream-max-segment-size-bytes",
        "x-stream-filter-size-bytes", "x-initial-cluster-size", "x-queue-leader-locator")),
}
TYPED_ARGS = frozenset().union(*TYPE_ARGS.values())

# Known to RabbitMQ, not implemented by Hutch: refused with a 406 naming them rather
# than accepted and ignored.
UNSUPPORTED = {
    "x-delayed-retry-type": "delayed retry of quorum queues (RabbitMQ 4.3) is not supported by Hutch",
    "x-delayed-retry-min": "delayed retry of quorum queues (RabbitMQ 4.3) is not supported by Hutch",
    "x-delayed-retry-max": "delayed retry of quorum queues (RabbitMQ 4.3) is not supported by Hutch",
}

def _is_int(v: Any) -> bool:
    # RabbitMQ's ?INTEGER_ARG_TYPES: every integer field type ('b' 'B' 's' 'u' 'I' 'i',
    # and 'l'/'L', which py-amqp sends for values beyond 32 bits), never a timestamp.
    return isinstance(v, int) and not isinstance(v, (bool, Timestamp))


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _check(key: str, value: Any, args: dict[str, Any]) -> str | None:
    """None when ``value`` is acceptable for ``key``, else RabbitMQ's error detail."""
    if key in ("x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
               "x-max-in-memory-bytes", "x-message-ttl", "x-expires", "x-max-priority",
               "x-consumer-disconnected-timeout", "x-quorum-initial-group-size",
               "x-queue-version", "x-consumer-timeout"):
        if not _is_int(value):
            return f'"expected integer, got {field_type_name(value)}"'
        if value < 0:
            return f"{{value_negative,{value}}}"
        if key in ("x-expires", "x-quorum-initial-group-size") and value == 0:
            return "{value_zero,0}"
        if key == "x-queue-version" and value != 2:
            return f"\"unsupported queue version '{value}'\""  # 4.x: classic queues v2 only
        if key == "x-max-priority" and value > 255:
            return f"{{max_value_exceeded,{value}}}"
        if key in ("x-message-ttl", "x-expires") and value > MAX_EXPIRY_MS:
            return f"{{value_too_large,{value}}}"  # rabbit_misc:check_expiry
        return None
    if key == "x-dead-letter-routing-key":
        if "x-dead-letter-exchange" not in args:
            return "routing_key_but_no_dlx_defined"
        if not isinstance(value, str):
            return f"{{unacceptable_type,{field_type_name(value)}}}"
        return None
    if key == "x-overflow":
        if not isinstance(value, str):
            return f"{{unacceptable_type,{field_type_name(value)}}}"
        if value not in OVERFLOW_MODES:
            return "invalid_overflow"
        return None
    if key == "x-queue-mode":
        if not isinstance(value, str):
            return f"{{unacceptable_type,{field_type_name(value)}}}"
        if value not in ("default", "lazy"):
            return f"\"unsupported queue mode '{value}'\""
        return None
    if key == "x-dead-letter-strategy":
        if not isinstance(value, str):
            return f"{{unacceptable_type,{field_type_name(value)}}}"
        return None if value in DLX_STRATEGIES else "invalid_dlx_strategy"
    if key in ("x-queue-leader-locator", "x-queue-master-locator"):
        if not isinstance(value, str):
            return f"{{unacceptable_type,{field_type_name(value)}}}"
        return None if value in LEADER_LOCATORS else "invalid_queue_locator_arg"
    if key == "x-single-active-consumer":
        if not isinstance(value, bool):
            return f"{{unacceptable_type,{field_type_name(value)}}}"
        return None
    if key == "x-queue-type":
        if not isinstance(value, str):
            return f"{{unacceptable_type,{field_type_name(value)}}}"
        if value not in QUEUE_TYPES:
            return f"\"unsupported queue type '{value}'\""
        return None
    return None


# RabbitMQ 4.3's consumer arguments per queue type (the same capabilities()).
CONSUMER_ARGS: dict[str, frozenset[str]] = {
    "classic": frozenset({"x-priority"}),
    "quorum": frozenset({"x-priority", "x-consumer-timeout"}),
    "stream": frozenset({"x-stream-offset", "x-stream-filter", "x-stream-match-unfiltered"}),
}
TYPED_CONSUMER_ARGS = frozenset().union(*CONSUMER_ARGS.values())
UNSUPPORTED_CONSUMER_ARGS = {
    "x-consumer-timeout": "a consumer's own timeout (RabbitMQ 4.3) is not supported by Hutch; "
                          "use the queue's x-consumer-timeout or a consumer-timeout policy",
}


def check_consume_args(queue: Any, args: dict[str, Any], exclusive: bool) -> None:
    """basic.consume's arguments as RabbitMQ 4.3's ``check_consume_arguments``: another
    queue type's consumer argument is refused naming the type, ``x-priority`` must be an
    integer (``check_int_arg``, same 406 text); and an exclusive consumer is refused on
    a single-active-consumer queue (``rabbit_amqqueue_process``:
    ``exclusive_consume_unavailable``, the 403 the channel gives when another consumer
    holds the queue)."""
    allowed = CONSUMER_ARGS[queue.queue_type]
    for key in args:
        if key not in allowed and key in TYPED_CONSUMER_ARGS:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid arg '{key}' for "
                               f"{queue.describe()} of queue type {TYPE_MODULE[queue.queue_type]}")
        if key in UNSUPPORTED_CONSUMER_ARGS:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid arg '{key}' for "
                               f"{queue.describe()}: \"{UNSUPPORTED_CONSUMER_ARGS[key]}\"")
    value = args.get("x-priority")
    if "x-priority" in args and not _is_int(value):  # a void one too (RabbitMQ: "got void")
        raise ChannelError(rc.PRECONDITION_FAILED,
                           f"invalid arg 'x-priority' for {queue.describe()}: "
                           f'"expected integer, got {field_type_name(value)}"')
    if exclusive and queue.settings.single_active:
        raise ChannelError(rc.ACCESS_REFUSED, f"{queue.describe()} in exclusive use")



def validate_queue_args(vhost: str, name: str, durable: bool, exclusive: bool,
                        auto_delete: bool, args: dict[str, Any]) -> None:
    what = f"queue '{name}' in vhost '{vhost}'"
    dlx = args.get("x-dead-letter-exchange")
    if "x-dead-letter-exchange" in args and not isinstance(dlx, str):  # a void one too
        raise ChannelError(rc.PRECONDITION_FAILED,
                           f"invalid type '{field_type_name(dlx)}' for arg 'x-dead-letter-exchange' "
                           f"in {what}")
    qtype = args.get("x-queue-type", "classic")
    err = _check("x-queue-type", qtype, args)
    if err is None and qtype == "stream":
        err = "\"unsupported queue type 'stream': Hutch has no streams\""
    if err is not None:
        raise ChannelError(rc.PRECONDITION_FAILED, f"invalid arg 'x-queue-type' for {what}: {err}")
    allowed = TYPE_ARGS[qtype]
    for key, value in args.items():
        if key not in allowed and key in TYPED_ARGS:
            continue  # another type's argument: refused below, after the values (as 4.3)
        err = _check(key, value, args)
        if err is not None:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid arg '{key}' for {what}: {err}")
    for key in args:
        if key not in allowed and key in TYPED_ARGS:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"invalid arg '{key}' for {what} of queue type {TYPE_MODULE[qtype]}")
        if key in UNSUPPORTED:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"invalid arg '{key}' for {what}: \"{UNSUPPORTED[key]}\"")
    if qtype == "quorum":
        # Replicated queue types: RabbitMQ refuses these properties outright.
        if not durable:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid property 'non-durable' for {what}")
        if exclusive:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"invalid property 'exclusive-owner' for {what}")
        if auto_delete:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid property 'auto-delete' for {what}")


def _describe(value: Any) -> str:
    if value is None:
        return "none"
    # Erlang prints a boolean as true/false, not Python's True/False.
    return f"the value '{_plain(value)}' of type '{field_type_name(value)}'"


def _mismatch(new: Any, old: Any) -> str:
    """RabbitMQ's wording: short when both sides are present, typed when one is missing."""
    if new is not None and old is not None:
        return f"received '{_plain(new)}' but current is '{_plain(old)}'"
    return f"received {_describe(new)} but current is {_describe(old)}"


def _same(a: Any, b: Any) -> bool:
    # RabbitMQ compares integer arguments by value across integer widths.
    if _is_int(a) and _is_int(b):
        return a == b
    return type(a) is type(b) and a == b


def check_queue_equivalence(q: Any, durable: bool, auto_delete: bool,
                            args: dict[str, Any]) -> None:
    what = q.describe()
    for field, current, received in (("durable", q.durable, durable),
                                      ("auto_delete", q.auto_delete, auto_delete)):
        if current != received:
            raise ChannelError(
                rc.PRECONDITION_FAILED,
                f"inequivalent arg '{field}' for {what}: received '{_plain(received)}' "
                f"but current is '{_plain(current)}'",
            )
    for key in TYPE_ARGS[q.queue_type]:
        new = args.get(key)
        old = q.arguments.get(key)
        if key == "x-queue-type" and {new, old} <= {None, "classic"}:
            continue  # an implicit type is "classic"
        if new is None and old is None:
            continue
        if new is None or old is None or not _same(new, old):
            raise ChannelError(
                rc.PRECONDITION_FAILED,
                f"inequivalent arg '{key}' for {what}: {_mismatch(new, old)}",
            )


def check_exchange_equivalence(ex: Any, type_: str, durable: bool, auto_delete: bool,
                               internal: bool, args: dict[str, Any]) -> None:
    what = f"exchange '{ex.name}' in vhost '{ex.vhost.name}'"
    for field, current, received in (("type", ex.type_name, type_),
                                      ("durable", ex.durable, durable),
                                      ("auto_delete", ex.auto_delete, auto_delete),
                                      ("internal", ex.internal, internal)):
        if current != received:
            raise ChannelError(
                rc.PRECONDITION_FAILED,
                f"inequivalent arg '{field}' for {what}: received '{_plain(received)}' "
                f"but current is '{_plain(current)}'",
            )
    key = "alternate-exchange"
    new, old = args.get(key), ex.arguments.get(key)
    if (new is not None or old is not None) and new != old:
        raise ChannelError(rc.PRECONDITION_FAILED,
                           f"inequivalent arg '{key}' for {what}: {_mismatch(new, old)}")
