"""The Prometheus endpoints, as RabbitMQ's ``rabbitmq_prometheus`` plugin serves them.

Runs against a Hutch of its own (``--prometheus-port`` on a free port) or, with
``HUTCH_TEST_PROMETHEUS_URL`` (e.g. ``http://127.0.0.1:15743/``) and
``HUTCH_TEST_AMQP_URL``, against a RabbitMQ with the plugin enabled
(``HUTCH_RABBIT_PLUGINS=rabbitmq_prometheus .ci/rabbitmq.sh start PORT``).
RabbitMQ publishes some of its numbers only every 5 s (collect_statistics_interval),
so values are polled for, never read once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.brokerproc import HutchProcess
from tests.conftest import EXTERNAL_URL
from tests.toolproc import hutch_cmd

PROMETHEUS_URL = os.environ.get("HUTCH_TEST_PROMETHEUS_URL")

# The metric names the queries of RabbitMQ's "RabbitMQ-Overview" Grafana dashboard use
# (rabbitmq-server, deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json),
# with the RabbitMQ release that first serves each one: the v3.10.8 dashboard's names,
# then those the current (main) dashboard added.
DASHBOARD_METRICS: dict[str, str] = {
    **dict.fromkeys([
        "rabbitmq_build_info", "rabbitmq_identity_info",
        "rabbitmq_channel_consumers", "rabbitmq_channels", "rabbitmq_channels_closed_total",
        "rabbitmq_channels_opened_total", "rabbitmq_connections",
        "rabbitmq_connections_closed_total", "rabbitmq_connections_opened_total",
        "rabbitmq_consumers", "rabbitmq_disk_space_available_bytes",
        "rabbitmq_global_messages_acknowledged_total", "rabbitmq_global_messages_confirmed_total",
        "rabbitmq_global_messages_delivered_consume_auto_ack_total",
        "rabbitmq_global_messages_delivered_consume_manual_ack_total",
        "rabbitmq_global_messages_delivered_get_auto_ack_total",
        "rabbitmq_global_messages_delivered_get_manual_ack_total",
        "rabbitmq_global_messages_get_empty_total",
        "rabbitmq_global_messages_received_confirm_total",
        "rabbitmq_global_messages_received_total", "rabbitmq_global_messages_redelivered_total",
        "rabbitmq_global_messages_routed_total",
        "rabbitmq_global_messages_unroutable_dropped_total",
        "rabbitmq_global_messages_unroutable_returned_total",
        "rabbitmq_process_max_fds", "rabbitmq_process_max_tcp_sockets",
        "rabbitmq_process_open_fds", "rabbitmq_process_open_tcp_sockets",
        "rabbitmq_process_resident_memory_bytes", "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked", "rabbitmq_queues", "rabbitmq_queues_created_total",
        "rabbitmq_queues_declared_total", "rabbitmq_queues_deleted_total",
        "rabbitmq_resident_memory_limit_bytes",
    ], "3.10"),
    # Added by the current dashboard (all served by 3.10 already).
    **dict.fromkeys([
        "rabbitmq_disk_space_available_limit_bytes", "rabbitmq_erlang_uptime_seconds",
        "rabbitmq_global_consumers", "rabbitmq_global_publishers",
        "rabbitmq_global_messages_delivered_total",
    ], "3.10"),
}
# In the current dashboard but not served by Hutch (README, Known differences): the
# "Message Size Distribution" panels, RabbitMQ 4.1+.
NOT_SERVED = {"rabbitmq_message_size_bytes_bucket", "rabbitmq_message_size_bytes_count",
              "rabbitmq_message_size_bytes_sum"}

# The labels the dashboard's queries join and group on:
#   x * on(instance, job) group_left(rabbitmq_cluster, rabbitmq_node) rabbitmq_identity_info{
#       rabbitmq_cluster="$rabbitmq_cluster", namespace="$namespace", rabbitmq_endpoint="$endpoint"}
#   ... by(rabbitmq_node)
#   rabbitmq_erlang_uptime_seconds * on(instance, job) group_left(rabbitmq_version, erlang_version)
#       rabbitmq_build_info
# instance, job and namespace come from Prometheus' scrape config; rabbitmq_endpoint is
# RabbitMQ 4.2+ (the 3.10 dashboard does not filter on it).
IDENTITY_LABELS = {"rabbitmq_cluster", "rabbitmq_node"}
IDENTITY_LABELS_4_2 = {"rabbitmq_endpoint"}
BUILD_LABELS = {"rabbitmq_version", "erlang_version"}

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Target:
    amqp_url: str
    base: str  # http://host:port/
    rabbitmq: bool

    def scrape(self, path: str = "metrics", **params: str | list[str]) -> Samples:
        r = requests.get(self.base + path, params=params, timeout=10)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        out: Samples = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out.setdefault(s.name, []).append((s.labels, s.value))
        return out

    def version(self) -> tuple[int, ...]:
        labels = self.scrape()["rabbitmq_build_info"][0][0]
        return tuple(int(x) for x in labels["rabbitmq_version"].split(".")[:2])


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    if PROMETHEUS_URL:
        if not EXTERNAL_URL:
            pytest.skip("HUTCH_TEST_PROMETHEUS_URL needs HUTCH_TEST_AMQP_URL (the same broker)")
        yield Target(EXTERNAL_URL, PROMETHEUS_URL.rstrip("/") + "/", True)
        return
    if EXTERNAL_URL:
        pytest.skip("HUTCH_TEST_PROMETHEUS_URL is not set (RabbitMQ's prometheus port unknown)")
    proc = HutchProcess("--in-memory", prometheus=True)
    proc.start()
    try:
        yield Target(proc.url, proc.prometheus_url, False)
    finally:
        proc.stop()


def poll(check: Callable[[], object], timeout: float = 12.0) -> None:
    """Retry ``check`` (an assertion) until it passes: RabbitMQ's queue and channel
    numbers are up to 5 s old."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except (AssertionError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for lv, v in samples[name] if all(lv.get(k) == x for k, x in labels.items()))


