"""One statistics sample: feed every object's counters to ``Rates``.

Run every ``SAMPLE_INTERVAL`` seconds by the management API; objects that
disappeared are forgotten so the sample tables do not grow without bound.
"""

from __future__ import annotations

from typing import Any

from .stats import Rates, broker_counts, channel_counts
from .views import queue_gauges, queue_key, queue_totals


def sample(broker: Any, rates: Rates) -> None:
    live: set[Any] = {("overview",)}
    counts: dict[str, float] = dict(broker_counts(broker))
    counts.update(queue_totals(broker))
    rates.observe(("overview",), counts)
    for vhost in list(broker.vhosts.values()):
        key = ("vhost", vhost.name)
        live.add(key)
        ready = sum(q.message_count for q in vhost.queues.values())
        unacked = sum(q.unacked_count for q in vhost.queues.values())
        rates.observe(key, {"messages": ready + unacked, "messages_ready": ready,
                            "messages_unacknowledged": unacked})
        for q in list(vhost.queues.values()):
            qkey = queue_key(q)
            live.add(qkey)
            rates.observe(qkey, queue_gauges(q))
    for conn in list(broker.connections):
        for ch in list(conn.channels.values()):
            key = ("channel", id(ch))
            live.add(key)
            c = channel_counts(ch)
            c["deliver_get"] = c["deliver"] + c["deliver_no_ack"] + c["get"] + c["get_no_ack"]
            rates.observe(key, c)
    rates.forget_missing(live)
