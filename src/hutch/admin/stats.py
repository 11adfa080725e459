"""Message counters and rates, the numbers behind RabbitMQ's ``message_stats``.

Channels count with plain int attributes (``stat_publish`` ...); when a
channel closes its counts are folded into the broker-wide ``Totals``
(server/counters.py) so the broker's counters never go backwards.
Rates are what RabbitMQ's management plugin shows as ``*_details.rate``: the
change per second between two samples taken ``SAMPLE_INTERVAL`` apart.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..server.counters import CHANNEL_COUNTERS, Totals, totals_for, vhost_totals_for
from .history import History

SAMPLE_INTERVAL = 5.0  # RabbitMQ's collect_statistics_interval default


def channel_counts(channel: Any) -> dict[str, int]:
    return {key: getattr(channel, attr) for attr, key in CHANNEL_COUNTERS.items()}


def broker_counts(broker: Any) -> dict[str, int]:
    """Broker-wide monotonic counters: closed channels plus live ones."""
    t = totals_for(broker)
    out = {f.name: getattr(t, f.name) for f in fields(Totals)}
    for conn in list(broker.connections):
        for ch in list(getattr(conn, "channels", {}).values()):
            for attr, key in CHANNEL_COUNTERS.items():
                out[key] += getattr(ch, attr)
            if ch.confirm:
                out["received_confirm"] += ch.stat_publish
    out["deliver_get"] = out["deliver"] + out["deliver_no_ack"] + out["get"] + out["get_no_ack"]
    # Routed: received and neither dropped nor returned as unroutable.
    out["routed"] = out["publish"] - out["drop_unroutable"] - out["return_unroutable"]
    return out


# The counters RabbitMQ shows in a vhost's message_stats.
VHOST_COUNTERS = ("publish", "confirm", "deliver", "deliver_no_ack", "get", "get_no_ack",
                  "get_empty", "ack", "redeliver", "return_unroutable", "drop_unroutable")


def vhost_counts(broker: Any, vhost: Any) -> dict[str, int]:
    """One vhost's monotonic counters: its closed channels plus its live ones."""
    t = vhost_totals_for(vhost)
    out = {k: getattr(t, k) for k in VHOST_COUNTERS}
    for conn in list(broker.connections):
        if getattr(conn, "vhost", None) is not vhost:
            continue
        for ch in list(getattr(conn, "channels", {}).values()):
            for attr, key in CHANNEL_COUNTERS.items():
                out[key] += getattr(ch, attr)
    out["deliver_get"] = out["deliver"] + out["deliver_no_ack"] + out["get"] + out["get_no_ack"]
    return out


def churn_counts(broker: Any) -> dict[str, int]:
    """RabbitMQ's connection_churn_metrics: connections, channels and queues come and go.

    Connections are counted by the broker's connection set as they arrive and leave,
    queues by the vhosts; a channel is counted when it closes (``fold_into_totals``),
    so opened = closed + open now."""
    t = totals_for(broker)
    conns = broker.connections
    live = sum(len(getattr(c, "channels", {})) for c in list(conns))
    t.channels_opened_seen = max(t.channels_opened_seen, t.channels_closed + live)
    return {
        "connections_opened": getattr(conns, "opened", 0),
        "connections_closed": getattr(conns, "closed", 0),
        "channels_opened": t.channels_opened_seen,
        "channels_closed": t.channels_closed,
        "queues_declared": broker.queues_declared,
        "queues_created": broker.queues_created,
        "queues_deleted": broker.queues_deleted,
    }


class Rates:
    """Per-object counter samples -> per-second rates, like the management plugin."""

    def __init__(self) -> None:
        # key -> (time, {counter: value}) of the previous and latest sample.
        self._prev: dict[Any, tuple[float, dict[str, float]]] = {}
        self._last: dict[Any, tuple[float, dict[str, float]]] = {}
        # What ?lengths_age=... and ?msg_rates_age=... answer from (history.py).
        self.history = History()

    def observe(self, key: Any, values: Mapping[str, float], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None:
            self._prev[key] = last
            if last[1] == values:  # an idle object: share the values, history unchanged
                self._last[key] = (now, last[1])
                return
        self._last[key] = (now, dict(values))
        self.history.observe(key, values)

    def rate(self, key: Any, counter: str) -> float:
        prev, last = self._prev.get(key), self._last.get(key)
        if prev is None or last is None or last[0] <= prev[0]:
            return 0.0
        delta = last[1].get(counter, 0) - prev[1].get(counter, 0)
        return round(delta / (last[0] - prev[0]), 1)

    def forget_missing(self, live: set[Any]) -> None:
        for d in (self._prev, self._last):
            for key in [k for k in d if k not in live]:
                del d[key]
        self.history.forget_missing(live)


def with_rates(counts: dict[str, int], rates: Rates, key: Any) -> dict[str, Any]:
    """RabbitMQ's shape: ``{"publish": 5, "publish_details": {"rate": 0.0}, ...}``."""
    out: dict[str, Any] = {}
    for name in sorted(counts):
        out[name] = counts[name]
        out[f"{name}_details"] = {"rate": rates.rate(key, name)}
    return out
