"""Exchange routing over real sockets (pika): direct, fanout, topic, headers,
exchange-to-exchange bindings, alternate exchanges, internal exchanges, amq.*."""

from __future__ import annotations

import os
import time
import uuid

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from tests.integration.rawamqp import AGAINST_RABBITMQ
from tests.integration.test_wq_dispatch import open_conns


@pytest.fixture
def conns(broker_url):
    yield from open_conns(broker_url)


HUTCH = not os.environ.get("HUTCH_TEST_AMQP_URL")



@pytest.fixture
def ch(conns):
    c = conns()
    channel = c.channel()
    channel.confirm_delivery()  # publishes are routed before basic_publish returns
    created_q: list[str] = []
    created_x: list[str] = []
    channel.created_q = created_q
    channel.created_x = created_x
    yield channel
    if c.is_open:
        cl = c.channel()
        for q in created_q:
            cl.queue_delete(q)
        for x in created_x:
            cl.exchange_delete(x)


def mkq(ch, tag: str = "") -> str:
    name = f"wq.x.{tag}.{uuid.uuid4().hex[:8]}"
    ch.queue_declare(name)
    ch.created_q.append(name)
    return name


def mkx(ch, kind: str, **kw) -> str:
    name = f"wq.x.{kind}.{uuid.uuid4().hex[:8]}"
    ch.exchange_declare(name, kind, **kw)
    ch.created_x.append(name)
    return name


def drain(ch, q: str) -> list[bytes]:
    out = []
    while True:
        m, _p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append(body)


def test_direct_exchange(ch):
    x = mkx(ch, "direct")
    q1, q2 = mkq(ch, "d1"), mkq(ch, "d2")
    ch.queue_bind(q1, x, "red")
    ch.queue_bind(q2, x, "red")
    ch.queue_bind(q2, x, "green")
    for rk in ("red", "green", "blue", "Red", ""):
        ch.basic_publish(x, rk, rk.encode())
    assert drain(ch, q1) == [b"red"]
    assert drain(ch, q2) == [b"red", b"green"]
    # Unbinding stops the flow; double binding delivers once.
    ch.queue_bind(q1, x, "red")
    ch.queue_unbind(q1, x, "red")
    ch.basic_publish(x, "red", b"again")
    assert drain(ch, q1) == []
    assert drain(ch, q2) == [b"again"]


def test_default_exchange_routes_by_queue_name(ch):
    q = mkq(ch, "def")
    ch.basic_publish("", q, b"hi")
    assert drain(ch, q) == [b"hi"]
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.queue_bind(q, "", "other")
    assert ei.value.reply_code == 403


def test_fanout_exchange(ch):
    x = mkx(ch, "fanout")
    qs = [mkq(ch, f"f{i}") for i in range(3)]
    for q in qs:
        ch.queue_bind(q, x, "ignored-" + q)
    ch.basic_publish(x, "whatever", b"all")
    for q in qs:
        assert drain(ch, q) == [b"all"]


# (pattern, routing key, matches) -- checked against RabbitMQ 3.10.
TOPIC_CASES = [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*.c", "a..c", True),          # '*' matches an empty word
    ("a.*", "a.", True),
    ("a.*", "a", False),
    ("*", "a.b", False),
    ("*.*", "a.b", True),
    ("#", "", True),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#", "..", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "a.b.cc", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.b.c", False),
    ("a.#.b", "a.b.b", True),
    ("a.#.b", "b", False),
    ("#.#", "a", True),
    ("a.#.#.b", "a.b", True),
    ("#.*", "a.b", True),
    ("*.#.*", "a", False),
    ("*.#.*", "a.b", True),
    ("a..b", "a..b", True),
    ("a..b", "a.x.b", False),
    ("", "", True),
    ("", "a", False),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.*.#", "a.b.c.d", True),
]


def test_topic_exchange_patterns(ch):
    x = mkx(ch, "topic")
    queues = {}
    for i, (pattern, _rk, _m) in enumerate(TOPIC_CASES):
        q = mkq(ch, f"t{i}")
        ch.queue_bind(q, x, pattern)
        queues[i] = q
    failures = []
    for i, (_pattern, rk, _should) in enumerate(TOPIC_CASES):
        ch.basic_publish(x, rk, f"{i}".encode())
    for i, (pattern, rk, should) in enumerate(TOPIC_CASES):
        got = drain(ch, queues[i])
        # Only this case's own key must (or must not) be in its queue; other keys may match too.
        hit = f"{i}".encode() in got
        if hit != should:
            failures.append((pattern, rk, should))
        # And every key delivered must be one that matches according to the table.
        for body in got:
            j = int(body)
            if TOPIC_CASES[j][0] == pattern and TOPIC_CASES[j][2] is False:
                failures.append((pattern, TOPIC_CASES[j][1], False))
    assert failures == [], failures


