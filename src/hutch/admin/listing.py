"""The query parameters every management-API reply understands, in one place.

RabbitMQ's management plugin shapes its replies in ``rabbit_mgmt_util``
(``reply``, ``reply_list``, ``reply_list_or_paginate``, ``augment_resources``);
this module does the same for Hutch, applied by the dispatcher
(``http_api.ManagementApi._dispatch``) to whatever JSON a handler returns, so
no endpoint handles them itself:

* ``columns=a,b.c``: only these fields (dotted = nested), on any reply;
* ``sort=field.path`` and ``sort_reverse=true``: every list is sorted by the
  route's default keys (``vhost``, ``name`` for most), ``sort`` goes first;
  ``sort=`` (empty) leaves the list as it is;
* ``page``, ``page_size`` (default 100, at most 500), ``name`` and
  ``use_regex``: on the lists RabbitMQ 3.10 pages (queues, exchanges, vhosts,
  connections, channels), the reply becomes the envelope ``{total_count,
  item_count, filtered_count, page, page_size, page_count, items}``; ``name``
  keeps the items whose name contains it (case-insensitive) or, with
  ``use_regex=true``, matches it as a regex (case-insensitive).  Without
  ``page`` none of these apply, as in RabbitMQ.

Errors are RabbitMQ's 400s: ``invalid_pagination_parameters`` ("Invalid
pagination parameters: page number 0, page size 501"), ``page_out_of_range``
and ``bad_request`` ("Pagination parameters are invalid") for a page that is
not a number or a regex that does not compile.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
DEFAULT_SORT = ("vhost", "name")


class ListingError(Exception):
    """A 400 in RabbitMQ's words: ``error`` is its type, ``reason`` its text."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


@dataclass
class Pagination:
    page: int
    page_size: int
    name: str | None
    use_regex: bool


def _integer(query: Mapping[str, str], key: str) -> int | None:
    """``list_to_integer`` in RabbitMQ: digits with an optional sign, nothing else."""
    text = query.get(key)
    if text is None:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ListingError("bad_request", "Pagination parameters are invalid")
    return int(text)


def _erlang(value: int | None) -> str:
    return "undefined" if value is None else str(value)


def pagination(query: Mapping[str, str]) -> Pagination | None:
    """``pagination_params``: None without ``page``; the page size defaults to 100."""
    page = _integer(query, "page")
    size = _integer(query, "page_size")
    if page is None:
        return None
    if page > 0 and (size is None or 0 < size <= MAX_PAGE_SIZE):
        return Pagination(page, DEFAULT_PAGE_SIZE if size is None else size,
                          query.get("name"), query.get("use_regex") == "true")
    raise ListingError("invalid_pagination_parameters",
                       f"Invalid pagination parameters: page number {_erlang(page)}, "
                       f"page size {_erlang(size)}")


# -- sorting --------------------------------------------------------------------------------
def _dotted(item: Any, path: str) -> Any:
    """``get_dotted_value``: a missing field sorts as 0 ("nothing" before everything)."""
    value = item
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return 0
        value = value[key]
    return value


def _erlang_order(value: Any) -> tuple[Any, ...]:
    """A key that orders JSON values as Erlang orders the terms RabbitMQ sorts:
    number < atom (true, false, null) < map < list < binary (strings, bytewise)."""
    if isinstance(value, bool):
        return (1, "true" if value else "false")
    if isinstance(value, int | float):
        return (0, value if not (isinstance(value, float) and math.isnan(value)) else 0)
    if value is None:
        return (1, "undefined")
    if isinstance(value, dict):
        return (2, len(value), [(_erlang_order(k), _erlang_order(v))
                                for k, v in sorted(value.items())])
    if isinstance(value, list):
        return (3, [_erlang_order(v) for v in value])
    return (4, str(value).encode("utf-8", "surrogateescape"))


def sort_items(items: list[Any], default: tuple[str, ...], query: Mapping[str, str]) -> list[Any]:
    """``sort_list``: by ``sort`` then the default keys; ``sort=`` keeps the order."""
    sort = query.get("sort")
    if sort == "":
        return items
    keys = ([sort] if sort is not None else []) + list(default)
    out = sorted(items, key=lambda item: [_erlang_order(_dotted(item, k)) for k in keys])
    if query.get("sort_reverse") == "true":
        out.reverse()
    return out


# -- paging -----------------------------------------------------------------------------------
def _matches(item: Any, p: Pagination) -> bool:
    """``maybe_filter_by_keyword(name, ...)``: substring or regex, case-insensitive."""
    if not p.name:
        return True
    value = item.get("name") if isinstance(item, dict) else None
    if not isinstance(value, str):
        return False
    if p.use_regex:
        return re.search(p.name, value, re.IGNORECASE) is not None
    return p.name.lower() in value.lower()


def paginate(items: list[Any], p: Pagination) -> dict[str, Any]:
    """``filter_and_paginate`` + ``range_response``."""
    if p.name and p.use_regex:
        try:
            re.compile(p.name)
        except re.error:
            raise ListingError("bad_request", "Pagination parameters are invalid") from None
    filtered = [i for i in items if _matches(i, p)]
    offset = (p.page - 1) * p.page_size
    if offset > len(filtered):
        raise ListingError("page_out_of_range",
                           f"Page out of range, page: {p.page} page size: {p.page_size}, "
                           f"len: {len(filtered)}")
    page = filtered[offset : offset + p.page_size]
    return {"total_count": len(items), "item_count": len(page),
            "filtered_count": len(filtered), "page": p.page, "page_size": p.page_size,
            "page_count": (len(filtered) + p.page_size - 1) // p.page_size, "items": page}


# -- columns ------------------------------------------------------------------------------------
def _columns(query: Mapping[str, str]) -> list[list[str]] | None:
    text = query.get("columns")
    if text is None:
        return None
    return [[k for k in c.split(".") if k] for c in text.split(",") if c.split(".")[0]]


def _extract(value: Any, cols: list[list[str]] | None) -> Any:
    """``extract_column_items``: keep the wanted fields of an object, recursing into
    nested objects for dotted columns and into lists element by element."""
    if cols is None:
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            wanted = [c for c in cols if c and c[0] == k]
            if not wanted:
                continue
            # A bare column takes the whole value (descend_columns: [[K] | _] -> all).
            out[k] = v if any(len(c) == 1 for c in wanted) else _extract(v, [c[1:] for c in wanted])
        return out
    if isinstance(value, list):
        return [_extract(v, cols) for v in value]
    return value


# -- the one entry point -----------------------------------------------------------------------------
def shape(data: Any, query: Mapping[str, str], sort: tuple[str, ...] | None,
          paged: bool) -> Any:
    """What RabbitMQ's ``reply``/``reply_list`` make of ``data`` given the query:
    ``sort`` is the route's default sort for a list (None: not a list endpoint),
    ``paged`` whether it takes ``page``.  Raises ``ListingError``."""
    cols = _columns(query)
    if isinstance(data, list) and sort is not None:
        p = pagination(query) if paged else None
        data = sort_items(data, sort, query)
        if p is not None:
            envelope = paginate(data, p)
            envelope["items"] = _extract(envelope["items"], cols)
            return envelope
    return _extract(data, cols)
