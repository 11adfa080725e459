"""Sample history on the endpoints RabbitMQ gives it (history.py has the rules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .history import RangeError, decorate, parse_ranges
from .http_api import Request, bad_request


def with_history(req: Request, data: dict[str, Any], keys: Iterable[Any], *,
                 ceil_lengths: bool = False, lengths_in: str | None = None) -> dict[str, Any]:
    """``data`` with ``samples``/``avg``/``avg_rate`` added as the query asks; a bad
    range is 400 ``Invalid range parameters: age A, incr I``."""
    try:
        lengths, msg_rates = parse_ranges(req.http.query, ceil_lengths)
    except RangeError as exc:
        raise bad_request(str(exc)) from None
    if lengths is not None or msg_rates is not None:
        decorate(data, req.api.rates.history, keys, lengths, msg_rates, lengths_in)
    return data
