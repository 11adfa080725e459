"""Changing the resource alarm thresholds of a running broker: what rabbitmqctl's
``set_vm_memory_high_watermark`` and ``set_disk_free_limit`` do over Erlang RPC,
``hutch ctl`` does over these two Hutch-only endpoints (RabbitMQ's management API
has none).  Administrators only; the change takes effect at once and lasts until
the broker stops, as in RabbitMQ.

  PUT /api/hutch/vm-memory-high-watermark  {"relative": 0.4} | {"absolute": "1GB"}
  PUT /api/hutch/disk-free-limit           {"absolute": "50MB"} | {"mem_relative": 1.5}

``absolute`` takes bytes or a size with RabbitMQ's units (broker/alarms.py).  A bad
value is 400 ``bad_request`` with the reason; success is 204.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..broker.alarms import Limit, parse_information_unit
from .http_api import Request, Router, bad_request, no_content


def _limit(body: dict[str, Any], relative: str, at_most: float | None) -> Limit:
    if len(body) != 1 or next(iter(body)) not in (relative, "absolute"):
        raise bad_request(f'expected {{"{relative}": <fraction>}} or {{"absolute": <size>}}')
    kind, value = next(iter(body.items()))
    if kind == "absolute":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return Limit("absolute", value)
        if isinstance(value, str):
            try:
                return Limit("absolute", parse_information_unit(value))
            except ValueError as exc:
                raise bad_request(str(exc)) from None
        raise bad_request(f"invalid size {value!r}")
    if (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            and (at_most is None or value <= at_most)):
        return Limit(kind, float(value))
    bound = f"between 0.0 and {at_most}" if at_most is not None else "of 0.0 or more"
    raise bad_request(f"invalid fraction {value!r}: a number {bound}")


async def set_memory_watermark(req: Request) -> web.Response:
    req.require_admin()
    # rabbitmqctl refuses a fraction above 1.0 ("between 0.0 and 1.0").
    limit = _limit(await req.body(), "relative", 1.0)
    req.broker.resources.set_memory_watermark(limit)
    return no_content()


async def set_disk_free_limit(req: Request) -> web.Response:
    req.require_admin()
    limit = _limit(await req.body(), "mem_relative", None)
    req.broker.resources.set_disk_limit(limit)
    return no_content()


def register(router: Router) -> None:
    router.add("PUT", "hutch/vm-memory-high-watermark", set_memory_watermark)
    router.add("PUT", "hutch/disk-free-limit", set_disk_free_limit)
