"""Resource alarms triggered for real: the memory watermark and the free disk limit
changed at runtime (``hutch ctl`` / ``rabbitmqctl set_vm_memory_high_watermark`` and
``set_disk_free_limit``), seen by a publisher (connection.blocked / unblocked, with
RabbitMQ's reason text), a consumer that keeps draining on another connection, the
health checks and /api/nodes.

Against RabbitMQ these need ``HUTCH_TEST_RABBITMQCTL`` and a node of their own or
CI's (never the shared dev node: an alarm there blocks everyone).  Each test puts
the thresholds back in a ``finally`` and waits for the alarms to clear, as the
other tests of CI's RabbitMQ stage share the node.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.conftest import EXTERNAL_HTTP_URL, EXTERNAL_URL
from tests.mgmt import Api
from tests.toolproc import ROOT, hutch_cmd

RABBITMQCTL = os.environ.get("HUTCH_TEST_RABBITMQCTL")


@dataclass
class Target:
    url: str
    api: Api
    ctl: Callable[..., subprocess.CompletedProcess]
    rabbitmq: bool


@pytest.fixture
def target() -> Iterator[Target]:
    """A broker whose alarms this test may set: a private Hutch, or the RabbitMQ under
    test when rabbitmqctl for it is given."""
    if EXTERNAL_URL:
        if not (RABBITMQCTL and EXTERNAL_HTTP_URL):
            pytest.skip("needs HUTCH_TEST_RABBITMQCTL and HUTCH_TEST_HTTP_URL (a RabbitMQ whose "
                        "alarms this test may set)")
        cmd = shlex.split(RABBITMQCTL)

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60,
                                  cwd=ROOT)
        yield Target(EXTERNAL_URL, Api(EXTERNAL_HTTP_URL), run, True)
        return
    proc = HutchProcess(http=True)
    proc.start()
    try:
        def run_hutch(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([*hutch_cmd("ctl", "--url", proc.http_url), *args],
                                  capture_output=True, text=True, timeout=60, cwd=ROOT)
        yield Target(proc.url, Api(proc.http_url), run_hutch, False)
    finally:
        proc.stop()


def _node(api: Api) -> dict:
    # A RabbitMQ node that started a moment ago has no statistics in /api/nodes yet.
    return api.wait_for("nodes", lambda ns: "mem_alarm" in ns[0] and "disk_free_alarm" in ns[0])[0]


def _ctl_ok(t: Target, *args: str) -> None:
    r = t.ctl(*args)
    assert r.returncode == 0, (args, r.stdout, r.stderr)


class Publisher:
    """A pika connection that records connection.blocked / unblocked as they come."""

    def __init__(self, url: str, name: str) -> None:
        params = pika.URLParameters(url)
        params.blocked_connection_timeout = 60
        params.client_properties = {"connection_name": name}
        self.conn = pika.BlockingConnection(params)
        self.events: list[str] = []
        self.conn.add_on_connection_blocked_callback(
            lambda _c, frame: self.events.append(f"blocked: {frame.method.reason}"))
        self.conn.add_on_connection_unblocked_callback(
            lambda _c, _frame: self.events.append("unblocked"))
        self.ch = self.conn.channel()

    def wait(self, predicate: Callable[[list[str]], bool], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            assert time.monotonic() < deadline, f"{what}: events {self.events}"
            self.conn.process_data_events(time_limit=0.05)

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


# What the tests put back: RabbitMQ 3.10's defaults, which CI's node runs with (its
# /api/nodes lags by seconds, so what it shows before a test may be another test's).
MEMORY_BACK = "0.4"
DISK_BACK = "50MB"


@pytest.fixture
def restore(target: Target) -> Iterator[None]:
    """Puts the node's thresholds back and waits for the alarms to clear."""
    try:
        yield
    finally:
        target.ctl("set_vm_memory_high_watermark", MEMORY_BACK)
        target.ctl("set_disk_free_limit", DISK_BACK)
        _wait_alarms(target.api, [])


