"""The queue page in a real browser against a real broker, with pika on the other
side: get messages (a header, x-death), publish, purge, delete, bindings, consumers
and moving messages from a dead-letter queue back."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pika
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser, add_user

AUTH = ("guest", "guest")



def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def page(name: str, vhost: str = "/") -> str:
    return f"queues/{quote(vhost, safe='')}/{quote(name, safe='')}"


def api(hutch: HutchProcess, path: str) -> Any:
    r = requests.get(hutch.http_url + "api/" + path, auth=AUTH, timeout=5)
    r.raise_for_status()
    return r.json()


def queue_exists(hutch: HutchProcess, name: str) -> bool:
    r = requests.get(hutch.http_url + "api/queues/%2F/" + quote(name, safe=""), auth=AUTH, timeout=5)
    return r.status_code == 200



def dismiss_notices(browser: Browser) -> None:
    for close in browser.find_all("#notices .notice .close"):
        close.click()


def open_section(browser: Browser, section: str) -> None:
    browser.click(f"details#{section} > summary")


def get_messages(browser: Browser, ackmode: str = "ack_requeue_true", count: int = 1) -> None:
    open_section(browser, "get")
    browser.choose("#get-messages [name=ackmode]", ackmode)
    browser.fill("#get-messages [name=count]", str(count))
    browser.click("#get-messages button[type=submit]")
    browser.wait_for(".messages .message")


def test_get_message_shows_its_body_and_header(browser: Browser, channel: Any) -> None:
    q = unique("get")
    channel.queue_declare(q)
    channel.basic_publish("", q, b"the stuck order #42",
                          pika.BasicProperties(headers={"tenant": "acme"}, content_type="text/plain"))
    browser.login_once()
    browser.open(page(q))
    browser.wait_text(".queue-title", q)
    get_messages(browser)
    assert browser.text(".message pre.payload") == "the stuck order #42"
    assert browser.text(".message [data-header=tenant]") == "acme"
    assert "text/plain" in browser.text(".message .properties")
    assert "0 messages remaining" in browser.text(".messages")
    # "Nack message requeue true" put it back.
    assert channel.queue_declare(q, passive=True).method.message_count == 1


def test_get_shows_the_x_death_entries_of_a_dead_lettered_message(browser: Browser, channel: Any) -> None:
    work, dlq = unique("work"), unique("dlq")
    channel.queue_declare(dlq)
    channel.queue_declare(work, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    channel.basic_publish("", work, b"poison")
    method, _props, _body = channel.basic_get(work)
    channel.basic_reject(method.delivery_tag, requeue=False)
    browser.login_once()
    browser.open(page(dlq))
    get_messages(browser, "ack_requeue_false")
    death = browser.wait_for(".message [data-header=x-death] table")
    cells = [c.text for c in death.find_elements("css selector", "tbody td")]
    heads = [c.text for c in death.find_elements("css selector", "thead th")]
    assert {"count", "reason", "queue", "exchange"} <= set(heads)
    assert "rejected" in cells and work in cells
    assert any(c.endswith(" UTC)") for c in cells), cells  # the time as a date too
    assert browser.text(".message [data-header=x-first-death-reason]") == "rejected"
    assert browser.text(".message pre.payload") == "poison"
    # "Automatic ack" took it.
    assert channel.queue_declare(dlq, passive=True).method.message_count == 0


def test_publish_from_the_page_reaches_pika(browser: Browser, channel: Any) -> None:
    q = unique("pub")
    channel.queue_declare(q)
    browser.login_once()
    browser.open(page(q))
    open_section(browser, "publish")
    browser.choose("#publish-message [name=delivery_mode]", "2")
    browser.fill("#publish-message fieldset:nth-of-type(1) [name=arg-key]", "trace-id")
    browser.fill("#publish-message fieldset:nth-of-type(1) [name=arg-value]", "t-77")
    browser.fill("#publish-message [name=payload]", "hello from the page ✓")
    browser.click("#publish-message button[type=submit]")
    browser.wait_text(".publish-result", "Message published.")
    method, props, body = channel.basic_get(q, auto_ack=True)
    assert method is not None
    assert body.decode() == "hello from the page ✓"
    assert props.headers == {"trace-id": "t-77"}
    assert props.delivery_mode == 2


def test_purge_empties_the_queue_after_confirming(browser: Browser, channel: Any) -> None:
    q = unique("purge")
    channel.queue_declare(q)
    for i in range(3):
        channel.basic_publish("", q, b"m%d" % i)
    browser.login_once()
    browser.open(page(q))
    browser.wait_text("table[data-table=counts]", "3")
    open_section(browser, "purge")
    browser.click("#purge-queue")
    assert q in browser.accept_confirm()
    browser.wait_text("#notices", "Queue purged.")
    assert channel.queue_declare(q, passive=True).method.message_count == 0


def test_delete_confirms_then_goes_back_to_the_list(browser: Browser, hutch_ui: HutchProcess,
                                                    channel: Any) -> None:
    q = unique("del")
    channel.queue_declare(q)
    channel.basic_publish("", q, b"x")
    browser.login_once()
    browser.open(page(q))
    open_section(browser, "delete")
    # "Only if empty": the broker refuses, the page says why, the queue stays.
    browser.click("#delete-if-empty")
    browser.click("#delete-queue button[type=submit]")
    browser.accept_confirm()
    browser.wait_until(lambda: browser.find_all("#notices .notice.error"), "the refusal")
    assert queue_exists(hutch_ui, q)
    browser.console_errors()  # the refused DELETE is logged by Chromium as a failed load
    browser.click("#delete-if-empty")
    browser.click("#delete-queue button[type=submit]")
    browser.accept_confirm()
    browser.wait_until(lambda: browser.d.execute_script("return location.hash") == "#/queues", "#/queues")
    assert not queue_exists(hutch_ui, q)


def test_bindings_add_and_remove(browser: Browser, hutch_ui: HutchProcess, channel: Any) -> None:
    q = unique("bind")
    channel.queue_declare(q)
    browser.login_once()
    browser.open(page(q))
    browser.wait_text("#bindings", "(Default exchange binding)")
    browser.fill("#add-binding [name=source]", "amq.topic")
    browser.fill("#add-binding [name=routing_key]", "orders.*")
    browser.click("#add-binding button[type=submit]")
    browser.wait_text("table[data-table=bindings]", "orders.*")
    bound = [b for b in api(hutch_ui, f"queues/%2F/{q}/bindings") if b["source"] == "amq.topic"]
    assert [b["routing_key"] for b in bound] == ["orders.*"]
    channel.basic_publish("amq.topic", "orders.new", b"routed")
    assert channel.basic_get(q, auto_ack=True)[2] == b"routed"
    dismiss_notices(browser)  # the "Bound" notice floats over the table's right edge
    browser.click("table[data-table=bindings] button.unbind")
    browser.accept_confirm()
    browser.wait_until(lambda: "orders.*" not in browser.text("table[data-table=bindings]"), "unbound")
    assert not [b for b in api(hutch_ui, f"queues/%2F/{q}/bindings") if b["source"] == "amq.topic"]


def test_consumers_and_the_queue_screenshot(browser: Browser, hutch_ui: HutchProcess) -> None:
    q = "orders"
    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        ch = conn.channel()
        ch.queue_declare(q, durable=True, arguments={"x-max-priority": 5, "x-message-ttl": 3600000})
        ch.queue_bind(q, "amq.topic", "orders.#")
        for i in range(12):
            ch.basic_publish("amq.topic", "orders.eu", b'{"order": %d}' % i,
                             pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                                  headers={"tenant": "acme"}))
        ch.basic_qos(prefetch_count=7)
        tag = ch.basic_consume(q, lambda *a: None, consumer_tag="billing-worker-1")
        conn.process_data_events(time_limit=0.5)
        browser.login_once()
        browser.open(page(q))
        row = browser.wait_for(f"table[data-table=consumers] tr[data-key={tag}]")
        cells = [c.text for c in row.find_elements("css selector", "td")]
        assert cells[1] == "billing-worker-1" and cells[2] == "yes" and cells[4] == "7"
        channel_link = row.find_element("css selector", "td a")
        assert channel_link.get_attribute("href").split("#", 1)[1].startswith("/channels/")
        first = "table[data-table=counts] tbody tr:first-child"
        browser.wait_until(lambda: browser.text(first).split()[1:] == ["5", "7", "12"],
                           "ready 5, unacked 7, total 12", timeout=12)
        dismiss_notices(browser)
        browser.d.execute_script("window.scrollTo(0, 0)")
        browser.shot("queue")
    finally:
        conn.close()


def test_move_messages_from_a_dead_letter_queue_back(browser: Browser, channel: Any) -> None:
    work, dlq = unique("work"), unique("dlq")
    channel.queue_declare(dlq)
    channel.queue_declare(work, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
    for i in range(5):
        channel.basic_publish("", work, b"job %d" % i, pika.BasicProperties(headers={"n": i}))
    for _ in range(5):  # a consumer that fails every job: all five are dead-lettered
        method, _props, _body = channel.basic_get(work)
        channel.basic_reject(method.delivery_tag, requeue=False)
    assert channel.queue_declare(dlq, passive=True).method.message_count == 5
    browser.login_once()
    browser.open(page(dlq))
    open_section(browser, "move")
    browser.fill("#move-messages [name=dest-queue]", work)
    browser.click("#move-messages button[type=submit]")
    browser.wait_text(".move-status", f'Messages moved to "{work}"', timeout=20)
    browser.wait_until(lambda: browser.text("table[data-table=counts] tbody tr:first-child").split()[1:]
                       == ["0", "0", "0"], "the emptied dead-letter queue's counts", timeout=12)
    got = []
    while True:
        method, props, body = channel.basic_get(work, auto_ack=True)
        if method is None:
            break
        got.append((body, props.headers["n"], props.headers["x-death"][0]["reason"]))
    # In order, bodies and headers kept; x-death says where they had been.
    assert got == [(b"job %d" % i, i, "rejected") for i in range(5)], got
    assert channel.queue_declare(dlq, passive=True).method.message_count == 0


def test_move_is_offered_to_policymakers_only(browser: Browser, hutch_ui: HutchProcess,
                                              channel: Any) -> None:
    """Shovel parameters need the policymaker or administrator tag, as in RabbitMQ, whose
    queue page shows "Move messages" to those users only."""
    dlq, user = unique("dlq"), unique("mover")
    channel.queue_declare(dlq)
    channel.basic_publish("", dlq, b"stays")
    base = hutch_ui.http_url + "api/"
    add_user(hutch_ui, user, "management")
    try:
        browser.login(user, "pw")
        browser.open(page(dlq))
        browser.wait_for("#get")
        assert not browser.find_all("#move")
        assert requests.put(base + "users/" + user, json={"password": "pw",
                                                          "tags": "policymaker"},
                            auth=AUTH, timeout=5).status_code == 204
        browser.login(user, "pw")
        browser.open(page(dlq))
        browser.wait_for("#move")
        assert channel.queue_declare(dlq, passive=True).method.message_count == 1
    finally:
        browser.d.execute_script("sessionStorage.clear()")  # the next test logs in as guest
        requests.delete(base + "users/" + user, auth=AUTH, timeout=5)
