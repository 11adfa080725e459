"""The content header of a dead-lettered message: ``x-death`` as RabbitMQ 3.10 keeps it.

Follows rabbit_dead_letter:make_msg / update_x_death_header (3.10):

* ``x-death`` absent: ``x-first-death-reason/-queue/-exchange`` are set (replacing
  whatever the publisher put there) and ``x-death`` becomes one entry with count 1.
* ``x-death`` an array: the entry for the same queue and reason gets count + 1 (its
  other fields are kept) and moves to the front; without one a new entry is put first.
* ``x-death`` of any other type (a client re-published it as a string, say): reset to
  one new entry, with a warning; the ``x-first-death-*`` headers are left alone.

Headers are whatever a client sent, so nothing here may assume a type.  Where RabbitMQ
itself would crash its queue process (an array element that is not a table, a
``count`` that is not a number), Hutch keeps going: a non-table element never matches
and stays where it is, a count that is not an integer starts again at 1.

A properties block that does not decode at all (Hutch does not decode headers on
publish; RabbitMQ refuses such a publish with 541) is passed on unchanged: the message
still reaches the dead-letter queue, without a new ``x-death`` entry.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from ..protocol.codec import DecodeError, Int64
from ..protocol.frames import content_header_payload
from ..protocol.properties import decode_properties, encode_properties

log = logging.getLogger("hutch.deadletter")


def dead_letter_header(header: bytes, body_size: int, reason: str, queue: str, exchange: str,
                       routing_key: str) -> bytes:
    """The content header payload (as ``Message.header``) for the dead-lettered copy."""
    try:
        props = decode_properties(header[12:])
    except DecodeError as exc:
        log.warning("dead-lettering a message from queue '%s' whose properties do not "
                    "decode (%s): passed on without x-death", queue, exc)
        return header
    headers = props.get("headers")
    headers = dict(headers) if isinstance(headers, dict) else {}
    info: dict[str, Any] = {
        "reason": reason, "queue": queue,
        "time": datetime.datetime.now(datetime.UTC).replace(microsecond=0),
        "exchange": exchange, "routing-keys": [routing_key],
    }
    if "expiration" in props:
        info["original-expiration"] = props.pop("expiration")
    deaths = headers.get("x-death", _ABSENT)
    if deaths is _ABSENT:
        headers["x-first-death-reason"] = reason
        headers["x-first-death-queue"] = queue
        headers["x-first-death-exchange"] = exchange
        headers["x-death"] = [{"count": Int64(1), **info}]
    elif isinstance(deaths, list):
        match = next((i for i, d in enumerate(deaths) if isinstance(d, dict)
                      and d.get("queue") == queue and d.get("reason") == reason), None)
        if match is None:
            entry = {"count": Int64(1), **info}
        else:
            entry = dict(deaths.pop(match))
            count = entry.get("count")
            if isinstance(count, int) and not isinstance(count, bool):
                # A long, as in RabbitMQ, whose 64-bit encoding wraps around.
                entry["count"] = Int64((count + 1 + 2**63) % 2**64 - 2**63)
            else:
                entry["count"] = Int64(1)
        headers["x-death"] = [entry, *deaths]
    else:
        log.warning("Message has invalid x-death header (type: %s). Resetting header",
                    type(deaths).__name__)
        headers["x-death"] = [{"count": Int64(1), **info}]
    props["headers"] = headers
    return content_header_payload(body_size, encode_properties(props))


_ABSENT = object()
