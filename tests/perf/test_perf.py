"""``hutch perf`` against the session's broker: counts add up, JSON parses, failures exit non-zero.

No assertion here is about speed: the figures depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pika
import pytest

from hutch.perf.report import Histogram
from tests.brokerproc import free_port


def perf(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hutch", "perf", "--url", url, "--quiet", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_counts_add_up_with_confirms_and_acks(broker_url: str, qname: str) -> None:
    r = perf(broker_url, "--queue", qname, "--producers", "2", "--consumers", "2", "--count", "3000",
             "--size", "100", "--persistent", "--confirm", "200", "--prefetch", "50", "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    s = json.loads(r.stdout)
    assert s["totals"] == {"sent": 6000, "confirmed": 6000, "nacked": 0, "returned": 0, "received": 6000}
    assert s["confirm_latency_ms"]["samples"] == 6000
    assert s["latency_ms"]["samples"] == 6000
    lat = s["latency_ms"]
    assert 0 <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert s["errors"] == []


def test_multi_ack_auto_ack_and_transient(broker_url: str, qname: str) -> None:
    for extra in (["--multi-ack", "30", "--prefetch", "100"], ["--auto-ack"]):
        r = perf(broker_url, "--queue", qname, "--count", "2500", "--json", *extra)
        assert r.returncode == 0, r.stderr + r.stdout
        s = json.loads(r.stdout)
        assert s["totals"]["sent"] == s["totals"]["received"] == 2500
        assert s["durable"] is False


def test_fill_then_drain_with_consumers_only(broker_url: str, qname: str) -> None:
    r = perf(broker_url, "--queue", qname, "--consumers", "0", "--count", "1000", "--confirm", "100",
             "--persistent", "--json", "--keep")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"]["confirmed"] == 1000
    r = perf(broker_url, "--queue", qname, "--durable", "--producers", "0", "--count", "1000", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["totals"] == {"received": 1000}


def test_text_summary_names_the_rates(broker_url: str, qname: str) -> None:
    r = perf(broker_url, "--queue", qname, "--count", "500", "--confirm", "50")
    assert r.returncode == 0, r.stderr
    assert "confirmed      500" in r.stdout and "received       500" in r.stdout
    assert "confirm latency ms: p50" in r.stdout


def test_nacks_give_exit_status_1(broker_url: str, qname: str) -> None:
    args = json.dumps({"x-max-length": 10, "x-overflow": "reject-publish"})
    r = perf(broker_url, "--queue", qname, "--queue-args", args, "--consumers", "0",
             "--count", "200", "--confirm", "20", "--batch", "20", "--json")
    assert r.returncode == 1, r.stderr + r.stdout
    s = json.loads(r.stdout)
    assert s["totals"]["nacked"] > 0
    assert s["totals"]["confirmed"] + s["totals"]["nacked"] == 200


def test_unreachable_broker_exits_2() -> None:
    r = perf(f"amqp://guest:guest@127.0.0.1:{free_port()}/", "--count", "10")
    assert r.returncode == 2
    assert "cannot connect" in r.stderr


def test_refused_declare_exits_2(broker_url: str, qname: str) -> None:
    r = perf(broker_url, "--queue", qname, "--count", "10", "--keep")
    assert r.returncode == 0, r.stderr
    # The same queue again, now durable: inequivalent arguments, 406 from the broker.
    r = perf(broker_url, "--queue", qname, "--count", "10", "--durable")
    assert r.returncode == 2
    assert "406" in r.stderr


def _queue_exists(url: str, name: str) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    finally:
        if conn.is_open:
            conn.close()


def test_deletes_the_queue_it_created_unless_keep(broker_url: str, qname: str) -> None:
    """As PerfTest (auto-delete queues): a run leaves no queue of its own behind."""
    r = perf(broker_url, "--queue", qname, "--count", "100")
    assert r.returncode == 0, r.stderr
    assert not _queue_exists(broker_url, qname)
    r = perf(broker_url, "--queue", qname, "--count", "100", "--keep")
    assert r.returncode == 0, r.stderr
    assert _queue_exists(broker_url, qname)
    _delete(broker_url, qname)


def test_leaves_a_queue_that_existed_before(broker_url: str, qname: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    conn.channel().queue_declare(qname)
    conn.close()
    r = perf(broker_url, "--queue", qname, "--count", "100")
    assert r.returncode == 0, r.stderr
    assert _queue_exists(broker_url, qname)
    _delete(broker_url, qname)


def _delete(url: str, name: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_delete(name)
    conn.close()


def test_wrong_password_exits_2(broker_url: str) -> None:
    r = perf(broker_url.replace("guest:guest@", "guest:wrong@"), "--count", "10")
    assert r.returncode == 2
    assert "error" in r.stderr


@pytest.mark.parametrize(("values", "p50"),
                         [([1_000_000] * 99 + [50_000_000], 1.0), (list(range(1, 101)), 50)])
def test_histogram_percentiles(values: list[int], p50: float) -> None:
    h = Histogram()
    for v in values:
        h.record(v)
    got = h.percentile(50) / (1e6 if p50 == 1.0 else 1)
    assert got == pytest.approx(p50, rel=0.03)
    assert h.percentile(100) == max(values)
    other = Histogram.from_state(h.to_state())
    other.merge(h)
    assert other.count == 2 * len(values) and other.max_ns == max(values)
