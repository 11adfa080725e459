"""Management API documents compared field by field with RabbitMQ's for the same state.

Runs when ``HUTCH_TEST_HTTP_URL``/``HUTCH_TEST_AMQP_URL`` point at a RabbitMQ
with the management plugin (``.ci/run`` does): the same objects are created on
RabbitMQ and on a Hutch of the test's own, then for every endpoint:

* every field Hutch returns exists in RabbitMQ's document with the same JSON type
  (Hutch invents no names), and
* the fields clients rely on have equal values.

Fields only an Erlang node has (reductions, garbage_collection, backing_queue_status
...) are allowed to be missing from Hutch and are listed in ``ERLANG_ONLY``.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.mgmt import Api, seg

HTTP_URL = os.environ.get("HUTCH_TEST_HTTP_URL")
AMQP_URL = os.environ.get("HUTCH_TEST_AMQP_URL")

pytestmark = pytest.mark.skipif(not (HTTP_URL and AMQP_URL),
                                reason="needs RabbitMQ's management API (HUTCH_TEST_HTTP_URL)")

SEMANTIC = {
    "queue": ["name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "messages",
              "messages_ready", "messages_unacknowledged", "consumers", "type", "state"],
    "exchange": ["name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"],
    "binding": ["source", "vhost", "destination", "destination_type", "routing_key",
                "arguments", "properties_key"],
    "consumer": ["consumer_tag", "ack_required", "prefetch_count", "exclusive", "active",
                 "arguments", "queue"],
    "channel": ["number", "user", "vhost", "consumer_count", "prefetch_count",
                "messages_unacknowledged", "confirm", "transactional"],
    # (a connection's "channels" lags in RabbitMQ's statistics; Hutch's is live)
    "connection": ["user", "vhost", "protocol", "auth_mechanism", "frame_max",
                   "channel_max", "state", "type", "ssl"],
    "user": ["name", "tags", "hashing_algorithm", "limits"],
    "permission": ["user", "vhost", "configure", "write", "read"],
    "whoami": ["name", "tags"],
}


def type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def compare(kind: str, hutch: dict[str, Any], rabbit: dict[str, Any]) -> None:
    invented = sorted(k for k in hutch if k not in rabbit)
    assert not invented, f"{kind}: Hutch fields RabbitMQ does not have: {invented}"
    for k, v in hutch.items():
        if v is None or rabbit[k] is None:
            continue
        assert type_name(v) == type_name(rabbit[k]), f"{kind}.{k}: {v!r} vs {rabbit[k]!r}"
    for k in SEMANTIC.get(kind, []):
        assert k in hutch, f"{kind}: Hutch lacks {k}"
        assert hutch[k] == rabbit[k], f"{kind}.{k}: Hutch {hutch[k]!r} != RabbitMQ {rabbit[k]!r}"


def build_state(amqp_url: str, q: str, x: str) -> pika.BlockingConnection:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.exchange_declare(x, "topic", durable=True)
    ch.queue_declare(q, durable=True, arguments={"x-max-length": 100})
    ch.queue_bind(q, x, "a.#")
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(delivery_mode=2))
    ch2 = conn.channel()
    ch2.basic_qos(prefetch_count=2)
    ch2.basic_consume(q, lambda *a: None, consumer_tag="ctag-cmp")
    conn.process_data_events(0.5)
    return conn


def test_documents_match_rabbitmq_field_by_field() -> None:
    tag = uuid.uuid4().hex[:6]
    q, x = f"cmp-{tag}", f"cmp-x-{tag}"
    rabbit = Api(HTTP_URL or "")
    hutch_proc = HutchProcess("--in-memory", http=True)
    hutch_proc.start()
    hutch = Api(hutch_proc.http_url)
    conns = [build_state(AMQP_URL or "", q, x), build_state(hutch_proc.url, q, x)]
    try:
        # RabbitMQ's statistics arrive with its next 5 s sample.
        rabbit.wait_for(f"queues/%2F/{q}", lambda d: d.get("messages_unacknowledged") == 2
                        and d.get("consumers") == 1, timeout=20)
        # A consumer's channel_details is [] until RabbitMQ has its channel's statistics.
        rabbit.wait_for("consumers/%2F", lambda cs: any(
            c["queue"]["name"] == q and isinstance(c.get("channel_details"), dict)
            and c["channel_details"] for c in cs), timeout=20)
        time.sleep(0.2)
        docs: dict[str, list[dict[str, Any]]] = {"queue": [], "exchange": [], "binding": [],
                                                 "consumer": [], "channel": [],
                                                 "connection": [], "user": [], "permission": [],
                                                 "whoami": []}
        for api in (hutch, rabbit):
            docs["queue"].append(api.ok("GET", f"queues/%2F/{seg(q)}"))
            docs["exchange"].append(api.ok("GET", f"exchanges/%2F/{seg(x)}"))
            docs["binding"].append(api.ok("GET", f"bindings/%2F/e/{seg(x)}/q/{seg(q)}")[0])
            docs["consumer"].append(next(c for c in api.ok("GET", "consumers/%2F")
                                         if c["queue"]["name"] == q))
            consumer_channel = docs["consumer"][-1]["channel_details"]["name"]
            docs["channel"].append(api.ok("GET", f"channels/{seg(consumer_channel)}"))
            docs["connection"].append(api.ok(
                "GET", f"connections/{seg(docs['consumer'][-1]['channel_details']['connection_name'])}"))
            docs["user"].append(api.ok("GET", "users/guest"))
            docs["permission"].append(api.ok("GET", "permissions/%2F/guest"))
            docs["whoami"].append(api.ok("GET", "whoami"))
        for kind, (h, r) in docs.items():
            compare(kind, h, r)
        # Nested documents too.
        compare("consumer_details", docs["queue"][0]["consumer_details"][0],
                docs["queue"][1]["consumer_details"][0])
        compare("channel_details", docs["consumer"][0]["channel_details"],
                docs["consumer"][1]["channel_details"])
        compare("message_stats", docs["queue"][0]["message_stats"],
                docs["queue"][1]["message_stats"])
        h_over, r_over = hutch.ok("GET", "overview"), rabbit.ok("GET", "overview")
        compare("overview", {k: v for k, v in h_over.items() if k != "contexts"}, r_over)
        compare("object_totals", h_over["object_totals"], r_over["object_totals"])
        h_def, r_def = hutch.ok("GET", "definitions"), rabbit.ok("GET", "definitions")
        assert set(h_def) == set(r_def)
        hq = next(d for d in h_def["queues"] if d["name"] == q)
        rq = next(d for d in r_def["queues"] if d["name"] == q)
        assert hq == rq
    finally:
        for c in conns:
            c.channel().queue_delete(q)
            c.channel().exchange_delete(x)
            c.close()
        hutch_proc.stop()