def _wait_alarms(api: Api, resources: list[str]) -> None:
    """/api/health/checks/alarms lists exactly these (RabbitMQ's answer: live)."""
    def check() -> bool:
        r = api.get("health/checks/alarms")
        if not resources:
            return r.status_code == 200 and r.json() == {"status": "ok"}
        body = r.json()
        return r.status_code == 503 and [a["resource"] for a in body["alarms"]] == resources
    deadline = time.monotonic() + 15
    while not check():
        assert time.monotonic() < deadline, api.get("health/checks/alarms").text
        time.sleep(0.05)


def test_memory_alarm_blocks_publisher_on_publish_consumer_drains(target: Target, restore,
                                                                    qname: str) -> None:
    api = target.api
    setup = pika.BlockingConnection(pika.URLParameters(target.url))
    sch = setup.channel()
    sch.queue_declare(qname)
    for i in range(20):
        sch.basic_publish("", qname, f"before {i}".encode())
    name = f"pub-{uuid.uuid4().hex[:8]}"
    pub = Publisher(target.url, name)
    cons = pika.BlockingConnection(pika.URLParameters(target.url))
    try:
        # A watermark of one byte: any node is over it.
        _ctl_ok(target, "set_vm_memory_high_watermark", "absolute", "1")
        _wait_alarms(api, ["memory"])
        body = api.get("health/checks/alarms").json()
        node = _node(api)
        assert body == {"status": "failed", "reason": "There are alarms in effect in the cluster",
                        "alarms": [{"resource": "memory", "node": node["name"]}]}
        assert api.get("health/checks/local-alarms").status_code == 503
        node = api.wait_for("nodes", lambda ns: ns[0]["mem_alarm"] is True)[0]
        assert node["mem_limit"] == 1 and node["disk_free_alarm"] is False
        # The alarm alone blocks no one (rabbit_reader): the publisher, which has not
        # published since, hears nothing and is only "blocking".
        pub.conn.process_data_events(time_limit=0.3)
        assert pub.events == []
        if not target.rabbitmq:  # RabbitMQ's connection statistics lag by 5 s
            conn = api.wait_for("connections", lambda cs: any(
                c.get("client_properties", {}).get("connection_name") == name for c in cs))
            state = {c["client_properties"].get("connection_name"): c["state"] for c in conn}
            assert state[name] == "blocking"
        pub.ch.basic_publish("", qname, b"during the alarm")
        pub.wait(lambda e: e == ["blocked: low on memory"], "publisher not blocked")
        if not target.rabbitmq:
            api.wait_for("connections", lambda cs: any(
                c["state"] == "blocked" for c in cs
                if c.get("client_properties", {}).get("connection_name") == name))
        # A consumer on its own connection keeps draining meanwhile.
        cch = cons.channel()
        got = [cch.basic_get(qname, auto_ack=True)[2] for _ in range(20)]
        assert got == [f"before {i}".encode() for i in range(20)]
        assert pub.events == ["blocked: low on memory"]  # still blocked
        # Back above memory: unblocked, and what was held back goes through.
        _ctl_ok(target, "set_vm_memory_high_watermark", MEMORY_BACK)
        pub.wait(lambda e: e[-1:] == ["unblocked"], "publisher not unblocked")
        _wait_alarms(api, [])
        deadline = time.monotonic() + 10
        while (body := cch.basic_get(qname, auto_ack=True)[2]) is None:
            assert time.monotonic() < deadline, "the publish held back never arrived"
            time.sleep(0.05)
        assert body == b"during the alarm"
        assert pub.events == ["blocked: low on memory", "unblocked"]
    finally:
        pub.close()
        cons.close()
        if setup.is_open:
            setup.channel().queue_delete(qname)
            setup.close()


