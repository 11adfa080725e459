"""What the management API and ``hutch ctl list_consumers`` show of consumer priorities
and single active consumers: the queue's ``single_active_consumer_tag``, each consumer's
``active``/``activity_status`` ("up"; "single_active" or "waiting" on a single-active-
consumer queue, rabbit_queue_consumers:all) and ``arguments``.

RabbitMQ 3.10's management API has every one of these fields: run against it too
(HUTCH_TEST_HTTP_URL); the ctl test is Hutch's own tool.
"""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from tests.admin.test_ctl import ctl, rows
from tests.mgmt import Api, seg

SAC = {"x-single-active-consumer": True}


@pytest.fixture
def amqp(broker_url: str, api: Api, qname: str) -> Iterator[pika.BlockingConnection]:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        yield conn
    finally:
        if conn.is_open:
            conn.close()
        api.delete(f"queues/%2F/{seg(qname)}")


def _states(queue: dict) -> dict[str, tuple[bool, str]]:
    return {c["consumer_tag"]: (c["active"], c["activity_status"])
            for c in queue["consumer_details"]}


def test_single_active_consumer_shown_on_queue_and_consumers(api: Api, amqp, qname: str) -> None:
    ch = amqp.channel()
    ch.queue_declare(qname, arguments=SAC)
    first = amqp.channel()
    first.basic_consume(qname, lambda *a: None, consumer_tag="first")
    ch.basic_consume(qname, lambda *a: None, consumer_tag="second",
                     arguments={"x-priority": 4})
    path = f"queues/%2F/{seg(qname)}"
    # (RabbitMQ's queue document lacks its statistics fields for its first seconds.)
    # (Nor, for a moment after that, its single active consumer: the field is null.)
    q = api.wait_for(path, lambda d: len(d.get("consumer_details", [])) == 2
                     and d.get("single_active_consumer_tag") is not None)
    assert q["single_active_consumer_tag"] == "first"
    assert q["exclusive_consumer_tag"] is None
    assert _states(q) == {"first": (True, "single_active"), "second": (False, "waiting")}
    args = {c["consumer_tag"]: c["arguments"] for c in q["consumer_details"]}
    assert args == {"first": {}, "second": {"x-priority": 4}}
    listed = api.wait_for("queues/%2F", lambda qs: any(
        x["name"] == qname and x.get("single_active_consumer_tag") is not None for x in qs))
    assert next(x for x in listed if x["name"] == qname)["single_active_consumer_tag"] == "first"
    mine = [c for c in api.ok("GET", "consumers/%2F") if c["queue"]["name"] == qname]
    assert {c["consumer_tag"]: (c["active"], c["activity_status"]) for c in mine} == {
        "first": (True, "single_active"), "second": (False, "waiting")}

    first.basic_cancel("first")
    # (RabbitMQ refreshes the queue's fields and its consumer list at different times.)
    q = api.wait_for(path, lambda d: len(d.get("consumer_details", [])) == 1
                     and d["single_active_consumer_tag"] == "second")
    assert _states(q) == {"second": (True, "single_active")}


def test_plain_queue_consumers_are_up(api: Api, amqp, qname: str) -> None:
    ch = amqp.channel()
    ch.queue_declare(qname)
    ch.basic_consume(qname, lambda *a: None, consumer_tag="a", arguments={"x-priority": -2})
    ch.basic_consume(qname, lambda *a: None, consumer_tag="b")
    q = api.wait_for(f"queues/%2F/{seg(qname)}",
                     lambda d: len(d.get("consumer_details", [])) == 2
                     and "single_active_consumer_tag" in d)
    assert q["single_active_consumer_tag"] is None
    assert _states(q) == {"a": (True, "up"), "b": (True, "up")}
    assert {c["consumer_tag"]: c["arguments"] for c in q["consumer_details"]} == {
        "a": {"x-priority": -2}, "b": {}}


@pytest.mark.hutch_only  # RabbitMQ 4.0+ quorum queues only
def test_quorum_hand_over_shows_in_the_api(api: Api, amqp, qname: str) -> None:
    ch = amqp.channel()
    ch.queue_declare(qname, durable=True, arguments={**SAC, "x-queue-type": "quorum"})
    ch.basic_consume(qname, lambda *a: None, consumer_tag="low")
    ch.basic_consume(qname, lambda *a: None, consumer_tag="high", arguments={"x-priority": 9})
    q = api.wait_for(f"queues/%2F/{seg(qname)}",
                     lambda d: d.get("single_active_consumer_tag") == "high")
    assert _states(q) == {"high": (True, "single_active"), "low": (False, "waiting")}


@pytest.mark.hutch_only  # hutch ctl is Hutch's own tool
def test_ctl_list_consumers_columns(hutch_exe: list[str], http_url: str, amqp,
                                    qname: str) -> None:
    ch = amqp.channel()
    ch.queue_declare(qname, arguments=SAC)
    ch.basic_consume(qname, lambda *a: None, consumer_tag="one")
    ch.basic_consume(qname, lambda *a: None, consumer_tag="two", arguments={"x-priority": 3})
    r = ctl(hutch_exe, http_url, "list_consumers", "queue_name", "consumer_tag", "active",
            "activity_status", "arguments")
    assert r.returncode == 0, r.stderr
    assert rows(r.stdout)[1] == ["queue_name", "consumer_tag", "active", "activity_status",
                                 "arguments"]
    mine = sorted(row for row in rows(r.stdout)[2:] if row[0] == qname)
    assert mine == [[qname, "one", "true", "single_active", "[]"],
                    [qname, "two", "false", "waiting", '[{"x-priority",3}]']]
