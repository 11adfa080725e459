"""Validation and equivalence of queue and exchange declarations.

RabbitMQ checks a fixed list of ``x-`` arguments when a queue is declared and
compares that same list when it is redeclared; any other argument is accepted
and ignored.  The error texts copy RabbitMQ 3.10's (``rabbit_amqqueue`` /
``rabbit_misc:assert_args_equivalence``), Erlang term syntax included,
because people search for them.
"""

from __future__ import annotations

from typing import Any

from ..errors import ChannelError
from ..protocol import constants as rc
from ..protocol.codec import Timestamp, field_type_name
from .expiration import MAX_EXPIRY_MS

QUEUE_TYPES = ("classic", "quorum", "stream")
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")

# Arguments compared on redeclare (RabbitMQ's declare_args()).
EQUIVALENCE_ARGS = (
    "x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
    "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
    "x-single-active-consumer", "x-queue-type",
    "x-consumer-timeout",  # compared since RabbitMQ 4.3 (declare_args)
)


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
               "x-consumer-timeout"):
        if not _is_int(value):
            return f'"expected integer, got {field_type_name(value)}"'
        if value < 0:
            return f"{{value_negative,{value}}}"
        if key == "x-expires" and value == 0:
            return "{value_zero,0}"
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


def validate_queue_args(vhost: str, name: str, durable: bool, exclusive: bool,
                        auto_delete: bool, args: dict[str, Any]) -> None:
    what = f"queue '{name}' in vhost '{vhost}'"
    dlx = args.get("x-dead-letter-exchange")
    if dlx is not None and not isinstance(dlx, str):
        raise ChannelError(rc.PRECONDITION_FAILED,
                           f"invalid type '{field_type_name(dlx)}' for arg 'x-dead-letter-exchange' "
                           f"in {what}")
    for key, value in args.items():
        err = _check(key, value, args)
        if err is not None:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid arg '{key}' for {what}: {err}")
    qtype = args.get("x-queue-type", "classic")
    if qtype in ("quorum", "stream"):
        # Replicated queue types: RabbitMQ refuses these properties outright.
        if not durable:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid property 'non-durable' for {what}")
        if exclusive:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"invalid property 'exclusive-owner' for {what}")
        if auto_delete:
            raise ChannelError(rc.PRECONDITION_FAILED, f"invalid property 'auto-delete' for {what}")
        for key in ("x-max-priority", "x-queue-mode") if qtype == "quorum" else ():
            if key in args:
                raise ChannelError(rc.PRECONDITION_FAILED,
                                   f"invalid arg '{key}' for {what} of queue type rabbit_quorum_queue")


def _describe(value: Any) -> str:
    if value is None:
        return "none"
    return f"the value '{value}' of type '{field_type_name(value)}'"


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
    for key in EQUIVALENCE_ARGS:
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