@pytest.fixture
def traffic(target: Target) -> Iterator[tuple[pika.adapters.blocking_connection.BlockingChannel, str]]:
    """A connection with a confirm channel, a queue with 3 messages and 1 unacked."""
    conn = pika.BlockingConnection(pika.URLParameters(target.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    q = f"prom.{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q, auto_delete=False)
    for _ in range(4):
        ch.basic_publish("", q, b"hello")
    method, _p, _b = ch.basic_get(q, auto_ack=False)
    assert method is not None
    try:
        yield ch, q
    finally:
        ch.queue_delete(q)
        conn.close()


def test_every_overview_dashboard_metric_returns_data(target: Target, traffic) -> None:
    """Each metric the RabbitMQ-Overview dashboard queries has a sample on ``/metrics``,
    and the identity/build info carry the labels its joins and groupings use."""
    version = target.version()
    wanted = {n for n, since in DASHBOARD_METRICS.items()
              if not target.rabbitmq or version >= tuple(int(x) for x in since.split("."))}

    def check() -> None:
        m = target.scrape()
        missing = sorted(n for n in wanted if not m.get(n))
        assert not missing, f"no samples for {missing}"
        # The dashboard's singlestats show these as numbers: ready 3, unacked 1.
        assert value(m, "rabbitmq_queue_messages_ready") >= 3
        assert value(m, "rabbitmq_queue_messages_unacked") >= 1

    poll(check)
    m = target.scrape()
    for endpoint in ("metrics", "metrics/per-object"):
        e = target.scrape(endpoint)
        # "* on(instance, job) group_left(...)" needs exactly one identity per target.
        assert len(e["rabbitmq_identity_info"]) == 1, endpoint
        assert len(e["rabbitmq_build_info"]) == 1, endpoint
    ident, one = m["rabbitmq_identity_info"][0]
    assert one == 1
    need = IDENTITY_LABELS | (IDENTITY_LABELS_4_2 if not target.rabbitmq or version >= (4, 2)
                              else set())
    assert need <= set(ident), ident
    assert all(ident[k] for k in need)
    build, one = m["rabbitmq_build_info"][0]
    assert one == 1 and BUILD_LABELS <= set(build) and all(build[k] for k in BUILD_LABELS)
    # The aggregated view: one unlabeled sample per core family.
    assert [lv for lv, _v in m["rabbitmq_queue_messages_ready"]] == [{}]
    if not target.rabbitmq:
        assert not NOT_SERVED & set(m)  # documented as not served


def test_global_counters_count_what_clients_did(target: Target) -> None:
    """The counters behind "Incoming messages / s", "Messages confirmed", "Polling
    operations" ...: live on both brokers, labeled by protocol (and queue type)."""
    before = target.scrape()
    conn = pika.BlockingConnection(pika.URLParameters(target.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare("", exclusive=True).method.queue
    for _ in range(3):
        ch.basic_publish("", q, b"x")
    ch.basic_publish("", "no-such-queue-" + q, b"dropped")
    assert ch.basic_get(q, auto_ack=True)[0] is not None
    assert ch.basic_get(q, auto_ack=False)[0] is not None
    ch.basic_ack(2)
    ch.queue_purge(q)
    assert ch.basic_get(q, auto_ack=True)[0] is None

    def delta(after: Samples, name: str) -> float:
        return value(after, name) - value(before, name)

    def check() -> None:
        after = target.scrape()
        assert delta(after, "rabbitmq_global_messages_received_total") == 4
        assert delta(after, "rabbitmq_global_messages_received_confirm_total") == 4
        assert delta(after, "rabbitmq_global_messages_confirmed_total") == 4
        assert delta(after, "rabbitmq_global_messages_routed_total") == 3
        assert delta(after, "rabbitmq_global_messages_unroutable_dropped_total") == 1
        assert delta(after, "rabbitmq_global_messages_delivered_get_auto_ack_total") == 1
        assert delta(after, "rabbitmq_global_messages_delivered_get_manual_ack_total") == 1
        assert delta(after, "rabbitmq_global_messages_get_empty_total") == 1
        assert delta(after, "rabbitmq_global_messages_acknowledged_total") == 1
        labels = after["rabbitmq_global_messages_received_total"][0][0]
        assert labels == {"protocol": "amqp091"}
        assert {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"} in [
            lv for lv, _v in after["rabbitmq_global_messages_delivered_total"]]

    poll(check)
    conn.close()


def test_churn_counters(target: Target) -> None:
    """connections/channels opened and closed, queues declared/created/deleted."""
    keys = ["rabbitmq_connections_opened_total", "rabbitmq_connections_closed_total",
            "rabbitmq_channels_opened_total", "rabbitmq_channels_closed_total",
            "rabbitmq_queues_declared_total", "rabbitmq_queues_created_total",
            "rabbitmq_queues_deleted_total"]
    before = target.scrape()
    conn = pika.BlockingConnection(pika.URLParameters(target.amqp_url))
    ch = conn.channel()
    q = f"churn.{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q)
    ch.queue_declare(q)  # declared again: not created again
    ch.queue_delete(q)
    conn.close()

    def check() -> None:
        after = target.scrape()
        got = [value(after, k) - value(before, k) for k in keys]
        assert got == [1, 1, 1, 1, 2, 1, 1], dict(zip(keys, got, strict=True))

    poll(check)


def test_per_object_labels_each_queue(target: Target, traffic) -> None:
    _ch, q = traffic

    def check() -> None:
        m = target.scrape("metrics/per-object")
        assert value(m, "rabbitmq_queue_messages_ready", vhost="/", queue=q) == 3
        assert value(m, "rabbitmq_queue_messages_unacked", vhost="/", queue=q) == 1
        assert value(m, "rabbitmq_queue_messages", vhost="/", queue=q) == 4
        assert any(lv.get("queue") == q for lv, _v in m["rabbitmq_queue_consumers"])
        # Per channel: the channel label; totals and global counters as on /metrics.
        assert all("channel" in lv for lv, _v in m["rabbitmq_channel_consumers"])
        assert m["rabbitmq_queues"] and m["rabbitmq_global_messages_received_total"]
        assert m["rabbitmq_identity_info"]

    poll(check)


def test_detailed_serves_the_families_asked_for(target: Target, traffic) -> None:
    _ch, q = traffic

    def check() -> None:
        m = target.scrape("metrics/detailed", family=["queue_coarse_metrics",
                                                      "connection_churn_metrics"], vhost="/")
        assert value(m, "rabbitmq_detailed_queue_messages_ready", vhost="/", queue=q) == 3
        assert value(m, "rabbitmq_detailed_queue_messages_unacked", vhost="/", queue=q) == 1
        assert m["rabbitmq_detailed_connections_opened_total"]
        # queue_consumers comes with queue_metrics (or queue_consumer_count), not asked for.
        assert "rabbitmq_detailed_queue_consumers" not in m
        # No totals, no global counters, no undetailed names: only the identity besides.
        rabbit = {n for n in m if n.startswith("rabbitmq_")}
        assert {n for n in rabbit if not n.startswith("rabbitmq_detailed_")} == {
            "rabbitmq_identity_info", "rabbitmq_build_info"}

    poll(check)
    # The vhost filter keeps only the named vhosts' queues (unknown vhosts: none).
    other = target.scrape("metrics/detailed", family="queue_coarse_metrics", vhost="no-such-vhost")
    assert not other.get("rabbitmq_detailed_queue_messages_ready")
    # No family asked for: nothing but the identity.
    bare = target.scrape("metrics/detailed")
    assert {n for n in bare if n.startswith("rabbitmq_")} == {"rabbitmq_identity_info",
                                                              "rabbitmq_build_info"}
    r = requests.get(target.base + "metrics/no-such-registry", timeout=10)
    assert r.status_code == 404 and r.text == "Unknown Registry"


@pytest.mark.hutch_only
def test_serve_defaults_to_rabbitmqs_port_and_loopback() -> None:
    from hutch.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.prometheus_port, args.prometheus_host) == (15692, "localhost")
    assert build_parser().parse_args(["serve", "--prometheus-port", "0"]).prometheus_port == 0


@pytest.mark.hutch_only
def test_port_zero_disables_and_a_taken_port_fails_in_one_line(tmp_path) -> None:
    proc = HutchProcess("--in-memory", "--log-level", "info")  # --prometheus-port 0
    proc.start()
    try:
        assert "Prometheus" not in proc.log_text()
    finally:
        proc.stop()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([*hutch_cmd(), "serve", "--port", "0", "--http-port", "0",
                            "--prometheus-port", str(port), "--data-dir", str(tmp_path / "d")],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{port}" in last and "--prometheus-port" in last, r.stderr
    assert "Traceback" not in r.stderr
    assert "ready" not in r.stdout
