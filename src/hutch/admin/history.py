"""Sample history: RabbitMQ's ``?lengths_age=&lengths_incr=&msg_rates_age=&msg_rates_incr=``.

Asked with an age and an increment (seconds), RabbitMQ's management API adds
to each ``*_details`` object ``samples: [{"sample": N, "timestamp": MS}, ...]``
(newest first, timestamps multiples of the increment, ``age / incr + 1`` of
them), ``avg`` (their mean) and ``avg_rate`` (newest minus oldest per second).
``lengths`` covers queue lengths (``messages``, ``messages_ready``,
``messages_unacknowledged``), ``msg_rates`` the ``message_stats`` counters,
whose samples are the cumulative counter values.  A parameter that is missing
or not an integer means no history (as ``rabbit_mgmt_util:range/3``); an age
or increment below 1, or more than 500 samples, is a 400.

``History`` keeps ``RETAIN`` seconds of what the sampler observes every 5 s,
run-length encoded per object: a new entry only when one of the object's
values changed, so an idle queue costs one entry however long it stays idle.
The value at a time is the newest entry at or before it; before an object's
first entry it is 0, as RabbitMQ fills times before an object existed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RETAIN = 605.0  # seconds: RabbitMQ's basic policy keeps 600 s at 5 s
MAX_RANGE = 500  # rabbit_mgmt_util's ?MAX_RANGE: samples one reply may hold
RANGE_PREFIXES = ("lengths", "msg_rates", "data_rates", "node_stats")
LENGTHS = ("messages", "messages_ready", "messages_unacknowledged")
_INT = re.compile(r"[+-]?[0-9]+")


class RangeError(ValueError):
    """Bad range parameters: answered 400 ``bad_request`` with this text."""


@dataclass(frozen=True)
class Range:
    first: int  # ms
    last: int  # ms
    incr: int  # ms

    def times(self) -> list[int]:
        return list(range(self.last, self.first - 1, -self.incr))


def _int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or not _INT.fullmatch(raw):
        return None
    if len(raw) > 18:
        # Python refuses to convert a string of thousands of digits; anything this long
        # is far beyond MAX_RANGE samples anyway.
        raise RangeError(f"Invalid range parameters: {name} {raw[:20]}...")
    return int(raw)


def parse_range(query: Mapping[str, str], prefix: str, ceil: bool = False,
                now_ms: int | None = None) -> Range | None:
    """``rabbit_mgmt_util:range/3``: None unless both parameters are integers."""
    age, incr = _int(query, f"{prefix}_age"), _int(query, f"{prefix}_incr")
    if age is None or incr is None:
        return None
    if not (age > 0 and incr > 0 and age // incr <= MAX_RANGE):
        raise RangeError(f"Invalid range parameters: age {age}, incr {incr}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    step = incr * 1000
    last = now // step * step
    if ceil and last != now:
        last += step
    return Range(last - age * 1000, last, step)


def parse_ranges(query: Mapping[str, str], ceil_lengths: bool = False
                 ) -> tuple[Range | None, Range | None]:
    """The (lengths, msg_rates) ranges; every prefix RabbitMQ reads is validated.
    Queue endpoints round the lengths range up (RabbitMQ's ``range_ceil``)."""
    now = int(time.time() * 1000)
    ranges = [parse_range(query, p, ceil_lengths and p == "lengths", now)
              for p in RANGE_PREFIXES]
    return ranges[0], ranges[1]


class History:
    """Per object one flat list: its value names, then run-length entries
    ``[names, t0, v0, t1, v1, ...]`` (``t`` wall-clock ms the values were first seen,
    ``v`` a tuple of values).  An idle object is one entry; the names tuple and an
    all-zero values tuple are shared by every object of the same shape."""

    def __init__(self, retain: float = RETAIN) -> None:
        self.retain_ms = int(retain * 1000)
        self._runs: dict[Any, list[Any]] = {}
        self._shared: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # names; zeros by length

    def observe(self, key: Any, values: Mapping[str, float], now_ms: int | None = None) -> None:
        vals = tuple(values.values())
        runs = self._runs.get(key)
        if runs is not None:
            last = runs[-1]
            if last == vals:
                return  # unchanged: the last entry still holds (the idle case, kept cheap)
            if len(last) != len(vals):
                runs = None  # an object's value names do not change; if they did, start over
        if not any(vals):
            vals = self._shared.setdefault((len(vals),), vals)
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if runs is None:
            names = tuple(values)
            self._runs[key] = [self._shared.setdefault(names, names), now, vals]
            return
        runs.append(now)
        runs.append(vals)
        # Keep one entry at or before the retention window's start.
        horizon = now - self.retain_ms
        while len(runs) > 3 and runs[3] <= horizon:
            del runs[1:3]

    def forget_missing(self, live: set[Any]) -> None:
        for key in [k for k in self._runs if k not in live]:
            del self._runs[key]

    def entries(self) -> int:
        """How many run-length entries are held (for tests and measurements)."""
        return sum(len(r) // 2 for r in self._runs.values())

    def series(self, keys: Iterable[Any], name: str, rng: Range) -> list[float] | None:
        """The values of ``name`` at ``rng``'s times (newest first), summed over
        ``keys``; None when no key has history."""
        times = rng.times()
        total: list[float] | None = None
        for key in keys:
            runs = self._runs.get(key)
            if runs is None or name not in runs[0]:
                continue
            index = runs[0].index(name)
            out: list[float] = []
            i = len(runs) - 2
            for t in times:  # newest first: walk the runs backwards
                while i >= 1 and runs[i] > t:
                    i -= 2
                out.append(runs[i + 1][index] if i >= 1 else 0)
            total = out if total is None else [a + b for a, b in zip(total, out, strict=True)]
        return total


def details(values: list[float], rng: Range) -> dict[str, Any]:
    """``samples``, ``avg`` and ``avg_rate`` (``rabbit_mgmt_stats:average/3``)."""
    times = rng.times()
    out: dict[str, Any] = {"samples": [{"sample": v, "timestamp": t}
                                       for v, t in zip(values, times, strict=True)]}
    if len(values) > 1:
        out["avg_rate"] = (values[0] - values[-1]) * 1000 / (times[0] - times[-1])
        out["avg"] = sum(values) / len(values)
    return out


def add_samples(obj: dict[str, Any], history: History, keys: Iterable[Any],
                rng: Range | None, names: Iterable[str] | None = None) -> None:
    """Add history to each ``NAME_details`` of ``obj`` (all of them unless ``names``)."""
    if rng is None:
        return
    keys = list(keys)
    wanted = [k[:-8] for k in obj if k.endswith("_details")] if names is None else names
    for name in wanted:
        target = obj.get(f"{name}_details")
        if not isinstance(target, dict):
            continue
        values = history.series(keys, name, rng)
        if values is None:
            values = [0] * len(rng.times())
        target.update(details(values, rng))


def decorate(data: dict[str, Any], history: History, keys: Iterable[Any],
             lengths: Range | None, msg_rates: Range | None,
             lengths_in: str | None = None) -> None:
    """History for an object's queue lengths (top level, or in ``lengths_in`` such
    as the overview's ``queue_totals``) and its ``message_stats``."""
    keys = list(keys)
    holder = data.get(lengths_in) if lengths_in else data
    if isinstance(holder, dict):
        add_samples(holder, history, keys, lengths, LENGTHS)
    stats = data.get("message_stats")
    if isinstance(stats, dict):
        add_samples(stats, history, keys, msg_rates)
