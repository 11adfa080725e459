"""``/metrics`` on the management port: Prometheus text format (the per-object view of
the Prometheus port, ``tests/admin/test_prometheus.py``), parsed with prometheus_client."""

from __future__ import annotations

import pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.hutch_only


def scrape(http_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = requests.get(http_url + "metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_queue_gauges_and_broker_counters(private_hutch) -> None:
    url = private_hutch.http_url
    conn = pika.BlockingConnection(pika.URLParameters(private_hutch.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("jobs")
    for i in range(5):
        ch.basic_publish("", "jobs", b"%d" % i)
    ch.basic_qos(prefetch_count=2)
    got = []
    ch.basic_consume("jobs", lambda c, m, p, b: got.append(m.delivery_tag))
    while len(got) < 2:
        conn.process_data_events(0.1)
    ch.basic_ack(got[0])
    conn.process_data_events(0.2)
    m = scrape(url)
    labels = (("queue", "jobs"), ("vhost", "/"))
    assert m[("rabbitmq_queue_messages_ready", labels)] == 2
    assert m[("rabbitmq_queue_messages_unacked", labels)] == 2  # one acked, two more delivered
    assert m[("rabbitmq_queue_consumers", labels)] == 1
    # RabbitMQ's labels: the protocol, and the queue type for what queues count.
    proto = (("protocol", "amqp091"),)
    qtype = (("protocol", "amqp091"), ("queue_type", "rabbit_classic_queue"))
    assert m[("rabbitmq_global_messages_received_total", proto)] == 5
    assert m[("rabbitmq_global_messages_confirmed_total", proto)] == 5
    assert m[("rabbitmq_global_messages_delivered_total", qtype)] == 3
    assert m[("rabbitmq_global_messages_acknowledged_total", qtype)] == 1
    assert m[("rabbitmq_connections", ())] == 1
    conn.close()
    # Counters survive the channel closing (folded into the broker totals).
    m = scrape(url)
    assert m[("rabbitmq_global_messages_received_total", proto)] == 5
    assert m[("rabbitmq_global_messages_acknowledged_total", qtype)] == 1
    assert m[("rabbitmq_queue_messages_ready", labels)] == 4  # the unacked two came back
