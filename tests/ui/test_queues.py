"""The queues list in a real browser: counts after pika publishes and consumes, the
"Add a new queue" form, and a broker with 10,000 queues (one page fetched and drawn,
filter, next page, sort by messages)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pika
import pytest
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

AUTH = ("guest", "guest")
MANY = 10_000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"



def row_css(name: str, vhost: str = "/") -> str:
    return f'table[data-table=queues] tr[data-key="{vhost}/{name}"]'


def cells(browser: Browser, name: str) -> list[str]:
    row = browser.find(row_css(name))
    return [c.text for c in row.find_elements("css selector", "td")]


def features(browser: Browser, name: str) -> list[str]:
    return [t.text for t in browser.find_all(row_css(name) + " .features abbr")]


def filter_by(browser: Browser, text: str) -> None:
    browser.fill("[data-table=queues] input.filter", text)


def test_the_list_screenshot(browser: Browser, hutch_ui: HutchProcess) -> None:
    """A list with something to see: types, features, counts and a consumer."""
    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        ch = conn.channel()
        ch.queue_declare("emails", durable=True, arguments={"x-max-priority": 10})
        ch.queue_declare("orders", durable=True, arguments={
            "x-queue-type": "quorum", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "orders.dlq",
            "x-delivery-limit": 5})
        ch.queue_declare("orders.dlq", durable=True)
        ch.queue_declare("reports", arguments={"x-message-ttl": 600000, "x-max-length": 1000})
        for name, n in (("emails", 40), ("orders", 25), ("orders.dlq", 3), ("reports", 7)):
            for i in range(n):
                ch.basic_publish("", name, b"m%d" % i)
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume("orders", lambda *a: None)
        conn.process_data_events(time_limit=0.5)
        browser.login_once()
        browser.open("queues")
        browser.wait_for(row_css("orders"))
        browser.wait_until(lambda: cells(browser, "orders")[4:7] == ["15", "10", "25"], "orders' counts")
        assert cells(browser, "orders")[1] == "quorum"
        assert features(browser, "orders") == ["D", "DLX", "DLK", "DLim"]
        browser.shot("queues")
    finally:
        conn.close()


def test_counts_follow_pika_publishes_and_unacked_deliveries(browser: Browser,
                                                             hutch_ui: HutchProcess) -> None:
    q = unique("counts")
    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        ch = conn.channel()
        ch.queue_declare(q, durable=True, arguments={"x-message-ttl": 60000, "x-max-length": 100})
        for i in range(5):
            ch.basic_publish("", q, b"m%d" % i)
        ch.basic_qos(prefetch_count=2)
        ch.basic_consume(q, lambda *a: None)
        conn.process_data_events(time_limit=0.5)
        browser.login_once()
        browser.open("queues")
        filter_by(browser, q)
        browser.wait_for(row_css(q))
        # Name, type, features, state, ready, unacked, total, rates...
        browser.wait_until(lambda: cells(browser, q)[4:7] == ["3", "2", "5"], "ready 3, unacked 2, total 5")
        row = cells(browser, q)
        assert row[0] == q and row[1] == "classic" and row[3] == "running"
        assert features(browser, q) == ["D", "TTL", "Lim"]
        link = browser.find(row_css(q) + " a.queue-name")
        assert link.get_attribute("href").endswith("#/queues/%2F/" + quote(q, safe=""))
        assert browser.text("[data-table=queues] .count").startswith("1 of ")
    finally:
        conn.close()
    # The consumer is gone: its two messages are ready again (the next refresh shows it).
    browser.wait_until(lambda: cells(browser, q)[4:7] == ["5", "0", "5"], "ready 5 after the close",
                       timeout=12)


def test_add_a_queue_with_an_argument_shortcut(browser: Browser, hutch_ui: HutchProcess) -> None:
    q = unique("added")
    browser.login_once()
    browser.open("queues")
    browser.click("#add-queue-section > summary")
    browser.choose("#add-queue [name=queuetype]", "quorum")
    assert not browser.find("#add-queue [name=durable]").is_displayed()  # quorum: always durable
    browser.fill("#add-queue [name=name]", q)
    browser.click("#add-queue button[data-arg=x-delivery-limit]")
    browser.fill("#add-queue .arg-row:last-child [name=arg-value]", "7")
    browser.click("#add-queue button[type=submit]")
    browser.wait_text("#notices", f'Queue "{q}" added.')
    r = requests.get(hutch_ui.http_url + "api/queues/%2F/" + q, auth=AUTH, timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "quorum" and body["durable"] is True
    assert body["arguments"]["x-delivery-limit"] == 7
    # A bad number is refused in words before anything is sent.
    browser.fill("#add-queue [name=name]", unique("bad"))
    browser.click("#add-queue button[data-arg=x-max-length]")
    browser.fill("#add-queue .arg-row:last-child [name=arg-value]", "lots")
    browser.click("#add-queue button[type=submit]")
    browser.wait_text("#notices .notice.error", '"x-max-length" must be a number')


@pytest.fixture(scope="module")
def many_queues() -> Iterator[HutchProcess]:
    """A broker of its own with 10,000 queues (one definitions import), five of which
    hold 1..5 messages."""
    proc = HutchProcess("--in-memory", http=True)
    proc.start()
    try:
        defs = {"queues": [{"name": f"bulk-{i:05d}", "vhost": "/", "durable": False,
                            "auto_delete": False, "arguments": {}} for i in range(MANY)]}
        r = requests.post(proc.http_url + "api/definitions", json=defs, auth=AUTH, timeout=60)
        assert r.status_code in (200, 201, 204), r.text
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        for i, name in enumerate(["bulk-00007", "bulk-04242", "bulk-09999", "bulk-00500", "bulk-03000"]):
            for _ in range(5 - i):
                ch.basic_publish("", name, b"x")
        conn.close()
        yield proc
    finally:
        proc.stop()


def test_ten_thousand_queues_one_page_at_a_time(driver: Any, many_queues: HutchProcess,
                                                screenshot_dir: str) -> None:
    browser = Browser(driver, many_queues.http_url, screenshot_dir)
    browser.console_errors()
    browser.login_once()
    started = time.monotonic()
    browser.open("queues")
    browser.wait_text("[data-table=queues] .count", "10,000 items", timeout=20)
    rows = "table[data-table=queues] tbody tr"
    browser.wait_until(lambda: len(browser.find_all(rows)) == 100, "100 rows")
    shown = time.monotonic() - started
    print(f"\nqueues page with {MANY:,} queues: table shown in {shown:.2f} s")
    assert browser.text(".pager .page-of") == "Page 1 of 100"
    assert cells(browser, "bulk-00000")[0] == "bulk-00000"

    started = time.monotonic()
    browser.click("th button[data-sort=messages]")  # numbers sort biggest first
    browser.wait_until(lambda: browser.find_all(rows)[0].get_attribute("data-key") == "//bulk-00007",
                       "the fullest queue first")
    print(f"sorted by messages in {time.monotonic() - started:.2f} s")
    firsts = [r.get_attribute("data-key") for r in browser.find_all(rows)[:5]]
    assert firsts == ["//bulk-00007", "//bulk-04242", "//bulk-09999", "//bulk-00500", "//bulk-03000"]

    browser.click(".pager button.next")
    browser.wait_text(".pager .page-of", "Page 2 of 100")
    browser.wait_until(lambda: browser.find_all(rows)[0].get_attribute("data-key") != "//bulk-00007",
                       "the second page's rows")
    assert len(browser.find_all(rows)) == 100
    assert not browser.find_all(row_css("bulk-00007"))

    filter_by(browser, "bulk-0424")
    browser.wait_text("[data-table=queues] .count", "10 of 10,000 items")
    assert len(browser.find_all(rows)) == 10
    assert cells(browser, "bulk-04242")[4:7] == ["4", "0", "4"]
    errors = browser.console_errors()
    assert not errors, errors
