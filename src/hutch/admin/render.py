"""JSON for message properties in the management API (``POST .../get``).

Properties come from publishers and Hutch takes them without decoding (as RabbitMQ
takes any valid table), so the rendering must cope with anything the AMQP side let in:
headers nested ~26,000 levels deep (a 128 KiB header frame), values of every field
type, bytes that are not UTF-8, and headers that do not decode at all.  ``json.dumps``
and a recursive walk both stop at Python's recursion limit (~1,000 levels), so this
writes the JSON text with an explicit stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..broker.definitions import scalar
from ..protocol.codec import DecodeError
from ..protocol.properties import decode_properties

_END = object()
_dumps = json.dumps


def message_properties(header: bytes) -> dict[str, Any]:
    """A message's properties, decoded from its content header payload.  Headers that
    do not decode (never checked on publish; RabbitMQ refuses those with 541) are left
    out rather than failing the request."""
    try:
        return decode_properties(header[12:])
    except DecodeError:
        pass
    try:
        return decode_properties(header[12:], skip_headers=True)
    except DecodeError:
        return {}


def to_json(value: Any) -> str:
    """``json.dumps(value)`` for AMQP values, at any nesting depth."""
    out: list[str] = []
    # One entry per open object/array: (its items, is it an object, [nothing written yet]).
    stack: list[tuple[Iterator[Any], bool, list[bool]]] = []
    pending = value
    while True:
        if isinstance(pending, dict):
            out.append("{")
            stack.append((iter(pending.items()), True, [True]))
        elif isinstance(pending, (list, tuple)):
            out.append("[")
            stack.append((iter(pending), False, [True]))
        else:
            out.append(_dumps(scalar(pending)))
        while stack:  # find the next value to write, closing what is complete
            items, is_object, first = stack[-1]
            item: Any = next(items, _END)
            if item is _END:
                out.append("}" if is_object else "]")
                stack.pop()
                continue
            if not first[0]:
                out.append(", ")
            first[0] = False
            if is_object:
                key, pending = item
                out.append(_dumps(str(key)) + ": ")
            else:
                pending = item
            break
        else:
            return "".join(out)
