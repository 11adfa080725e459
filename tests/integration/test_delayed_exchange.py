"""The x-delayed-message exchange over real sockets (pika): routing by x-delayed-type,
x-delay parsing, the fired message's headers, mandatory, confirms, alternate and
exchange-to-exchange bindings, deletion, and the management API's messages_delayed.

The semantics are those of rabbitmq-delayed-message-exchange 4.2.0 (RabbitMQ 4.x).
All hutch_only: the RabbitMQ 3.10 the suite also runs against has no such plugin.
"""

from __future__ import annotations

import decimal
import os
import subprocess
import time
import uuid
from typing import Any

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from tests.mgmt import Api, seg
from tests.toolproc import hutch_cmd

pytestmark = pytest.mark.hutch_only  # RabbitMQ 3.10 in CI has no delayed-message plugin


@pytest.fixture
def conn(broker_url):
    c = pika.BlockingConnection(pika.URLParameters(broker_url))
    yield c
    if c.is_open:
        c.close()


@pytest.fixture
def ch(conn):
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


def name(tag: str) -> str:
    return f"dx.{tag}.{uuid.uuid4().hex[:8]}"


def delayed(ch, kind: str = "direct", **args: Any) -> str:
    x = name(kind)
    ch.exchange_declare(x, "x-delayed-message", durable=False, auto_delete=False,
                        arguments={"x-delayed-type": kind, **args})
    return x


def bound_queue(ch, x: str, key: str = "k", arguments: dict | None = None) -> str:
    q = ch.queue_declare(name("q"), exclusive=True).method.queue
    ch.queue_bind(q, x, key, arguments=arguments)
    return q


def pub(ch, x: str, key: str = "k", delay: Any = None, body: bytes = b"m", **props: Any) -> float:
    headers = dict(props.pop("headers", {}))
    if delay is not None:
        headers["x-delay"] = delay
    ch.basic_publish(x, key, body, pika.BasicProperties(headers=headers, **props))
    return time.monotonic()


def get(ch, q: str, timeout: float = 3.0):
    """(arrival time, properties, body) of the next message, or None after timeout."""
    end = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method is not None:
            return time.monotonic(), props, body
        if time.monotonic() > end:
            return None
        time.sleep(0.003)


def test_delays_then_routes_by_inner_type_and_negates_x_delay(ch):
    x = delayed(ch)
    q = bound_queue(ch, x, "k")
    other = bound_queue(ch, x, "other")
    sent = pub(ch, x, "k", 300, b"late", headers={"keep": "me"}, delivery_mode=2)
    assert get(ch, q, 0.15) is None  # not yet
    got = get(ch, q)
    assert got is not None
    at, props, body = got
    assert body == b"late"
    assert at - sent >= 0.3  # never early
    assert at - sent < 0.3 + 0.25
    # As the plugin (4.x): x-delay comes back as minus the delay; the rest is as sent.
    assert props.headers == {"keep": "me", "x-delay": -300}
    assert props.delivery_mode == 2
    assert get(ch, other, 0.05) is None  # direct routing by the routing key


def test_order_follows_due_time_not_publish_order(ch):
    x = delayed(ch)
    q = bound_queue(ch, x)
    pub(ch, x, delay=400, body=b"second")
    pub(ch, x, delay=150, body=b"first")
    pub(ch, x, body=b"now")
    assert [get(ch, q)[2] for _ in range(3)] == [b"now", b"first", b"second"]


@pytest.mark.parametrize("value", [0, -5, 4294967296, None,
                                   "9" * 5000,  # beyond Python's int() limit (review find)
                                   "-" + "9" * 5000, "0" * 5000 + "99999999999"],
                         ids=["0", "-5", "2^32", "absent", "5000-digits", "minus-5000-digits",
                              "zeros-then-11-digits"])
def test_no_delay_routes_at_once_and_keeps_the_header(ch, value):
    x = delayed(ch)
    q = bound_queue(ch, x)
    pub(ch, x, delay=value)
    got = get(ch, q, 0.2)
    assert got is not None
    headers = got[1].headers or {}
    assert headers.get("x-delay") == value


def raw_pub(broker_url: str, x: str, headers: dict[str, Any]) -> float:
    """Publish through pamqp (the raw client), which encodes floats (pika cannot) and
    small ints as a signed byte 'b' (pika never does)."""
    from pamqp import commands as cmd

    from tests.integration.rawamqp import raw_session
    with raw_session(broker_url) as raw:
        raw.send(1, cmd.Basic.Publish(exchange=x, routing_key="k"))
        raw.send_content(1, b"raw", cmd.Basic.Properties(headers=headers))
        sent = time.monotonic()
        raw.rpc(1, cmd.Basic.Qos(), cmd.Basic.QosOk)  # the publish was handled
    return sent


