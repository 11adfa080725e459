"""Prometheus metrics with RabbitMQ's names, labels and endpoints, via prometheus_client.

Follows the ``rabbitmq_prometheus`` plugin of RabbitMQ 3.10
(``prometheus_rabbitmq_core_metrics_collector.erl``, ``..._global_metrics_collector``,
``..._alarm_metrics_collector``) so its Grafana dashboards ("RabbitMQ-Overview") and
alerts work unchanged.  Three views, as the plugin serves them:

* ``aggregated`` (``/metrics``): every family of the core collector as one unlabeled
  sample summed over all objects, plus the object totals (``rabbitmq_queues`` ...),
  the global counters (``rabbitmq_global_*{protocol="amqp091"...}``), the alarms and
  ``rabbitmq_identity_info`` / ``rabbitmq_build_info``.
* ``per-object`` (``/metrics/per-object``): the same families, one sample per queue /
  channel / connection (labels ``vhost``, ``queue``, ``channel``); no alarms (RabbitMQ
  registers the alarm collector on the default registry only).
* ``detailed`` (``/metrics/detailed?family=...&vhost=...``): only the requested
  families (RabbitMQ's ETS table names: ``queue_coarse_metrics``, ...), per object,
  prefixed ``rabbitmq_detailed_``; ``vhost`` filters the queue families.  No totals
  and no global counters, only the identity.

A collector reads the broker at scrape time: nothing is added to the hot path.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from ..broker.alarms import rss
from ..protocol.state import RUNNING
from ..version import __version__
from .definitions import RABBIT_VERSION
from .stats import broker_counts, churn_counts
from .views import node_name, object_totals, queue_memory

# RabbitMQ's plugin answers with the 0.0.4 text format (prometheus_client >= 0.21
# would name 1.0.0, which older Prometheus servers do not know).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROTOCOL = {"protocol": "amqp091"}
# Hutch queues are classic queues as far as RabbitMQ's counters are concerned.
QUEUE_TYPE = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}

# A family: (name, kind, help, value of one object).  Objects are queues, channels or
# connections depending on the table; names and help texts are RabbitMQ's.
Family = tuple[str, str, str, Callable[[Any], float]]


def _chan_count(key: str) -> Callable[[Any], float]:
    attr = "stat_" + key
    return lambda ch: getattr(ch, attr)


QUEUE_TABLES: dict[str, list[Family]] = {
    "queue_coarse_metrics": [
        ("queue_messages_ready", "gauge", "Messages ready to be delivered to consumers",
         lambda q: q.message_count),
        ("queue_messages_unacked", "gauge",
         "Messages delivered to consumers but not yet acknowledged", lambda q: q.unacked_count),
        ("queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth",
         lambda q: q.message_count + q.unacked_count),
    ],
    "queue_metrics": [
        ("queue_consumers", "gauge", "Consumers on a queue", lambda q: len(q.consumers)),
        ("queue_process_memory_bytes", "gauge",
         "Memory in bytes used by the Erlang queue process", queue_memory),
        ("queue_messages_bytes", "gauge", "Size in bytes of ready and unacknowledged messages",
         lambda q: q.ready_bytes + q.unacked_bytes),
        ("queue_messages_ready_bytes", "gauge", "Size in bytes of ready messages",
         lambda q: q.ready_bytes),
        ("queue_messages_unacked_bytes", "gauge",
         "Size in bytes of all unacknowledged messages", lambda q: q.unacked_bytes),
        ("queue_messages_paged_out", "gauge", "Messages paged out to disk",
         lambda q: getattr(q, "paged", 0)),
        ("queue_messages_paged_out_bytes", "gauge", "Size in bytes of messages paged out to disk",
         lambda q: getattr(q, "paged_bytes", 0)),
    ],
    # A cheaper subset of queue_metrics, used when queue_metrics is not requested.
    "queue_consumer_count": [
        ("queue_consumers", "gauge", "Consumers on a queue", lambda q: len(q.consumers)),
    ],
    # RabbitMQ's channel_queue_exchange_metrics, labeled by channel, queue and exchange;
    # Hutch counts per queue only (README, Known differences).
    "channel_queue_exchange_metrics": [
        ("queue_messages_published_total", "counter", "Total number of messages published to queues",
         lambda q: q.published),
    ],
}

CHANNEL_TABLES: dict[str, list[Family]] = {
    "channel_metrics": [
        ("channel_consumers", "gauge", "Consumers on a channel", lambda ch: len(ch.consumers)),
        ("channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages",
         lambda ch: len(ch.unacked)),
        ("channel_messages_unconfirmed", "gauge", "Published but not yet confirmed messages",
         lambda ch: ch.messages_unconfirmed),
        ("channel_messages_uncommitted", "gauge",
         "Messages received in a transaction but not yet committed",
         lambda ch: ch.messages_uncommitted),
        ("consumer_prefetch", "gauge", "Limit of unacknowledged messages for each consumer",
         lambda ch: ch.prefetch_consumer),
        ("channel_prefetch", "gauge",
         "Total limit of unacknowledged messages for all consumers on a channel",
         lambda ch: ch.prefetch_global),
    ],
    "channel_exchange_metrics": [
        ("channel_messages_published_total", "counter",
         "Total number of messages published into an exchange on a channel", _chan_count("publish")),
        ("channel_messages_confirmed_total", "counter",
         "Total number of messages published into an exchange and confirmed on the channel",
         _chan_count("confirm")),
        ("channel_messages_unroutable_returned_total", "counter",
         "Total number of messages published as mandatory into an exchange and returned to the "
         "publisher as unroutable", _chan_count("return_unroutable")),
        ("channel_messages_unroutable_dropped_total", "counter",
         "Total number of messages published as non-mandatory into an exchange and dropped as "
         "unroutable", _chan_count("drop_unroutable")),
    ],
    "channel_queue_metrics": [
        ("channel_get_ack_total", "counter",
         "Total number of messages fetched with basic.get in manual acknowledgement mode",
         _chan_count("get")),
        ("channel_get_total", "counter",
         "Total number of messages fetched with basic.get in automatic acknowledgement mode",
         _chan_count("get_no_ack")),
        ("channel_messages_delivered_ack_total", "counter",
         "Total number of messages delivered to consumers in manual acknowledgement mode",
         _chan_count("deliver")),
        ("channel_messages_delivered_total", "counter",
         "Total number of messages delivered to consumers in automatic acknowledgement mode",
         _chan_count("deliver_no_ack")),
        ("channel_messages_redelivered_total", "counter",
         "Total number of messages redelivered to consumers", _chan_count("redeliver")),
        ("channel_messages_acked_total", "counter",
         "Total number of messages acknowledged by consumers", _chan_count("ack")),
        ("channel_get_empty_total", "counter",
         "Total number of times basic.get operations fetched no message", _chan_count("get_empty")),
    ],
}

CONNECTION_TABLES: dict[str, list[Family]] = {
    "connection_metrics": [
        ("connection_channels", "gauge", "Channels on a connection", lambda c: len(c.channels)),
    ],
}

# Node-wide families: (table, [(name, kind, help, key in node_values())]).
NODE_TABLES: dict[str, list[tuple[str, str, str, str]]] = {
    "connection_churn_metrics": [
        ("connections_opened_total", "counter", "Total number of connections opened",
         "connections_opened"),
        ("connections_closed_total", "counter",
         "Total number of connections closed or terminated", "connections_closed"),
        ("channels_opened_total", "counter", "Total number of channels opened", "channels_opened"),
        ("channels_closed_total", "counter", "Total number of channels closed", "channels_closed"),
        ("queues_declared_total", "counter", "Total number of queues declared", "queues_declared"),
        ("queues_created_total", "counter", "Total number of queues created", "queues_created"),
        ("queues_deleted_total", "counter", "Total number of queues deleted", "queues_deleted"),
    ],
    "node_coarse_metrics": [
        ("process_open_fds", "gauge", "Open file descriptors", "open_fds"),
        ("process_open_tcp_sockets", "gauge", "Open TCP sockets", "open_sockets"),
        ("process_resident_memory_bytes", "gauge", "Memory used in bytes", "rss"),
        ("disk_space_available_bytes", "gauge", "Disk space available in bytes", "disk_free"),
    ],
    "node_metrics": [
        ("process_max_fds", "gauge", "Open file descriptors limit", "max_fds"),
        ("process_max_tcp_sockets", "gauge", "Open TCP sockets limit", "max_fds"),
        ("resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes", "mem_limit"),
        ("disk_space_available_limit_bytes", "gauge", "Free disk space low watermark in bytes",
         "disk_limit"),
        ("erlang_uptime_seconds", "gauge", "Node uptime", "uptime"),
    ],
}

ALL_FAMILIES = set(QUEUE_TABLES) | set(CHANNEL_TABLES) | set(CONNECTION_TABLES) | set(NODE_TABLES)

# (global counter name, help, broker_counts() key, labels); RabbitMQ's rabbit_global_counters.
GLOBAL_COUNTERS: list[tuple[str, str, str, dict[str, str]]] = [
    ("messages_received_total", "Total number of messages received from publishers",
     "publish", PROTOCOL),
    ("messages_received_confirm_total",
     "Total number of messages received from publishers expecting confirmations",
     "received_confirm", PROTOCOL),
    ("messages_routed_total", "Total number of messages routed to queues or streams",
     "routed", PROTOCOL),
    ("messages_unroutable_dropped_total", "Total number of messages published as non-mandatory "
     "into an exchange and dropped as unroutable", "drop_unroutable", PROTOCOL),
    ("messages_unroutable_returned_total", "Total number of messages published as mandatory into "
     "an exchange and returned to the publisher as unroutable", "return_unroutable", PROTOCOL),
    ("messages_confirmed_total", "Total number of messages confirmed to publishers",
     "confirm", PROTOCOL),
    ("messages_delivered_total", "Total number of messages delivered to consumers",
     "deliver_get", QUEUE_TYPE),
    ("messages_delivered_consume_manual_ack_total", "Total number of messages delivered to "
     "consumers using basic.consume with manual acknowledgment", "deliver", QUEUE_TYPE),
    ("messages_delivered_consume_auto_ack_total", "Total number of messages delivered to "
     "consumers using basic.consume with automatic acknowledgment", "deliver_no_ack", QUEUE_TYPE),
    ("messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers "
     "using basic.get with manual acknowledgment", "get", QUEUE_TYPE),
    ("messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers "
     "using basic.get with automatic acknowledgment", "get_no_ack", QUEUE_TYPE),
    ("messages_get_empty_total", "Total number of times basic.get operations fetched no message",
     "get_empty", QUEUE_TYPE),
    ("messages_redelivered_total", "Total number of messages redelivered to consumers",
     "redeliver", QUEUE_TYPE),
    ("messages_acknowledged_total", "Total number of messages acknowledged by consumers",
     "ack", QUEUE_TYPE),
]


def _family(name: str, kind: str, help_text: str,
            labels: Iterable[str] = ()) -> CounterMetricFamily | UnknownMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        # prometheus_client appends "_total" to a counter's samples itself.
        return CounterMetricFamily(name.removesuffix("_total"), help_text, labels=list(labels))
    if kind == "untyped":
        return UnknownMetricFamily(name, help_text, labels=list(labels))
    return GaugeMetricFamily(name, help_text, labels=list(labels))


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def node_values(broker: Any, data_dir: str | None) -> dict[str, float]:
    disk_free = broker.resources.disk_free
    if disk_free is None:  # --in-memory: no disk monitor (broker/alarms.py)
        try:
            disk_free = shutil.disk_usage(data_dir or os.getcwd()).free
        except OSError:
            disk_free = 0
    max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {
        **churn_counts(broker),
        "open_fds": _open_fds(),
        "open_sockets": len(broker.connections),
        "rss": rss(),
        "disk_free": disk_free,
        "max_fds": max_fds if max_fds != resource.RLIM_INFINITY else 1 << 20,
        "mem_limit": broker.resources.mem_limit,
        "disk_limit": broker.resources.disk_limit,
        "uptime": round(time.time() - broker.started_at, 3),
    }


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


class RabbitCollector(Collector):
    """One scrape of one view (``aggregated``, ``per-object`` or ``detailed``)."""

    def __init__(self, broker: Any, view: str, *, data_dir: str | None = None,
                 families: set[str] | None = None, vhosts: set[str] | None = None) -> None:
        self.broker = broker
        self.view = view
        self.data_dir = data_dir
        self.per_object = view != "aggregated"
        self.prefix = "rabbitmq_detailed_" if view == "detailed" else "rabbitmq_"
        # Only /metrics/detailed picks families; the others serve every one.
        self.families = ALL_FAMILIES if families is None else families & ALL_FAMILIES
        if "queue_metrics" in self.families:
            # queue_consumer_count is the cheap subset of queue_metrics (same series).
            self.families = self.families - {"queue_consumer_count"}
        self.vhosts = vhosts  # None: every vhost

    def collect(self) -> Iterator[Metric]:
        broker = self.broker
        queues = [q for v in list(broker.vhosts.values())
                  if self.vhosts is None or v.name in self.vhosts for q in list(v.queues.values())]
        conns = [c for c in list(broker.connections) if c.state is RUNNING]
        channels = [(c, ch) for c in conns for ch in list(c.channels.values())]
        node = node_values(broker, self.data_dir)
        for table, node_rows in NODE_TABLES.items():
            if table in self.families:
                for name, kind, help_text, key in node_rows:
                    fam = _family(self.prefix + name, kind, help_text)
                    fam.add_metric([], node[key])
                    yield fam
        for table, rows in QUEUE_TABLES.items():
            if table in self.families:
                yield from self._objects(rows, queues, ("vhost", "queue"),
                                         lambda q: (q.vhost.name, q.name))
        for table, rows in CHANNEL_TABLES.items():
            if table in self.families:
                yield from self._objects(rows, [ch for _c, ch in channels], ("channel",),
                                         lambda ch: (f"{ch.conn.name} ({ch.number})",))
        for table, rows in CONNECTION_TABLES.items():
            if table in self.families:
                yield from self._objects(rows, conns, ("connection",), lambda c: (c.name,))
        if self.view != "detailed":
            yield from self._totals()
            yield from self._globals(channels)
        if self.view == "aggregated":
            yield from self._alarms()
        yield from self._identity()

    def _objects(self, rows: list[Family], objects: list[Any], labels: tuple[str, ...],
                 label_values: Callable[[Any], tuple[str, ...]]) -> Iterator[Metric]:
        for name, kind, help_text, value in rows:
            if self.per_object:
                fam = _family(self.prefix + name, kind, help_text, labels)
                for obj in objects:
                    fam.add_metric(list(label_values(obj)), value(obj))
            else:
                fam = _family(self.prefix + name, kind, help_text)
                fam.add_metric([], sum(value(obj) for obj in objects))
            yield fam

    def _totals(self) -> Iterator[Metric]:
        totals = object_totals(self.broker)
        for key, help_text in (("connections", "Connections currently open"),
                               ("channels", "Channels currently open"),
                               ("consumers", "Consumers currently connected"),
                               ("queues", "Queues available")):
            yield GaugeMetricFamily(f"rabbitmq_{key}", help_text, value=totals[key])

    def _globals(self, channels: list[tuple[Any, Any]]) -> Iterator[Metric]:
        counts = broker_counts(self.broker)
        for name, help_text, key, labels in GLOBAL_COUNTERS:
            fam = CounterMetricFamily(f"rabbitmq_global_{name.removesuffix('_total')}",
                                      help_text, labels=list(labels))
            fam.add_metric(list(labels.values()), counts[key])
            yield fam
        # RabbitMQ counts a channel as a publisher from its first publish on.
        publishers = sum(1 for _c, ch in channels if ch.stat_publish)
        consumers = sum(len(ch.consumers) for _c, ch in channels)
        for name, help_text, value in (("publishers", "Current number of publishers", publishers),
                                       ("consumers", "Current number of consumers", consumers)):
            gauge = GaugeMetricFamily(f"rabbitmq_global_{name}", help_text, labels=["protocol"])
            gauge.add_metric(["amqp091"], value)
            yield gauge
        # Hutch's own: the message bytes in memory, the memory alarm's estimate between
        # two samples of RSS (broker/alarms.py).
        yield GaugeMetricFamily("hutch_queued_message_bytes",
                                "Bytes of message bodies held in memory",
                                value=self.broker.queued_bytes)

    def _alarms(self) -> Iterator[Metric]:
        for name, help_text, on in (
                ("file_descriptor_limit", "is 1 if file descriptor limit alarm is in effect", False),
                ("free_disk_space_watermark", "is 1 if free disk space watermark alarm is in effect",
                 "disk" in self.broker.resources.alarms),
                ("memory_used_watermark", "is 1 if VM memory watermark alarm is in effect",
                 "memory" in self.broker.resources.alarms)):
            fam = UnknownMetricFamily(f"rabbitmq_alarms_{name}", help_text)
            fam.add_metric([], 1 if on else 0)
            yield fam

    def _identity(self) -> Iterator[Metric]:
        build = {"rabbitmq_version": RABBIT_VERSION, "prometheus_plugin_version": __version__,
                 "prometheus_client_version": _version("prometheus_client"),
                 # The label dashboards show next to the version: here, the runtime's.
                 "erlang_version": f"python {platform.python_version()}",
                 "product_name": "Hutch", "product_version": __version__}
        fam = UnknownMetricFamily("rabbitmq_build_info", "RabbitMQ & Erlang/OTP version info",
                                  labels=list(build))
        fam.add_metric(list(build.values()), 1)
        yield fam
        node = node_name()
        ident = {"rabbitmq_node": node, "rabbitmq_cluster": node,
                 "rabbitmq_cluster_permanent_id": f"hutch-cluster-id-{node}",
                 # RabbitMQ 4.2+ labels which endpoint answered; the current dashboards
                 # filter on it (rabbitmq_endpoint="$endpoint").
                 "rabbitmq_endpoint": self.view}
        fam = UnknownMetricFamily("rabbitmq_identity_info", "RabbitMQ node & cluster identity info",
                                  labels=list(ident))
        fam.add_metric(list(ident.values()), 1)
        yield fam


def render(broker: Any, view: str, **kwargs: Any) -> bytes:
    """The text exposition of one view, rendered by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RabbitCollector(broker, view, **kwargs))
    return generate_latest(registry)


async def handle_metrics(req: Any) -> web.Response:
    """``/metrics`` on the management port (a Hutch extra, kept for existing scrapers):
    the per-object view, the same text as ``/metrics/per-object`` on the Prometheus port."""
    data_dir = getattr(req.api, "data_dir", None)
    body = render(req.broker, "per-object", data_dir=data_dir)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
