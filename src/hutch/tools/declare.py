"""Declaring the work queue the way the seeds do, without tripping over existing queues."""

from __future__ import annotations

import sys
from typing import Any

from .common import EX_UNAVAILABLE, ToolError


async def declare_queue(connection: Any, channel: Any, name: str,
                        seen: dict[str, Any] | None = None) -> Any:
    """``queue_declare(name, durable=True)`` as the seeds do.  If the queue already
    exists with other properties (say an ``x-dead-letter-exchange`` set by whoever
    created it), the broker answers 406 and closes the channel; then we use the queue
    as it is (a passive declare on a fresh channel) rather than refuse to work.
    Returns the channel to go on with.  ``seen["quorum"]`` becomes True when the 406
    says the queue is a quorum queue (then the broker counts deliveries: retry.py)."""
    from aio_pika import exceptions as ex
    from aiormq.exceptions import ChannelAccessRefused

    try:
        await channel.declare_queue(name, durable=True)
        return channel
    except ex.ChannelPreconditionFailed as exc:
        text = _text(exc)
        if seen is not None and "'x-queue-type'" in text and "'quorum'" in text:
            seen["quorum"] = True
        print(f"hutch: note: using the existing queue '{name}' as it is ({_text(exc)})",
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


def _text(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else type(exc).__name__