@pytest.mark.parametrize(("value", "delays"), [
    ("250", True),  # a string: parsed (binary_to_integer)
    ("+250", True),
    (250.9, True),  # a float: truncated
    (100, False),  # pamqp sends a signed byte 'b': RabbitMQ 4.x's ``byte``, not a delay
    (decimal.Decimal("0.25"), False),
    (True, False),
])
def test_delay_value_types(ch, broker_url, value, delays):
    x = delayed(ch)
    q = bound_queue(ch, x)
    sent = raw_pub(broker_url, x, {"x-delay": value})
    got = get(ch, q, 1.0)
    assert got is not None
    waited = got[0] - sent
    if delays:
        assert waited >= 0.25
        assert got[1].headers["x-delay"] == -250
    else:
        assert waited < 0.08  # 100 ms, had it been read as a delay
        assert got[1].headers["x-delay"] == value


def test_non_integer_string_closes_the_connection_541(broker_url):
    c = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = c.channel()
        x = delayed(ch)
        pub(ch, x, delay="soon")
        with pytest.raises(ConnectionClosedByBroker) as info:
            c.process_data_events(time_limit=2)
            ch.queue_declare("", exclusive=True)
        assert info.value.reply_code == 541
    finally:
        if c.is_open:
            c.close()
    c2 = pika.BlockingConnection(pika.URLParameters(broker_url))
    c2.channel().exchange_delete(x)
    c2.close()


MUST_EXIST = "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type"


@pytest.mark.parametrize(("args", "text"), [
    ({}, MUST_EXIST),
    ({"x-delayed-type": 5}, MUST_EXIST),
    ({"x-delayed-type": "x-delayed-message"},
     "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'"),
    ({"x-delayed-type": "nope"}, "PRECONDITION_FAILED - unknown exchange type 'nope'"),
])
def test_x_delayed_type_is_checked(conn, args, text):
    ch = conn.channel()
    x = name("bad")
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.exchange_declare(x, "x-delayed-message", arguments=args)
    assert (info.value.reply_code, info.value.reply_text) == (406, text)
    assert conn.channel().exchange_declare(x, passive=False, exchange_type="direct") is not None
    conn.channel().exchange_delete(x)


def test_headers_inner_type_checks_x_match(conn, ch):
    """The plugin hands binding validation to its x-delayed-type: a headers one refuses
    a bad x-match with the headers exchange's 406 (review find)."""
    x = delayed(ch, "headers")
    q = ch.queue_declare("", exclusive=True).method.queue
    bad = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        bad.queue_bind(q, x, "", {"x-match": "bogus"})
    assert info.value.reply_code == 406
    assert "x-match" in info.value.reply_text


@pytest.mark.parametrize("kind", ["fanout", "topic", "headers"])
def test_other_inner_types(ch, kind):
    x = delayed(ch, kind)
    if kind == "headers":
        yes = bound_queue(ch, x, "", {"x-match": "all", "a": "1"})
        no = bound_queue(ch, x, "", {"x-match": "all", "a": "2"})
    else:
        yes = bound_queue(ch, x, "a.*" if kind == "topic" else "zz")
        no = bound_queue(ch, x, "b.*") if kind == "topic" else None
    pub(ch, x, "a.b", 120, headers={"a": "1"})
    assert get(ch, yes, 0.06) is None
    assert get(ch, yes) is not None
    if no is not None:
        assert get(ch, no, 0.05) is None


def test_mandatory_is_returned_at_once_yet_delivered_later(conn, ch):
    """The plugin's README: mandatory is not supported; the message is routed to no
    queue at publish time, so it comes back with NO_ROUTE — and still fires."""
    x = delayed(ch)
    q = bound_queue(ch, x)
    returned: list[Any] = []
    ch.add_on_return_callback(lambda _ch, method, _p, body: returned.append((method.reply_code, body)))
    pub_ok = ch.basic_publish(x, "k", b"mand", pika.BasicProperties(headers={"x-delay": 150}),
                              mandatory=False)
    assert pub_ok is None
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "k", b"mand2", pika.BasicProperties(headers={"x-delay": 150}),
                         mandatory=True)
    bodies = sorted(get(ch, q)[2] for _ in range(2))
    assert bodies == [b"mand", b"mand2"]


def test_alternate_exchange_gets_a_copy_at_once_as_the_plugin(ch):
    """rabbit_exchange:route sends a message an exchange routed nowhere to its
    alternate exchange, and the delayed exchange routes a delayed one nowhere."""
    ae = name("ae")
    ch.exchange_declare(ae, "fanout", auto_delete=False)
    aeq = bound_queue(ch, ae, "")
    x = delayed(ch, **{"alternate-exchange": ae})
    q = bound_queue(ch, x)
    pub(ch, x, "k", 150)
    assert get(ch, aeq, 0.1) is not None  # at once
    assert get(ch, q) is not None  # and again when due
    pub(ch, x, "unbound", 100)
    assert get(ch, aeq, 0.05) is not None  # at once
    assert get(ch, aeq) is not None  # and, unroutable when due, once more
    ch.exchange_delete(x)
    ch.exchange_delete(ae)


