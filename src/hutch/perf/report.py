"""Latency histograms, the live progress line and the final summary of ``hutch perf``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

# Log-scale buckets: 32 per power of two (about 2% resolution), nanoseconds up to ~2^40 (18 min).
_PER_OCTAVE = 32
_BUCKETS = 40 * _PER_OCTAVE


class Histogram:
    """Counts of latencies in log-spaced buckets; merging and percentiles are exact up to
    the bucket width, recording is one log2 and one list increment."""

    __slots__ = ("buckets", "count", "max_ns", "total_ns")

    def __init__(self) -> None:
        self.buckets = [0] * _BUCKETS
        self.count = 0
        self.max_ns = 0
        self.total_ns = 0

    def record(self, ns: int, n: int = 1) -> None:
        if ns < 1:
            ns = 1
        i = int(math.log2(ns) * _PER_OCTAVE)
        self.buckets[i if i < _BUCKETS else _BUCKETS - 1] += n
        self.count += n
        self.total_ns += ns * n
        if ns > self.max_ns:
            self.max_ns = ns

    def merge(self, other: Histogram) -> None:
        for i, c in enumerate(other.buckets):
            if c:
                self.buckets[i] += c
        self.count += other.count
        self.total_ns += other.total_ns
        self.max_ns = max(self.max_ns, other.max_ns)

    def percentile(self, p: float) -> float:
        """The p-th percentile in nanoseconds (bucket midpoint; never above the max)."""
        if not self.count:
            return float("nan")
        if p >= 100:
            return float(self.max_ns)
        rank = max(1, math.ceil(self.count * p / 100))
        seen = 0
        for i, c in enumerate(self.buckets):
            seen += c
            if seen >= rank:
                return min(2 ** ((i + 0.5) / _PER_OCTAVE), float(self.max_ns))
        return float(self.max_ns)

    def to_state(self) -> tuple[dict[int, int], int, int, int]:
        """A compact picklable form (child process -> parent)."""
        return ({i: c for i, c in enumerate(self.buckets) if c}, self.count, self.max_ns, self.total_ns)

    @classmethod
    def from_state(cls, state: tuple[dict[int, int], int, int, int]) -> Histogram:
        h = cls()
        buckets, h.count, h.max_ns, h.total_ns = state
        for i, c in buckets.items():
            h.buckets[i] = c
        return h

    def summary_ms(self) -> dict[str, float] | None:
        if not self.count:
            return None
        out = {f"p{p}": round(self.percentile(p) / 1e6, 3) for p in (50, 95, 99)}
        out["max"] = round(self.max_ns / 1e6, 3)
        out["mean"] = round(self.total_ns / self.count / 1e6, 3)
        out["samples"] = self.count
        return out


def progress_line(elapsed: float, rates: Mapping[str, float], totals: dict[str, int]) -> str:
    parts = [f"{elapsed:6.1f}s"]
    for key in ("sent", "confirmed", "received"):
        if key in rates:
            parts.append(f"{key} {rates[key]:>9,.0f} msg/s")
    for key in ("nacked", "returned"):
        if totals.get(key):
            parts.append(f"{key} {totals[key]:,}")
    if "sent" in totals and "received" in totals:
        parts.append(f"backlog {max(0, totals['sent'] - totals['nacked'] - totals['received']):,}")
    return "  ".join(parts)


def format_summary(s: dict[str, Any]) -> str:
    lines = [f"hutch perf: {s['producers']} producer(s), {s['consumers']} consumer(s), "
             f"{s['size']}-byte {'persistent' if s['persistent'] else 'transient'} messages, "
             f"queue {s['queue']!r}"]
    lines.append(f"  duration       {s['duration_s']:.2f} s")
    for key in ("sent", "confirmed", "nacked", "returned", "received"):
        if key in s["totals"] and (s["totals"][key] or key not in ("nacked", "returned")):
            rate = s["rates"].get(key)
            tail = f"  ({rate:,.0f} msg/s)" if rate is not None else ""
            lines.append(f"  {key:<14} {s['totals'][key]:,}{tail}")
    for key, label in (("confirm_latency_ms", "confirm latency"),
                       ("latency_ms", "publish->deliver latency")):
        lat = s.get(key)
        if lat:
            lines.append(f"  {label} ms: p50 {lat['p50']:.2f}  p95 {lat['p95']:.2f}  "
                         f"p99 {lat['p99']:.2f}  max {lat['max']:.2f}")
    for err in s.get("errors", []):
        lines.append(f"  error: {err}")
    return "\n".join(lines)


def dump_json(s: dict[str, Any]) -> str:
    return json.dumps(s, indent=2, sort_keys=True)
