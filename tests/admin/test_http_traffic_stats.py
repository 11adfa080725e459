"""Exchange message counters and connection byte counters, on Hutch and (with
HUTCH_TEST_HTTP_URL) RabbitMQ: the numbers behind the web UI's exchange and
connection rates.  RabbitMQ's statistics lag by up to 5 s, so each check waits."""

from __future__ import annotations

import time
import uuid

import pika

from tests.mgmt import Api, seg


def test_exchange_publish_in_and_out(api: Api, broker_url: str) -> None:
    ex, q = f"stats-x-{uuid.uuid4().hex[:8]}", f"stats-q-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.exchange_declare(ex, "fanout")
        ch.queue_declare(q)
        ch.queue_bind(q, ex)
        ch.confirm_delivery()
        for i in range(7):
            ch.basic_publish(ex, "", f"m{i}".encode())
        # RabbitMQ reports publish_in and publish_out from two tables, not always at once.
        def both(x: dict) -> bool:
            stats = x.get("message_stats", {})
            return stats.get("publish_in", 0) >= 7 and stats.get("publish_out", 0) >= 7

        stats = api.wait_for(f"exchanges/%2F/{seg(ex)}", both)["message_stats"]
        assert stats["publish_in"] == 7 and stats["publish_out"] == 7
        assert "rate" in stats["publish_in_details"] and "rate" in stats["publish_out_details"]
        api.wait_for("exchanges/%2F", lambda xs: any(x["name"] == ex and both(x) for x in xs))
        # An exchange nobody published to has no message_stats, as in RabbitMQ.
        ch.exchange_declare(ex + "-idle", "fanout")
        assert "message_stats" not in api.ok("GET", f"exchanges/%2F/{seg(ex + '-idle')}")
        ch.exchange_delete(ex + "-idle")
        ch.exchange_delete(ex)
        ch.queue_delete(q)
    finally:
        conn.close()


def test_connection_byte_counters(api: Api, broker_url: str) -> None:
    name = f"stats-conn-{uuid.uuid4().hex[:8]}"
    params = pika.URLParameters(broker_url)
    params.client_properties = {"connection_name": name}
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.queue_declare(name, auto_delete=True)
        ch.basic_publish("", name, b"x" * 5000)

        def mine(conns: list) -> bool:
            c = [c for c in conns if c.get("client_properties", {}).get("connection_name") == name]
            return bool(c) and c[0].get("recv_oct", 0) > 5000 and c[0].get("send_oct", 0) > 0

        conns = api.wait_for("connections", mine)
        c = next(c for c in conns if c["client_properties"].get("connection_name") == name)
        assert c["recv_cnt"] > 0 and c["send_cnt"] > 0
        assert c["user_provided_name"] == name
        assert "rate" in c["recv_oct_details"] and "rate" in c["send_oct_details"]
        assert c["ssl_protocol"] is None  # a plain connection
        one = api.ok("GET", "connections/" + seg(c["name"]))
        assert one["recv_oct"] >= c["recv_oct"]
    finally:
        conn.close()


def test_http_publish_and_get_count_in_the_overview(api: Api, broker_url: str) -> None:
    """The management API's own publish and get are counted like a channel's, as in
    RabbitMQ (its plugin uses a channel): the overview's rates see them."""
    q = f"stats-http-{uuid.uuid4().hex[:8]}"
    api.ok("PUT", f"queues/%2F/{seg(q)}", {"durable": False})
    try:
        def counts() -> tuple[int, int]:
            s = api.ok("GET", "overview").get("message_stats", {})
            return s.get("publish", 0), s.get("get_no_ack", 0)

        # RabbitMQ's numbers lag: settle first.
        time.sleep(0.2)
        before = counts()
        for i in range(3):
            api.ok("POST", "exchanges/%2F/amq.default/publish",
                   {"properties": {}, "routing_key": q, "payload": f"p{i}",
                    "payload_encoding": "string"})
        got = api.ok("POST", f"queues/%2F/{seg(q)}/get",
                     {"count": 2, "ackmode": "ack_requeue_false", "encoding": "auto"})
        assert len(got) == 2
        api.wait_for("overview", lambda o: (o.get("message_stats", {}).get("publish", 0)
                                            >= before[0] + 3 and
                                            o["message_stats"].get("get_no_ack", 0)
                                            >= before[1] + 2), timeout=20)
    finally:
        api.delete(f"queues/%2F/{seg(q)}")


def test_vhost_message_stats(api: Api, broker_url: str) -> None:
    """A vhost's message_stats count its channels' publishes and deliveries, closed
    channels included, as RabbitMQ's do."""
    q = f"stats-vh-{uuid.uuid4().hex[:8]}"

    def publish() -> int:
        return api.ok("GET", "vhosts/%2F").get("message_stats", {}).get("publish", 0)

    before = publish()
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.queue_declare(q)
        for i in range(4):
            ch.basic_publish("", q, f"m{i}".encode())
        for _ in range(4):
            ch.basic_get(q, auto_ack=True)
        ch.queue_delete(q)
    finally:
        conn.close()  # its counts must survive the channel
    v = api.wait_for("vhosts/%2F", lambda d: d.get("message_stats", {}).get("publish", 0)
                     >= before + 4 and d["message_stats"].get("get_no_ack", 0) >= 4, timeout=20)
    assert "rate" in v["message_stats"]["publish_details"]
    assert v["message_stats"]["deliver_get"] >= 4