def test_exchange_to_exchange_both_ways(ch):
    src = name("src")
    ch.exchange_declare(src, "topic", auto_delete=False)
    x = delayed(ch, "fanout")
    ch.exchange_bind(x, src, "t.#")
    dest = name("dest")
    ch.exchange_declare(dest, "direct", auto_delete=False)
    ch.exchange_bind(dest, x, "")
    q1 = bound_queue(ch, x, "")
    q2 = bound_queue(ch, dest, "t.1")
    sent = pub(ch, src, "t.1", 200)
    a, b = get(ch, q1), get(ch, q2)
    assert a is not None and b is not None
    assert a[0] - sent >= 0.2 and b[0] - sent >= 0.2
    for e in (src, x, dest):
        ch.exchange_delete(e)


def test_deleting_the_exchange_drops_its_waiting_messages(ch):
    x = delayed(ch)
    q = ch.queue_declare(name("q"), exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    pub(ch, x, "k", 200)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "x-delayed-message", arguments={"x-delayed-type": "direct"})
    ch.queue_bind(q, x, "k")
    assert get(ch, q, 0.5) is None
    ch.exchange_delete(x)


def test_ttl_starts_after_the_delay(ch):
    x = delayed(ch)
    q = bound_queue(ch, x)
    pub(ch, x, delay=300, expiration="200")
    assert get(ch, q, 0.8) is not None


def test_management_messages_delayed_and_definitions(ch, http_url):
    api = Api(http_url)
    x = delayed(ch)
    bound_queue(ch, x)
    for _ in range(3):
        pub(ch, x, delay=60_000)
    info = api.get(f"exchanges/%2F/{seg(x)}").json()
    assert info["type"] == "x-delayed-message"
    assert info["arguments"] == {"x-delayed-type": "direct"}
    assert info["messages_delayed"] == 3
    listed = {e["name"]: e for e in api.get("exchanges/%2F").json()}
    assert listed[x]["messages_delayed"] == 3
    assert "messages_delayed" not in listed["amq.direct"]
    types = [t["name"] for t in api.get("overview").json()["exchange_types"]]
    assert "x-delayed-message" in types
    # hutch ctl list_exchanges shows the plugin's info item as a column.
    env = {k: v for k, v in os.environ.items() if k not in ("HUTCH_URL", "HUTCH_USER",
                                                            "HUTCH_PASSWORD")}
    r = subprocess.run([*hutch_cmd("ctl", "--url", http_url, "-q", "list_exchanges", "name",
                                   "type", "messages_delayed")],
                       capture_output=True, text=True, env=env, timeout=30)
    assert f"{x}\tx-delayed-message\t3" in r.stdout.splitlines(), r.stdout + r.stderr
    assert "amq.direct\tdirect\t" in r.stdout.splitlines()
    # A publish through the management API is delayed too.
    r = api.post(f"exchanges/%2F/{seg(x)}/publish",
                 {"properties": {"headers": {"x-delay": 60_000}}, "routing_key": "k",
                  "payload": "p", "payload_encoding": "string"})
    assert r.json() == {"routed": False}
    assert api.get(f"exchanges/%2F/{seg(x)}").json()["messages_delayed"] == 4
    ch.exchange_delete(x)
    # Definitions keep the type and its argument (RabbitMQ's format).
    y = name("defs")
    ch.exchange_declare(y, "x-delayed-message", durable=True, auto_delete=False,
                        arguments={"x-delayed-type": "topic"})
    defs = api.get("definitions").json()
    entry = next(e for e in defs["exchanges"] if e["name"] == y)
    assert entry["type"] == "x-delayed-message"
    assert entry["arguments"] == {"x-delayed-type": "topic"}
    ch.exchange_delete(y)
    defs["exchanges"] = [entry]
    for k in ("queues", "bindings", "policies", "users", "vhosts", "permissions",
              "topic_permissions", "parameters", "global_parameters"):
        defs.pop(k, None)
    assert api.post("definitions", defs).status_code in (200, 201, 204)
    again = api.get(f"exchanges/%2F/{seg(y)}").json()
    assert (again["type"], again["arguments"]) == ("x-delayed-message", {"x-delayed-type": "topic"})
    ch.exchange_delete(y)


def test_dead_lettered_into_a_delayed_exchange_is_delayed(ch):
    """Dead-lettering routes through rabbit_exchange:route too, so a delayed exchange
    as the DLX delays a message that carries x-delay."""
    x = delayed(ch)
    target = bound_queue(ch, x, "dead")
    src = ch.queue_declare(name("src"), exclusive=True, arguments={
        "x-dead-letter-exchange": x, "x-dead-letter-routing-key": "dead"}).method.queue
    ch.basic_publish("", src, b"dl", pika.BasicProperties(headers={"x-delay": 250}))
    method, _props, _body = ch.basic_get(src)
    rejected = time.monotonic()
    ch.basic_reject(method.delivery_tag, requeue=False)
    got = get(ch, target)
    assert got is not None
    assert got[0] - rejected >= 0.25
    assert got[1].headers["x-delay"] == -250
    assert got[1].headers["x-death"][0]["reason"] == "rejected"
    ch.exchange_delete(x)
