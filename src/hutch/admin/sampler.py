"""One statistics sample: feed every object's counters to ``Rates``.

Run every ``SAMPLE_INTERVAL`` seconds by the management API; objects that
disappeared are forgotten so the sample tables do not grow without bound.
"""

from __future__ import annotations

from typing import Any

from .stats import Rates, broker_counts, channel_counts, vhost_counts
from .views import (
    connection_counts,
    connection_key,
    exchange_counts,
    exchange_key,
    queue_gauges,
    queue_key,
    queue_totals,
)


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
                            "messages_unacknowledged": unacked,
                            **vhost_counts(broker, vhost)})
        for q in list(vhost.queues.values()):
            qkey = queue_key(q)
            live.add(qkey)
            rates.observe(qkey, queue_gauges(q))
        for ex in list(vhost.exchanges.values()):
            if ex.publish_in or ex.publish_out:  # an exchange nobody published to has no rates
                xkey = exchange_key(ex)
                live.add(xkey)
                rates.observe(xkey, exchange_counts(ex))
    for conn in list(broker.connections):
        ckey = connection_key(conn)
        live.add(ckey)
        rates.observe(ckey, connection_counts(conn))
        for ch in list(conn.channels.values()):
            key = ("channel", id(ch))
            live.add(key)
            c = channel_counts(ch)
            c["deliver_get"] = c["deliver"] + c["deliver_no_ack"] + c["get"] + c["get_no_ack"]
            rates.observe(key, c)
    rates.forget_missing(live)
