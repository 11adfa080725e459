"""Headers exchange: match message headers against binding arguments.

``x-match`` is ``all`` (default) or ``any``; RabbitMQ 3.10 also has
``all-with-x`` / ``any-with-x``, which include ``x-``-prefixed keys in the
comparison.  A binding argument with a void value matches on presence only.

A message's headers are whatever a client sent: any type, any depth.  Matching never
raises; ``x-match`` is checked when the binding is made, with RabbitMQ 3.10's texts
(rabbit_exchange_type_headers:validate_binding).
"""

from __future__ import annotations

from typing import Any

from ...errors import ChannelError
from ...protocol import constants as rc
from ...protocol.codec import LongStr, encode_table, field_type_name
from .base import Binding, Exchange

_MODES = ("all", "any", "all-with-x", "any-with-x")
_PRINTABLE = frozenset(range(32, 127)) | frozenset(range(160, 256)) | {8, 9, 10, 11, 12, 13, 27}

_MISSING = object()


class HeadersExchange(Exchange):
    type_name = "headers"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bindings: list[Binding] = []

    def route(self, routing_key, headers):
        if not self._bindings:
            return []
        msg_headers = headers() or {}
        found: dict[Any, None] = {}
        for b in self._bindings:
            if b.destination not in found and matches(b.arguments, msg_headers):
                found[b.destination] = None
        return list(found)

    def bind(self, destination: Any, routing_key: str, arguments: dict[str, Any]) -> bool:
        check_x_match(arguments)
        return super().bind(destination, routing_key, arguments)

    def _index_add(self, binding: Binding) -> None:
        self._bindings.append(binding)

    def _index_remove(self, binding: Binding) -> None:
        self._bindings.remove(binding)


def check_x_match(arguments: dict[str, Any]) -> None:
    """406 unless ``x-match`` is absent or one of the four long strings."""
    if "x-match" not in arguments:
        return
    value = arguments["x-match"]
    if isinstance(value, str) and not isinstance(value, LongStr):
        if value in _MODES:
            return
        raise ChannelError(rc.PRECONDITION_FAILED,
                           f"Invalid x-match field value {_erlang(value)}; "
                           "expected all, any, all-with-x, or any-with-x")
    kind = "binary" if isinstance(value, bytes) and not isinstance(value, LongStr) \
        else field_type_name(value)
    raise ChannelError(rc.PRECONDITION_FAILED, f"Invalid x-match field type {kind} "
                       f"(value {_erlang(value)}); expected longstr")


def _erlang(value: Any) -> str:
    """Roughly how Erlang's ~p prints a field value (binaries, numbers, atoms)."""
    if isinstance(value, (str, bytes)):
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
        if all(b in _PRINTABLE for b in raw):
            text = raw.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"')
            return '<<"' + text.encode("latin-1").decode("utf-8", "surrogateescape") + '">>'
        return "<<" + ",".join(str(b) for b in raw) + ">>"
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matches(arguments: dict[str, Any], headers: dict[str, Any]) -> bool:
    mode = arguments.get("x-match", "all")
    if mode not in _MODES or not isinstance(mode, str):
        mode = "all"  # RabbitMQ's parse_x_match: anything else means all
    with_x = mode in ("all-with-x", "any-with-x")
    want_all = mode in ("all", "all-with-x")
    for key, expected in arguments.items():
        if key.startswith("x-") and (not with_x or key == "x-match"):
            continue
        actual = headers.get(key, _MISSING)
        ok = actual is not _MISSING and (expected is None or _same(actual, expected))
        if want_all and not ok:
            return False
        if not want_all and ok:
            return True
    return want_all


def _same(actual: Any, expected: Any) -> bool:
    # RabbitMQ compares values, not field types: a byte-array header (pika sends
    # bytes as 'x') matches a long-string binding with the same bytes.
    if isinstance(actual, (bytes, bytearray)) and isinstance(expected, str):
        return bytes(actual) == expected.encode("utf-8", "surrogateescape")
    if isinstance(expected, (bytes, bytearray)) and isinstance(actual, str):
        return bytes(expected) == actual.encode("utf-8", "surrogateescape")
    try:
        return bool(actual == expected)
    except RecursionError:
        # Two tables nested deeper than Python compares: compare their encodings
        # (encode_table needs no recursion).
        return encode_table({"": actual}) == encode_table({"": expected})
