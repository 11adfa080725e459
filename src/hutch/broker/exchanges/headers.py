"""Headers exchange: match message headers against binding arguments.

``x-match`` is ``all`` (default) or ``any``; RabbitMQ 3.10 also has
``all-with-x`` / ``any-with-x``, which include ``x-``-prefixed keys in the
comparison.  A binding argument with a void value matches on presence only.
"""

from __future__ import annotations

from typing import Any

from .base import Binding, Exchange

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

    def _index_add(self, binding: Binding) -> None:
        self._bindings.append(binding)

    def _index_remove(self, binding: Binding) -> None:
        self._bindings.remove(binding)


def matches(arguments: dict[str, Any], headers: dict[str, Any]) -> bool:
    mode = arguments.get("x-match", "all")
    with_x = mode in ("all-with-x", "any-with-x")
    want_all = mode in ("all", "all-with-x")
    checked = 0
    for key, expected in arguments.items():
        if key.startswith("x-") and (not with_x or key == "x-match"):
            continue
        checked += 1
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
        return bytes(actual) == expected.encode()
    if isinstance(expected, (bytes, bytearray)) and isinstance(actual, str):
        return bytes(expected) == actual.encode()
    return actual == expected