def test_disk_and_memory_alarms_block_with_both_reasons(target: Target, restore,
                                                         qname: str) -> None:
    """Both alarms: reason "low on disk & memory"; one clearing is not enough."""
    api = target.api
    pub = Publisher(target.url, f"pub-{uuid.uuid4().hex[:8]}")
    try:
        pub.ch.queue_declare(qname)
        # More free space than any disk has (a petabyte; rabbitmqctl 3.10 knows no TB).
        _ctl_ok(target, "set_disk_free_limit", "1000000GB")
        _wait_alarms(api, ["disk space"])
        node = api.wait_for("nodes", lambda ns: ns[0]["disk_free_alarm"] is True)[0]
        assert node["disk_free_limit"] == 1000 * 1000**4
        assert node["disk_free"] < node["disk_free_limit"]
        _ctl_ok(target, "set_vm_memory_high_watermark", "absolute", "1")
        _wait_alarms(api, ["disk space", "memory"])
        pub.ch.basic_publish("", qname, b"x")
        pub.wait(lambda e: e == ["blocked: low on disk & memory"], "publisher not blocked")
        # Memory back: still low on disk, still blocked.
        _ctl_ok(target, "set_vm_memory_high_watermark", MEMORY_BACK)
        _wait_alarms(api, ["disk space"])
        pub.conn.process_data_events(time_limit=0.3)
        assert pub.events == ["blocked: low on disk & memory"]
        _ctl_ok(target, "set_disk_free_limit", "50MB")
        pub.wait(lambda e: e[-1:] == ["unblocked"], "publisher not unblocked")
        _wait_alarms(api, [])
        if not target.rabbitmq:  # (RabbitMQ's /api/nodes catches up within 5 s)
            assert _node(api)["disk_free_alarm"] is False
            assert _node(api)["disk_free_limit"] == 50_000_000
        pub.ch.queue_delete(qname)
    finally:
        pub.close()


def test_disk_alarm_alone_says_low_on_disk(target: Target, restore, qname: str) -> None:
    pub = Publisher(target.url, f"pub-{uuid.uuid4().hex[:8]}")
    try:
        pub.ch.queue_declare(qname)
        _ctl_ok(target, "set_disk_free_limit", "mem_relative", "100000")  # 100,000 x RAM
        _wait_alarms(target.api, ["disk space"])
        pub.ch.basic_publish("", qname, b"x")
        pub.wait(lambda e: e == ["blocked: low on disk"], "publisher not blocked")
        _ctl_ok(target, "set_disk_free_limit", "50MB")
        pub.wait(lambda e: e[-1:] == ["unblocked"], "publisher not unblocked")
        pub.ch.queue_delete(qname)
    finally:
        pub.close()


def test_ctl_refuses_bad_thresholds(target: Target) -> None:
    """rabbitmqctl's argument checks: a bad value exits 65, a missing one 64, with
    its texts; nothing changes."""
    before = _node(target.api)
    for args, code, text in (
            (["set_vm_memory_high_watermark", "1.5"], 65,
             "Bad argument: The threshold should be a fraction between 0.0 and 1.0"),
            (["set_vm_memory_high_watermark", "absolute", "10XB"], 65,
             "Bad argument: Invalid units."),
            (["set_disk_free_limit", "lots"], 65, "Bad argument."),
            (["set_disk_free_limit", "mem_relative"], 64, "not enough arguments.")):
        r = target.ctl(*args)
        assert r.returncode == code, (args, r.stdout, r.stderr)
        assert r.stderr.startswith(f"Error (argument validation): {text}\n"), (args, r.stderr)
    # RabbitMQ's /api/nodes lags a change by up to 5 s (CI once compared the previous
    # test's limit with the restored one), so the thresholds are compared on Hutch.
    if not target.rabbitmq:
        after = _node(target.api)
        assert (after["mem_limit"], after["disk_free_limit"]) == (before["mem_limit"],
                                                                  before["disk_free_limit"])
