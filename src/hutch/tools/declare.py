"""Declaring the work queue the way the seeds do, without tripping over existing queues,
and learning what the broker will not say directly: the existing queue's arguments.

AMQP has no way to read a queue's arguments (a passive declare returns only counts),
and the management API may not be reachable with the AMQP URL's credentials.  But a
declaration whose arguments differ is refused with a 406 that names the *first*
differing argument and its current value, in the same words on RabbitMQ and Hutch::

    inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received none but
    current is the value '3' of type 'signedint'

So ``probe_arguments`` declares again with what it has learned so far, one argument
more per try, until the broker accepts the declaration: then it knows every argument
the broker compares (``x-queue-type``, ``x-delivery-limit``, ``x-dead-letter-*``...).
Policies are not visible this way (see retry.py for the rule that copes with that),
nor is an argument behind one whose refusal was cut: a reply text is a shortstr (255
bytes), so a long queue name plus a long value (a dead-letter routing key) can lose
the value; then the probe stops with what it has learned so far.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from .common import EX_UNAVAILABLE, ToolError

# A queue has a dozen comparable arguments at most; bound the tries all the same.
MAX_PROBES = 16

_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<key>[^']+)' for queue .* but current is "
    r"(?:none|the value '(?P<value>.*)' of type '(?P<type>\w+)')$", re.S)
_INT_TYPES = {"signedint", "long", "short", "byte", "unsignedbyte", "unsignedshort",
              "unsignedint", "longlong", "signedbyte", "timestamp"}


async def declare_queue(connection: Any, channel: Any, name: str,
                        seen: dict[str, Any] | None = None) -> Any:
    """``queue_declare(name, durable=True)`` as the seeds do.  If the queue already
    exists with other properties (say an ``x-dead-letter-exchange`` set by whoever
    created it), the broker answers 406 and closes the channel; then we use the queue
    as it is (a passive declare on a fresh channel) rather than refuse to work.
    Returns the channel to go on with.  With ``seen``, ``seen["arguments"]`` becomes
    the queue's arguments as learned by ``probe_arguments`` (``{}`` when the plain
    declaration was accepted; maybe only some of them, see above)."""
    from aio_pika import exceptions as ex
    from aiormq.exceptions import ChannelAccessRefused

    try:
        await channel.declare_queue(name, durable=True)
        if seen is not None:
            seen["arguments"] = {}
        return channel
    except ex.ChannelPreconditionFailed as exc:
        text = _text(exc)
        if seen is not None:
            seen["arguments"] = await probe_arguments(connection, name, text, seen)
        print(f"hutch: note: using the existing queue '{name}' as it is ({text})",
              file=sys.stderr, flush=True)
    except ChannelAccessRefused as exc:
        raise ToolError(f"cannot declare queue '{name}': {_text(exc)}", 77)
    fresh = await connection.channel(publisher_confirms=channel.publisher_confirms,
                                     on_return_raises=channel.on_return_raises)
    try:
        await fresh.declare_queue(name, passive=True)
    except ex.ChannelNotFoundEntity as exc:  # deleted in between
        raise ToolError(f"cannot use queue '{name}': {_text(exc)}", EX_UNAVAILABLE)
    return fresh


async def probe_arguments(connection: Any, name: str, first_refusal: str,
                          seen: dict[str, Any] | None = None) -> dict[str, Any]:
    """The existing durable queue's arguments, learned from successive 406s (each on a
    fresh channel, as a 406 closes it).  Only those learned so far when a refusal is
    not one we can read (cut short, or the queue is not durable) or the tries run out;
    then ``seen["unreadable"]`` is that refusal's text."""
    from aio_pika import exceptions as ex

    arguments: dict[str, Any] = {}
    text = first_refusal
    for _ in range(MAX_PROBES):
        learned = _learn(text)
        if learned is None:
            if seen is not None:
                seen["unreadable"] = text
            return arguments
        key, value = learned
        if value is None:
            arguments.pop(key, None)
        else:
            arguments[key] = value
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, durable=True, arguments=dict(arguments))
        except ex.ChannelPreconditionFailed as exc:
            text = _text(exc)
            continue
        except Exception:
            return arguments  # deleted in between, access refused...: the caller finds out
        await channel.close()
        return arguments
    return arguments


def _learn(text: str) -> tuple[str, Any] | None:
    """(key, current value) from a 406 text; value None when the queue has no such
    argument.  None when the text is not an argument refusal we can act on."""
    m = _INEQUIVALENT.search(text)
    if m is None:
        return None
    if m.group("type") is None:
        return m.group("key"), None
    raw, kind = m.group("value"), m.group("type")
    if kind in ("longstr", "shortstr"):
        return m.group("key"), raw
    if kind == "bool":
        return m.group("key"), raw == "true"
    try:
        if kind in _INT_TYPES:
            return m.group("key"), int(raw)
        if kind in ("float", "double"):
            return m.group("key"), float(raw)
    except ValueError:
        return None
    return None  # tables, arrays, decimals: not something a work queue's limit needs


def _text(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else type(exc).__name__
