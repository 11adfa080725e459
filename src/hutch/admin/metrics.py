"""``/metrics`` in Prometheus text format, via prometheus_client.

A custom collector reads the broker at scrape time (nothing is updated on the
hot path); names follow RabbitMQ's own prometheus plugin where one exists
(``rabbitmq_queue_messages_ready``, ``rabbitmq_global_messages_received_total``
...), so existing dashboards and alerts work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .stats import broker_counts
from .views import object_totals, queue_memory

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class BrokerCollector(Collector):
    def __init__(self, broker: Any) -> None:
        self.broker = broker

    def collect(self) -> Iterator[Metric]:
        broker = self.broker
        labels = ["vhost", "queue"]
        ready = GaugeMetricFamily("rabbitmq_queue_messages_ready",
                                  "Messages ready to be delivered to consumers", labels=labels)
        unacked = GaugeMetricFamily("rabbitmq_queue_messages_unacked",
                                    "Messages delivered to consumers but not yet acknowledged",
                                    labels=labels)
        consumers = GaugeMetricFamily("rabbitmq_queue_consumers", "Consumers on a queue",
                                      labels=labels)
        qbytes = GaugeMetricFamily("rabbitmq_queue_process_memory_bytes",
                                   "Approximate memory used by a queue's messages", labels=labels)
        published = CounterMetricFamily("rabbitmq_queue_messages_published",
                                        "Messages published into a queue", labels=labels)
        for vhost in list(broker.vhosts.values()):
            for q in list(vhost.queues.values()):
                lv = [vhost.name, q.name]
                ready.add_metric(lv, q.message_count)
                unacked.add_metric(lv, q.unacked_count)
                consumers.add_metric(lv, len(q.consumers))
                qbytes.add_metric(lv, queue_memory(q))
                published.add_metric(lv, q.published)
        yield from (ready, unacked, consumers, qbytes, published)

        counts = broker_counts(broker)
        for name, help_text, value in (
            ("rabbitmq_global_messages_received_total", "Messages published by clients",
             counts["publish"]),
            ("rabbitmq_global_messages_confirmed_total", "Publisher confirms sent",
             counts["confirm"]),
            ("rabbitmq_global_messages_delivered_total",
             "Messages delivered to consumers or fetched with basic.get", counts["deliver_get"]),
            ("rabbitmq_global_messages_acknowledged_total", "Messages acknowledged by consumers",
             counts["ack"]),
            ("rabbitmq_global_messages_redelivered_total", "Messages redelivered",
             counts["redeliver"]),
            ("rabbitmq_global_messages_unroutable_dropped_total",
             "Unroutable messages dropped", counts["drop_unroutable"]),
            ("rabbitmq_global_messages_unroutable_returned_total",
             "Unroutable mandatory messages returned", counts["return_unroutable"]),
        ):
            # prometheus_client appends _total itself for counters.
            yield CounterMetricFamily(name.removesuffix("_total"), help_text, value=value)

        totals = object_totals(broker)
        for key, help_text in (("connections", "Open AMQP connections"),
                               ("channels", "Open channels"), ("queues", "Queues"),
                               ("consumers", "Consumers"), ("exchanges", "Exchanges")):
            yield GaugeMetricFamily(f"rabbitmq_{key}", help_text, value=totals[key])
        yield GaugeMetricFamily("hutch_queued_message_bytes",
                                "Bytes of queued message bodies (the memory alarm's measure)",
                                value=broker.queued_bytes)
        yield GaugeMetricFamily("rabbitmq_alarms_memory_used_watermark",
                                "1 if the memory alarm is in effect",
                                value=1 if broker.memory_alarm else 0)


_REGISTRIES: dict[int, CollectorRegistry] = {}


def registry_for(broker: Any) -> CollectorRegistry:
    reg = _REGISTRIES.get(id(broker))
    if reg is None:
        reg = _REGISTRIES[id(broker)] = CollectorRegistry(auto_describe=False)
        reg.register(BrokerCollector(broker))
    return reg


async def handle_metrics(req: Any) -> web.Response:
    body = generate_latest(registry_for(req.broker))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
