"""The ``x-delayed-message`` exchange: RabbitMQ's community delayed-message-exchange
plugin (rabbitmq-delayed-message-exchange 4.2.0, for RabbitMQ 4.x), built in.

Routing is delegated to an inner exchange of the ``x-delayed-type`` argument, which
indexes this exchange's bindings, so bindings behave exactly as that type's.  A
message whose ``x-delay`` header holds a delay in (0, 2**32 - 1] ms is not routed:
``Vhost.route`` hands it to the exchange's ``DelayStore`` (broker/delayed_store.py)
and counts it as routed nowhere (so, as with the plugin, a mandatory publish is
returned with NO_ROUTE and the exchange's alternate exchange gets a copy at once).
When due it is routed from this exchange again with ``x-delay`` set to minus the
delay (a ``long``, as the plugin's 4.x annotation reaches an AMQP 0-9-1 consumer),
which both tells the consumer it was delayed and keeps it from being delayed twice.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from ...errors import ChannelError
from ...protocol import constants as rc
from ...protocol.codec import DecodeError, Float32, Int16, Int64, UInt8, UInt16, UInt32
from ...protocol.properties import decode_properties, encode_properties
from .base import Binding, Exchange
from .direct import DirectExchange
from .fanout import FanoutExchange
from .headers import HeadersExchange, check_x_match
from .topic import TopicExchange

# The plugin's ?ERL_MAX_T: the longest Erlang timer.  A longer delay is not a delay:
# the message is routed at once.
MAX_DELAY_MS = 4294967295

INNER_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}

# The plugin's INTEGER_ARG_TYPES as RabbitMQ 4.x's mc_amqpl names an AMQP 0-9-1
# header (long, ubyte, short, ushort, int, uint): a signed byte ('b') is not among
# them, so it delays nothing.  A plain int is 'I' (signedint -> int).
_INT_TYPES = (int, Int64, UInt8, Int16, UInt16, UInt32)


class DelayHeaderError(Exception):
    """An ``x-delay`` string that is not an integer: the plugin's binary_to_integer
    crashes the channel, which RabbitMQ answers with a connection-level 541."""


def parse_delay(value: Any) -> int | None:
    """The delay an ``x-delay`` header value asks for, as the plugin's get_delay reads
    it (None: no delay).  Integers as they are, floats truncated, strings parsed as
    Erlang's binary_to_integer does (an optional sign, then decimal digits)."""
    kind = type(value)
    if kind in _INT_TYPES:
        return int(value)
    if kind is float or kind is Float32:
        return int(value) if math.isfinite(value) else None
    if kind is str or isinstance(value, (bytes, bytearray)):
        text = value if kind is str else bytes(value).decode("latin-1")
        digits = text[1:] if text[:1] in ("+", "-") else text
        if not digits or not digits.isascii() or not digits.isdigit():
            raise DelayHeaderError(text)
        if len(digits.lstrip("0")) > 10:
            # Erlang's integers have no size limit (Python's int() refuses more than
            # 4,300 digits): any such value is beyond the longest delay, so at once.
            return None
        return int(text)
    return None  # byte, bool, decimal, timestamp, void, tables, arrays


def validate_delayed_type(arguments: dict[str, Any]) -> type[Exchange]:
    """The inner exchange class, or the plugin's 406 (its validate/1)."""
    kind = arguments.get("x-delayed-type")
    if kind == "x-delayed-message":
        raise ChannelError(rc.PRECONDITION_FAILED,
                           "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'")
    if not isinstance(kind, (str, bytes)) or isinstance(kind, bytearray):
        raise ChannelError(rc.PRECONDITION_FAILED,
                           "Invalid argument, 'x-delayed-type' must be an existing exchange type")
    text = kind if isinstance(kind, str) else kind.decode("utf-8", "replace")
    cls = INNER_TYPES.get(text)
    if cls is None:
        # rabbit_exchange:check_type's text for a type no plugin registered.
        raise ChannelError(rc.PRECONDITION_FAILED, f"unknown exchange type '{text}'")
    return cls


class DelayedExchange(Exchange):
    type_name = "x-delayed-message"
    delays = True

    def __init__(self, vhost: Any, name: str, durable: bool = True, auto_delete: bool = False,
                 internal: bool = False, arguments: dict[str, Any] | None = None) -> None:
        super().__init__(vhost, name, durable, auto_delete, internal, arguments)
        cls = validate_delayed_type(self.arguments)
        # Never registered in the vhost: it only indexes this exchange's bindings.
        self.inner = cls(vhost, name, durable, auto_delete, internal, self.arguments)
        self.store: Any = None  # the DelayStore, set by the vhost

    def route(self, routing_key, headers):
        return self.inner.route(routing_key, headers)

    def bind(self, destination: Any, routing_key: str, arguments: dict[str, Any]) -> bool:
        # The plugin hands validate_binding to the x-delayed-type (headers: x-match).
        if isinstance(self.inner, HeadersExchange):
            check_x_match(arguments)
        return super().bind(destination, routing_key, arguments)

    def _index_add(self, binding: Binding) -> None:
        self.inner._index_add(binding)

    def _index_remove(self, binding: Binding) -> None:
        self.inner._index_remove(binding)

    @staticmethod
    def delay_of(headers: dict[str, Any] | None) -> int:
        """The delay (ms) a message's headers ask for, 0 for none (absent, zero,
        negative, beyond the plugin's longest timer, or of a type it ignores)."""
        if not headers or "x-delay" not in headers:
            return 0
        delay = parse_delay(headers["x-delay"])
        if delay is None or delay <= 0 or delay > MAX_DELAY_MS:
            return 0
        return delay


def swap_delay_header(header: bytes, delay: int) -> bytes:
    """The content header with ``x-delay`` set to ``-delay`` (a long), as the plugin's
    swap_delay_header: every other property and header is kept as sent."""
    try:
        props = decode_properties(header[12:])
    except DecodeError:  # cannot happen: the delay was read from these bytes
        return header
    headers = dict(props.get("headers") or {})
    headers["x-delay"] = Int64(-delay)
    props["headers"] = headers
    try:
        return header[:12] + encode_properties(props)
    except (TypeError, ValueError, struct.error):
        return header


