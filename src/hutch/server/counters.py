"""A channel's message counters and the broker-wide totals they end up in.

Channels count with plain int attributes (``stat_publish`` ...) to keep the hot path
cheap; when a channel closes its counts are folded into the broker's ``Totals``, so
the broker's counters never go backwards (Prometheus requires monotonic counters).
The management API and /metrics (admin/stats.py) read both.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

# Channel attribute -> RabbitMQ message_stats key.
CHANNEL_COUNTERS = {
    "stat_publish": "publish",
    "stat_confirm": "confirm",
    "stat_deliver": "deliver",
    "stat_deliver_no_ack": "deliver_no_ack",
    "stat_get": "get",
    "stat_get_no_ack": "get_no_ack",
    "stat_get_empty": "get_empty",
    "stat_ack": "ack",
    "stat_redeliver": "redeliver",
    "stat_return_unroutable": "return_unroutable",
    "stat_drop_unroutable": "drop_unroutable",
}


@dataclass(slots=True)
class Totals:
    """Counts of closed channels; add the live channels' counts for the broker total."""

    publish: int = 0
    confirm: int = 0
    deliver: int = 0
    deliver_no_ack: int = 0
    get: int = 0
    get_no_ack: int = 0
    get_empty: int = 0
    ack: int = 0
    redeliver: int = 0
    return_unroutable: int = 0
    drop_unroutable: int = 0
    # Publishes on channels in confirm mode (RabbitMQ's messages_received_confirm).
    received_confirm: int = 0
    channels_closed: int = 0
    # The highest channels_opened reported: a channel being torn down may be counted
    # as closed while its connection still lists it, and a counter must not go back.
    channels_opened_seen: int = 0


_TOTALS: weakref.WeakKeyDictionary[Any, Totals] = weakref.WeakKeyDictionary()


def _totals_in(table: weakref.WeakKeyDictionary[Any, Totals], owner: Any) -> Totals:
    t = table.get(owner)
    if t is None:
        t = table[owner] = Totals()
    return t


def totals_for(broker: Any) -> Totals:
    return _totals_in(_TOTALS, broker)


_VHOST_TOTALS: weakref.WeakKeyDictionary[Any, Totals] = weakref.WeakKeyDictionary()


def vhost_totals_for(vhost: Any) -> Totals:
    """The closed channels' counts of one vhost (RabbitMQ's vhost message_stats)."""
    return _totals_in(_VHOST_TOTALS, vhost)


def fold_into_totals(channel: Any) -> None:
    """A channel is going away: move its counters into the broker's and its vhost's
    totals (idempotent)."""
    totals = totals_for(channel.conn.broker)
    vhost = getattr(channel.conn, "vhost", None)
    vtotals = vhost_totals_for(vhost) if vhost is not None else None
    if not channel.stats_folded:
        channel.stats_folded = True
        totals.channels_closed += 1
    if channel.confirm:
        totals.received_confirm += channel.stat_publish
    for attr, key in CHANNEL_COUNTERS.items():
        n = getattr(channel, attr)
        if n:
            setattr(totals, key, getattr(totals, key) + n)
            if vtotals is not None:
                setattr(vtotals, key, getattr(vtotals, key) + n)
            setattr(channel, attr, 0)
