"""Vhost.publish in-process, without sockets: routing, the overflow policy, the result flags."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hutch.broker.node import Node
from hutch.broker.queue import Queue
from hutch.broker.vhost import DIRECT_REPLY, REJECTED, ROUTED, STORED, Vhost
from hutch.protocol.frames import content_header_payload
from hutch.protocol.properties import decode_properties, encode_properties


def header(body: bytes, **props: Any) -> bytes:
    return content_header_payload(len(body), encode_properties(props))


@pytest.fixture
async def vhost() -> Vhost:
    return Node(asyncio.get_running_loop()).vhosts["/"]


def queue(vhost: Vhost, name: str, **arguments: Any) -> Queue:
    return vhost.declare_queue(name, False, False, False, False, arguments, None)


def publish(vhost: Vhost, exchange: str, routing_key: str, body: bytes = b"hi",
            fed: set[Any] | None = None, **props: Any) -> int:
    return vhost.publish(exchange, routing_key, header(body, **props), body, False, None,
                         set() if fed is None else fed)


def bodies(q: Queue) -> list[bytes]:
    out = []
    while (msg := q.get(True)) is not None:
        out.append(msg.body)
    return out


async def test_default_exchange_to_an_existing_queue(vhost: Vhost) -> None:
    q = queue(vhost, "work")
    fed: set[Any] = set()
    assert publish(vhost, "", "work", b"job", fed) == ROUTED
    assert fed == {q}
    msg = q.get(True)
    assert msg is not None
    assert (msg.exchange, msg.routing_key, msg.body) == ("", "work", b"job")


async def test_default_exchange_to_a_missing_queue_is_unroutable(vhost: Vhost) -> None:
    fed: set[Any] = set()
    assert publish(vhost, "", "nobody", fed=fed) == 0
    assert not fed


async def test_direct_reply_to_key_is_reported_and_never_routed(vhost: Vhost) -> None:
    # The channel delivers it to the reply consumer; as in RabbitMQ it does not count
    # as routed, so a mandatory reply also comes back with basic.return.
    fed: set[Any] = set()
    assert publish(vhost, "", "amq.rabbitmq.reply-to.abc.def", fed=fed) == DIRECT_REPLY
    assert not fed


async def test_direct_exchange(vhost: Vhost) -> None:
    a, b = queue(vhost, "a"), queue(vhost, "b")
    vhost.bind_queue("a", "amq.direct", "k1", {}, None)
    vhost.bind_queue("b", "amq.direct", "k2", {}, None)
    fed: set[Any] = set()
    assert publish(vhost, "amq.direct", "k1", b"1", fed) == ROUTED
    assert publish(vhost, "amq.direct", "k3", b"3", fed) == 0  # mandatory: basic.return
    assert fed == {a}
    assert (bodies(a), bodies(b)) == ([b"1"], [])


async def test_fanout_gives_every_queue_a_copy(vhost: Vhost) -> None:
    qs = [queue(vhost, f"f{i}") for i in range(3)]
    for q in qs:
        vhost.bind_queue(q.name, "amq.fanout", "", {}, None)
    fed: set[Any] = set()
    assert publish(vhost, "amq.fanout", "whatever", b"x", fed) == ROUTED
    assert fed == set(qs)
    assert [bodies(q) for q in qs] == [[b"x"]] * 3


async def test_topic_exchange(vhost: Vhost) -> None:
    one, all_ = queue(vhost, "one"), queue(vhost, "all")
    vhost.bind_queue("one", "amq.topic", "stock.*", {}, None)
    vhost.bind_queue("all", "amq.topic", "#", {}, None)
    assert publish(vhost, "amq.topic", "stock.usd", b"1") == ROUTED
    assert publish(vhost, "amq.topic", "stock.usd.nyse", b"2") == ROUTED
    assert (bodies(one), bodies(all_)) == ([b"1"], [b"1", b"2"])


async def test_headers_exchange(vhost: Vhost) -> None:
    q = queue(vhost, "h")
    vhost.bind_queue("h", "amq.headers", "", {"x-match": "all", "format": "pdf"}, None)
    assert publish(vhost, "amq.headers", "", b"no") == 0
    assert publish(vhost, "amq.headers", "", b"other", headers={"format": "zip"}) == 0
    assert publish(vhost, "amq.headers", "", b"yes", headers={"format": "pdf", "n": 1}) == ROUTED
    assert bodies(q) == [b"yes"]


async def test_alternate_exchange_takes_what_nothing_else_took(vhost: Vhost) -> None:
    vhost.declare_exchange("ae", "fanout", False, False, False, False, {})
    vhost.declare_exchange("main", "direct", False, False, False, False,
                           {"alternate-exchange": "ae"})
    bound, unrouted = queue(vhost, "bound"), queue(vhost, "unrouted")
    vhost.bind_queue("bound", "main", "k", {}, None)
    vhost.bind_queue("unrouted", "ae", "", {}, None)
    assert publish(vhost, "main", "k", b"1") == ROUTED
    assert publish(vhost, "main", "other", b"2") == ROUTED
    assert (bodies(bound), bodies(unrouted)) == ([b"1"], [b"2"])


async def test_deleted_exchange_routes_nowhere(vhost: Vhost) -> None:
    # The exchange went away between basic.publish and the end of its content.
    assert publish(vhost, "no-such-exchange", "k") == 0


async def test_reject_publish_overflow_is_rejected(vhost: Vhost) -> None:
    full = queue(vhost, "full", **{"x-max-length": 1, "x-overflow": "reject-publish"})
    other = queue(vhost, "other")
    for q in (full, other):
        vhost.bind_queue(q.name, "amq.fanout", "", {}, None)
    assert publish(vhost, "amq.fanout", "", b"1") == ROUTED
    fed: set[Any] = set()
    # Routed (no basic.return) but refused by one queue: the confirm is a nack.
    assert publish(vhost, "amq.fanout", "", b"2", fed) == ROUTED | REJECTED
    assert fed == {other}
    assert publish(vhost, "", "full", b"3") == ROUTED | REJECTED  # the work-queue path too
    assert (bodies(full), bodies(other)) == ([b"1"], [b"1", b"2"])


async def test_reject_publish_dlx_dead_letters_the_refused_copy(vhost: Vhost) -> None:
    vhost.declare_exchange("dlx", "fanout", False, False, False, False, {})
    dead = queue(vhost, "dead")
    vhost.bind_queue("dead", "dlx", "", {}, None)
    full = queue(vhost, "full", **{"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": "dlx"})
    assert publish(vhost, "", "full", b"1") == ROUTED
    assert publish(vhost, "", "full", b"2") == ROUTED | REJECTED
    assert bodies(full) == [b"1"]
    msg = dead.get(True)
    assert msg is not None and msg.body == b"2"
    death = decode_properties(msg.header[12:])["headers"]["x-death"][0]
    assert (death["reason"], death["queue"], death["count"]) == ("maxlen", "full", 1)


async def test_dead_lettered_copy_refused_by_a_full_queue_is_dropped(vhost: Vhost) -> None:
    vhost.declare_exchange("dlx", "fanout", False, False, False, False, {})
    dead = queue(vhost, "dead", **{"x-max-length": 0, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": "dlx"})
    vhost.bind_queue("dead", "dlx", "", {}, None)
    queue(vhost, "src", **{"x-max-length": 1, "x-dead-letter-exchange": "dlx"})
    assert publish(vhost, "", "src", b"1") == ROUTED
    assert publish(vhost, "", "src", b"2") == ROUTED  # drop-head: never rejected
    assert dead.message_count == 0


async def test_drop_head_drops_the_oldest_and_dead_letters_it(vhost: Vhost) -> None:
    vhost.declare_exchange("dlx", "fanout", False, False, False, False, {})
    dead = queue(vhost, "dead")
    vhost.bind_queue("dead", "dlx", "", {}, None)
    q = queue(vhost, "q", **{"x-max-length": 2, "x-dead-letter-exchange": "dlx"})
    for body in (b"1", b"2", b"3"):
        assert publish(vhost, "", "q", body) == ROUTED
    assert (bodies(q), bodies(dead)) == ([b"2", b"3"], [b"1"])


async def test_stored_when_the_store_holds_a_copy(tmp_path: Any) -> None:
    broker = Node(asyncio.get_running_loop())
    await broker.open_store(str(tmp_path), sync="none")
    try:
        vhost = broker.vhosts["/"]
        vhost.declare_queue("durable", False, True, False, False, {}, None)
        queue(vhost, "transient")
        h = header(b"p", delivery_mode=2)
        assert vhost.publish("", "durable", h, b"p", True, None, set()) == ROUTED | STORED
        assert vhost.publish("", "durable", h, b"p", False, None, set()) == ROUTED
        assert vhost.publish("", "transient", h, b"p", True, None, set()) == ROUTED
    finally:
        await broker.close_store()
