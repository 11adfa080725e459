"""Sample history (``?lengths_age=&lengths_incr=&msg_rates_age=&msg_rates_incr=``) on
Hutch and, with HUTCH_TEST_HTTP_URL, on RabbitMQ's management plugin.

RabbitMQ's statistics lag by up to 5 s: every check waits for the samples it needs."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import pika
import pytest

from hutch.admin.history import History, Range, parse_range
from tests.mgmt import Api, seg

RANGE = "lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5"


@pytest.fixture(scope="module")
def loaded_queue(broker_url: str, http_url: str) -> str:
    """A queue with 10 messages published into it (and kept there)."""
    name = f"hist-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.queue_declare(name)
        for i in range(10):
            ch.basic_publish("", name, f"m{i}".encode())
    finally:
        conn.close()
    yield name
    Api(http_url).delete(f"queues/%2F/{seg(name)}")


def _samples(details: dict[str, Any]) -> list[dict[str, int]]:
    return details.get("samples", [])


def _check_series(details: dict[str, Any], age: int, incr: int) -> None:
    samples = _samples(details)
    n = age // incr + 1
    # Hutch answers age/incr + 1 samples; RabbitMQ's slide sometimes one fewer.
    assert len(samples) in (n, n - 1), samples
    stamps = [s["timestamp"] for s in samples]
    assert all(t % (incr * 1000) == 0 for t in stamps), stamps
    assert all(a - b == incr * 1000 for a, b in itertools.pairwise(stamps)), stamps
    values = [s["sample"] for s in samples]
    assert details["avg"] == pytest.approx(sum(values) / len(values))
    expected_rate = (values[0] - values[-1]) * 1000 / (stamps[0] - stamps[-1])
    assert details["avg_rate"] == pytest.approx(expected_rate)
    assert "rate" in details


def test_queue_lengths_and_message_rates(api: Api, loaded_queue: str) -> None:
    path = f"queues/%2F/{seg(loaded_queue)}?{RANGE}"

    def ready(q: dict[str, Any]) -> bool:
        pub = q.get("message_stats", {}).get("publish_details", {})
        return bool(_samples(q.get("messages_details", {}))) and \
            _samples(q.get("messages_details", {}))[0]["sample"] == 10 and \
            bool(_samples(pub)) and _samples(pub)[0]["sample"] == 10

    q = api.wait_for(path, ready, timeout=20)
    for key in ("messages_details", "messages_ready_details", "messages_unacknowledged_details"):
        _check_series(q[key], 60, 5)
    assert _samples(q["messages_ready_details"])[0]["sample"] == 10
    assert _samples(q["messages_unacknowledged_details"])[0]["sample"] == 0
    pub = q["message_stats"]["publish_details"]
    _check_series(pub, 60, 5)
    # Counters are cumulative: never decreasing going forward in time.
    values = [s["sample"] for s in _samples(pub)]
    assert values == sorted(values, reverse=True)
    # The queue's lengths are rounded up to the increment (RabbitMQ's range_ceil),
    # its message rates down: the newest length sample is not older.
    assert q["messages_details"]["samples"][0]["timestamp"] >= pub["samples"][0]["timestamp"]
    now_ms = time.time() * 1000
    assert now_ms - 5000 - 1000 <= pub["samples"][0]["timestamp"] <= now_ms + 1000


def test_only_the_parameters_given(api: Api, loaded_queue: str) -> None:
    base = f"queues/%2F/{seg(loaded_queue)}"
    q = api.wait_for(base + "?lengths_age=30&lengths_incr=10",
                     lambda q: bool(_samples(q.get("messages_details", {}))))
    _check_series(q["messages_details"], 30, 10)
    assert "samples" not in q.get("message_stats", {}).get("publish_details", {})
    q = api.wait_for(base + "?msg_rates_age=20&msg_rates_incr=5",
                     lambda q: "publish_details" in q.get("message_stats", {}))
    _check_series(q["message_stats"]["publish_details"], 20, 5)
    assert "samples" not in q["messages_details"]
    # One half of a pair, or a value that is not an integer: no history, no error.
    for query in ("lengths_age=60", "lengths_incr=5", "lengths_age=sixty&lengths_incr=5",
                  "lengths_age=60&lengths_incr=5.0"):
        r = api.get(f"{base}?{query}")
        assert r.status_code == 200, (query, r.text)
        assert "samples" not in r.json()["messages_details"], query


@pytest.mark.parametrize("query, age, incr", [
    ("lengths_age=0&lengths_incr=5", 0, 5),
    ("lengths_age=60&lengths_incr=-5", 60, -5),
    ("msg_rates_age=6000&msg_rates_incr=5", 6000, 5),  # more than 500 samples
    ("msg_rates_age=60&msg_rates_incr=0", 60, 0),
    ("data_rates_age=-1&data_rates_incr=5", -1, 5),  # validated even where unused
])
def test_bad_range_is_400(api: Api, query: str, age: int, incr: int) -> None:
    for path in ("overview", "vhosts/%2F"):
        r = api.get(f"{path}?{query}")
        assert r.status_code == 400, (path, r.text)
        assert r.json() == {"error": "bad_request",
                            "reason": f"Invalid range parameters: age {age}, incr {incr}"}


def test_overview_and_vhost(api: Api, loaded_queue: str) -> None:
    def has(o: dict[str, Any]) -> bool:
        qt = o["queue_totals"].get("messages_details", {})
        pub = o.get("message_stats", {}).get("publish_details", {})
        return bool(_samples(qt)) and _samples(qt)[0]["sample"] >= 10 and bool(_samples(pub))

    o = api.wait_for(f"overview?{RANGE}", has, timeout=20)
    for key in ("messages_details", "messages_ready_details", "messages_unacknowledged_details"):
        _check_series(o["queue_totals"][key], 60, 5)
    _check_series(o["message_stats"]["publish_details"], 60, 5)
    v = api.wait_for(f"vhosts/%2F?{RANGE}",
                     lambda v: bool(_samples(v.get("messages_details", {}))) and
                     _samples(v.get("messages_details", {}))[0]["sample"] >= 10, timeout=20)
    _check_series(v["messages_ready_details"], 60, 5)


@pytest.mark.hutch_only
def test_exact_sample_count(api: Api, loaded_queue: str) -> None:
    q = api.get(f"queues/%2F/{seg(loaded_queue)}?lengths_age=60&lengths_incr=7").json()
    assert len(q["messages_details"]["samples"]) == 9


@pytest.mark.hutch_only
def test_history_is_run_length_encoded() -> None:
    h = History(retain=605)
    t0 = 1_000_000_000
    for i in range(200):  # 1000 s of an idle queue: one entry
        h.observe("q", {"messages": 3, "publish": 7}, t0 + i * 5000)
    assert h.entries() == 1
    for i in range(200, 400):  # then busy: one entry per sample, 605 s of them kept
        h.observe("q", {"messages": i, "publish": 7 + i}, t0 + i * 5000)
    assert 121 <= h.entries() <= 123
    now = t0 + 399 * 5000
    rng = parse_range({"lengths_age": "10", "lengths_incr": "5"}, "lengths", now_ms=now)
    assert rng == Range(now // 5000 * 5000 - 10000, now // 5000 * 5000, 5000)
    assert h.series(["q"], "messages", rng) == [399, 398, 397]
    # Before the first entry an object counts 0; keys are summed.
    h.observe("r", {"messages": 1}, now)
    assert h.series(["q", "r"], "messages", rng) == [400, 398, 397]
    h.forget_missing({"r"})
    assert h.series(["q"], "messages", rng) is None


@pytest.mark.hutch_only
def test_a_parameter_of_thousands_of_digits_is_400_not_500(api: Api, loaded_queue: str) -> None:
    r = api.get(f"queues/%2F/{seg(loaded_queue)}?lengths_age={'9' * 4400}&lengths_incr=1")
    assert r.status_code == 400, r.text
    assert r.json()["reason"].startswith("Invalid range parameters")