def test_topic_empty_routing_key_is_zero_words(ch):
    x = mkx(ch, "topic")
    q_star, q_star_hash, q_hash, q_empty = mkq(ch, "s"), mkq(ch, "sh"), mkq(ch, "h"), mkq(ch, "e")
    ch.queue_bind(q_star, x, "*")
    ch.queue_bind(q_star_hash, x, "*.#")
    ch.queue_bind(q_hash, x, "#")
    ch.queue_bind(q_empty, x, "")
    ch.basic_publish(x, "", b"empty")
    assert drain(ch, q_hash) == [b"empty"]
    assert drain(ch, q_empty) == [b"empty"]
    assert drain(ch, q_star) == []
    assert drain(ch, q_star_hash) == []


def test_topic_hash_alone_gets_everything_once(ch):
    x = mkx(ch, "topic")
    q = mkq(ch, "hash")
    ch.queue_bind(q, x, "#")
    ch.queue_bind(q, x, "a.#")  # overlapping bindings: still one copy
    for rk in ("", "a", "a.b", "x.y.z"):
        ch.basic_publish(x, rk, rk.encode() or b"-")
    assert drain(ch, q) == [b"-", b"a", b"a.b", b"x.y.z"]


def test_headers_exchange_all_and_any(ch):
    x = mkx(ch, "headers")
    q_all, q_any, q_empty, q_xany = mkq(ch, "all"), mkq(ch, "any"), mkq(ch, "empty"), mkq(ch, "xany")
    ch.queue_bind(q_all, x, "", arguments={"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(q_any, x, "", arguments={"x-match": "any", "format": "pdf", "type": "log"})
    ch.queue_bind(q_empty, x, "", arguments={"x-match": "all"})
    ch.queue_bind(q_xany, x, "", arguments={"x-match": "any", "x-custom": "1"})

    def pub(body, headers):
        ch.basic_publish(x, "rk-ignored", body, pika.BasicProperties(headers=headers))

    pub(b"1", {"format": "pdf", "type": "report"})
    pub(b"2", {"format": "pdf", "type": "log"})
    pub(b"3", {"format": "zip", "type": "log", "extra": 1})
    pub(b"4", {"format": "zip"})
    pub(b"5", None)
    pub(b"6", {"format": "pdf", "type": "report", "more": True})
    pub(b"7", {"x-custom": "1"})
    assert drain(ch, q_all) == [b"1", b"6"]
    assert drain(ch, q_any) == [b"1", b"2", b"3", b"6"]
    assert drain(ch, q_empty) == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]
    assert drain(ch, q_xany) == []  # x- headers are ignored when matching


def test_headers_value_types_and_void(ch):
    x = mkx(ch, "headers")
    q_int, q_void = mkq(ch, "int"), mkq(ch, "void")
    ch.queue_bind(q_int, x, "", arguments={"x-match": "all", "n": 5})
    ch.queue_bind(q_void, x, "", arguments={"x-match": "all", "present": None})
    ch.basic_publish(x, "", b"int5", pika.BasicProperties(headers={"n": 5}))
    ch.basic_publish(x, "", b"str5", pika.BasicProperties(headers={"n": "5"}))
    ch.basic_publish(x, "", b"p-void", pika.BasicProperties(headers={"present": None}))
    ch.basic_publish(x, "", b"p-int", pika.BasicProperties(headers={"present": 1}))
    assert drain(ch, q_int) == [b"int5"]
    # A void binding value matches on presence of the header, whatever its value.
    assert drain(ch, q_void) == [b"p-void", b"p-int"]


def test_headers_bytes_value_matches_string_binding(ch):
    x = mkx(ch, "headers")
    q = mkq(ch, "bytes")
    ch.queue_bind(q, x, "", arguments={"x-match": "all", "format": "pdf"})
    ch.basic_publish(x, "", b"bytes", pika.BasicProperties(headers={"format": b"pdf"}))
    ch.basic_publish(x, "", b"str", pika.BasicProperties(headers={"format": "pdf"}))
    assert drain(ch, q) == [b"bytes", b"str"]


def test_exchange_to_exchange_bindings(ch):
    src = mkx(ch, "topic")
    mid = mkx(ch, "direct")
    fan = mkx(ch, "fanout")
    q1, q2 = mkq(ch, "e2e1"), mkq(ch, "e2e2")
    ch.exchange_bind(destination=mid, source=src, routing_key="order.*")
    ch.exchange_bind(destination=fan, source=src, routing_key="#")
    ch.queue_bind(q1, mid, "order.new")
    ch.queue_bind(q2, fan, "")
    ch.queue_bind(q2, src, "order.new")  # reachable twice: still delivered once
    ch.basic_publish(src, "order.new", b"n")
    ch.basic_publish(src, "order.old", b"o")
    ch.basic_publish(src, "misc", b"m")
    assert drain(ch, q1) == [b"n"]
    assert drain(ch, q2) == [b"n", b"o", b"m"]
    ch.exchange_unbind(destination=fan, source=src, routing_key="#")
    ch.basic_publish(src, "misc", b"m2")
    assert drain(ch, q2) == []


def test_exchange_binding_cycle_delivers_once(ch):
    a, b = mkx(ch, "fanout"), mkx(ch, "fanout")
    q = mkq(ch, "cyc")
    ch.exchange_bind(destination=b, source=a)
    ch.exchange_bind(destination=a, source=b)
    ch.queue_bind(q, b)
    ch.basic_publish(a, "", b"loop")
    assert drain(ch, q) == [b"loop"]


def test_alternate_exchange(ch):
    ae = mkx(ch, "fanout")
    x = mkx(ch, "direct", arguments={"alternate-exchange": ae})
    q_main, q_alt = mkq(ch, "main"), mkq(ch, "alt")
    ch.queue_bind(q_main, x, "known")
    ch.queue_bind(q_alt, ae, "")
    ch.basic_publish(x, "known", b"k")
    ch.basic_publish(x, "unknown", b"u", mandatory=True)  # routed via the AE: no return
    assert drain(ch, q_main) == [b"k"]
    assert drain(ch, q_alt) == [b"u"]


def test_internal_exchange(ch):
    internal = mkx(ch, "fanout", internal=True)
    front = mkx(ch, "fanout")
    q = mkq(ch, "int")
    ch.exchange_bind(destination=internal, source=front)
    ch.queue_bind(q, internal)
    ch.basic_publish(front, "", b"via-front")
    assert drain(ch, q) == [b"via-front"]
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.basic_publish(internal, "", b"direct")
    assert ei.value.reply_code == 403


@pytest.mark.parametrize("name, kind", [
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers"),
])
def test_amq_exchanges_exist(conns, name, kind):
    c = conns()
    ch = c.channel()
    ch.exchange_declare(name, passive=True)
    ch.exchange_declare(name, kind, durable=True)  # equivalent redeclare is allowed
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.exchange_delete(name)
    assert ei.value.reply_code == 403


def test_amq_prefix_exchange_declare_refused(conns):
    ch = conns().channel()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch.exchange_declare("amq.custom." + uuid.uuid4().hex[:6], "direct")
    assert ei.value.reply_code == 403


def test_exchange_redeclare_different_type_is_406(ch, conns):
    x = mkx(ch, "direct")
    ch2 = conns().channel()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch2.exchange_declare(x, "fanout")
    assert ei.value.reply_code == 406


def test_unknown_exchange_type_is_refused(conns):
    """RabbitMQ 3.10 closes the connection with 503 COMMAND_INVALID; 3.13 and later close
    just the channel with 406, which Hutch follows (README, Known differences)."""
    ch = conns().channel()
    if AGAINST_RABBITMQ:
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
            ch.exchange_declare("wq.x.bogus." + uuid.uuid4().hex[:6], "no-such-type")
        assert (ei.value.reply_code, ei.value.reply_text) == (
            503, "COMMAND_INVALID - unknown exchange type 'no-such-type'")
    else:
        with pytest.raises(ChannelClosedByBroker) as ei:
            ch.exchange_declare("wq.x.bogus." + uuid.uuid4().hex[:6], "no-such-type")
        assert (ei.value.reply_code, ei.value.reply_text) == (
            406, "PRECONDITION_FAILED - invalid exchange type 'no-such-type'")


def test_auto_delete_exchange_goes_with_last_binding(ch, conns):
    x = mkx(ch, "fanout", auto_delete=True)
    q = mkq(ch, "ad")
    ch.queue_bind(q, x)
    ch.queue_unbind(q, x)
    time.sleep(0.05)
    ch2 = conns().channel()
    with pytest.raises(ChannelClosedByBroker) as ei:
        ch2.exchange_declare(x, passive=True)
    assert ei.value.reply_code == 404
