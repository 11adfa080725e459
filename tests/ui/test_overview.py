"""The overview in a real browser: totals and object counts that follow pika's
traffic on their own (the page refreshes itself), node facts, and the memory alarm
shown in red only while it is set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser, add_user

AUTH = ("guest", "guest")
REFRESHED = 15.0  # the page refreshes every 5 s: two chances and some slack



def total(browser: Browser, key: str) -> int:
    return int(browser.text(f"[data-total={key}]").replace(",", ""))


@pytest.fixture
def connection(hutch_ui: HutchProcess) -> Iterator[Any]:
    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        yield conn
    finally:
        if conn.is_open:
            conn.close()


def test_counts_change_after_publishing(browser: Browser, connection: Any) -> None:
    browser.login_once()
    browser.open("")
    browser.wait_until(lambda: browser.text("[data-total=queues]").isdigit(), "the counts")
    before = {k: total(browser, k) for k in ("messages", "messages_ready", "queues", "connections")}
    assert before["connections"] == 1  # this test's pika connection
    ch = connection.channel()
    q = f"overview-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    # No reload: the page's own refresh picks the change up.
    browser.wait_until(lambda: total(browser, "messages") == before["messages"] + 3,
                       "3 more messages", timeout=REFRESHED)
    assert total(browser, "messages_ready") == before["messages_ready"] + 3
    assert total(browser, "queues") == before["queues"] + 1
    assert total(browser, "channels") >= 1
    facts = browser.text(".nodes")
    assert "Hutch" in facts and "high watermark" in facts and "Uptime" in facts
    assert not browser.find_all(".nodes .alarm")
    listeners = browser.text("table[data-table=listeners]")
    assert "amqp" in listeners and "http" in listeners
    assert browser.find("a[href='#/definitions']")  # guest is an administrator
    browser.shot("overview")


def test_memory_alarm_is_shown_in_red_only_while_set(browser: Browser, hutch_ui: HutchProcess) -> None:
    url = hutch_ui.http_url + "api/hutch/vm-memory-high-watermark"
    browser.login_once()
    browser.open("")
    browser.wait_text(".nodes", "Memory")
    assert not browser.find_all(".nodes .alarm")
    r = requests.put(url, json={"absolute": 1}, auth=AUTH, timeout=5)
    assert r.status_code == 204, r.text
    try:
        alarm = browser.wait_for(".nodes .alarm[data-alarm=Memory]", timeout=REFRESHED)
        assert alarm.text == "Memory alarm"
        colour = browser.d.execute_script("return getComputedStyle(arguments[0]).color", alarm)
        red, green, blue = (int(x) for x in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3])
        assert red > 120 and green < 60 and blue < 60, colour
        assert not browser.find_all(".nodes .alarm[data-alarm=Disk]")
    finally:
        r = requests.put(url, json={"relative": 0.6}, auth=AUTH, timeout=5)
        assert r.status_code == 204, r.text
    browser.wait_until(lambda: not browser.find_all(".nodes .alarm"), "the alarm gone", timeout=REFRESHED)


def test_charts_draw_the_sample_history(browser: Browser, connection: Any) -> None:
    """The API's ?lengths_age=&msg_rates_age= history becomes two drawn charts."""
    ch = connection.channel()
    q = f"charts-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(q)
    for i in range(20):
        ch.basic_publish("", q, b"m%d" % i)
    browser.login_once()
    browser.open("")
    for title in ("Queued messages", "Message rates"):
        browser.wait_for(f"figure.chart[data-chart='{title}'] canvas", timeout=REFRESHED)
    legend = browser.text("figure.chart[data-chart='Message rates'] .u-legend")
    assert "Publish" in legend and "Consumer ack" in legend
    browser.open("queues/%2F/" + q)
    browser.wait_for("figure.chart[data-chart='Queued messages'] canvas", timeout=REFRESHED)
    assert "Ready: 20" in browser.text("figure.chart[data-chart='Queued messages'] .chart-summary")


def test_a_management_user_sees_totals_but_no_node_facts(browser: Browser, hutch_ui: HutchProcess) -> None:
    """/api/nodes needs the monitoring tag: the overview leaves the nodes out rather than
    failing, as RabbitMQ's does, and offers no definitions link."""
    user = f"mgmt-{uuid.uuid4().hex[:6]}"
    base = hutch_ui.http_url + "api/"
    add_user(hutch_ui, user, "management")
    try:
        browser.login(user, "pw")
        browser.open("")
        browser.wait_until(lambda: browser.text("[data-total=queues]").isdigit(), "the counts")
        assert "Queued messages" in browser.text("main")
        assert not browser.find_all(".nodes")
        assert not browser.find_all("a[href='#/definitions']")
    finally:
        browser.d.execute_script("sessionStorage.clear()")  # the next test logs in as guest
        requests.delete(base + "users/" + user, auth=AUTH, timeout=5)
