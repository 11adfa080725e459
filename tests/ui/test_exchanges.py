"""The exchanges pages: the list and its add form, an exchange's bindings (add, unbind),
publishing from it (routed / not routed, seen by pika) and deleting it."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

AUTH = ("guest", "guest")


def api(hutch: HutchProcess, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(method, hutch.http_url.rstrip("/") + path, auth=AUTH, timeout=5, **kw)



def test_the_list_shows_the_default_exchange_and_adds_one(browser: Browser, hutch_ui: HutchProcess,
                                                          channel: Any) -> None:
    xss = "<img src=x onerror=alert(1)>" + uuid.uuid4().hex[:6]
    channel.exchange_declare(xss, "fanout")
    channel.exchange_declare("orders", "topic", durable=True, arguments={"alternate-exchange": "amq.fanout"})
    browser.login()
    browser.go("exchanges")
    default = browser.wait_for("[data-table=exchanges] tr[data-key='//'] a.exchange-link")
    assert default.text == "(AMQP default)"
    assert default.get_attribute("href").endswith("#/exchanges/%2F/amq.default")
    row = browser.wait_for(f"[data-table=exchanges] tr[data-key='//{xss}']")
    assert xss in row.text  # the name as text, no <img> element
    assert not browser.find_all("[data-table=exchanges] img")
    orders = browser.text("[data-table=exchanges] tr[data-key='//orders']")
    assert "topic" in orders and "D" in orders and "AE" in orders
    browser.shot("exchanges")

    name = "ui-added-" + uuid.uuid4().hex[:6]
    # Every type the broker lists is offered, x-delayed-message included.
    browser.wait_for("#add-exchange-form [name=type] option[value=x-delayed-message]")
    browser.fill("#add-exchange-form [name=name]", name)
    browser.choose("#add-exchange-form [name=type]", "headers")
    browser.choose("#add-exchange-form [name=durable]", "false")
    browser.choose("#add-exchange-form [name=internal]", "true")
    browser.fill("#add-exchange-form [name=arg-key]", "alternate-exchange")
    browser.fill("#add-exchange-form [name=arg-value]", "amq.direct")
    browser.click("#add-exchange-form button[type=submit]")
    browser.wait_for(f"[data-table=exchanges] tr[data-key='//{name}']")
    made = api(hutch_ui, "GET", f"/api/exchanges/%2F/{name}").json()
    assert (made["type"], made["durable"], made["internal"], made["auto_delete"]) == (
        "headers", False, True, False)
    assert made["arguments"] == {"alternate-exchange": "amq.direct"}
    assert "I" in browser.text(f"[data-table=exchanges] tr[data-key='//{name}']")


def test_bindings_publish_and_delete(browser: Browser, hutch_ui: HutchProcess, channel: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    x, up, q1, q2 = f"logs-{tag}", f"upstream-{tag}", f"q1-{tag}", f"q2-{tag}"
    channel.exchange_declare(x, "topic")
    channel.exchange_declare(up, "fanout")
    channel.exchange_bind(x, up)
    for q in (q1, q2):
        channel.queue_declare(q)
    channel.queue_bind(q1, x, "a.#")
    browser.login()
    browser.go(f"exchanges/%2F/{quote(x)}")
    browser.wait_text("#exchange-name", x)
    browser.wait_text("[data-table=bindings-from]", q1)
    assert "a.#" in browser.text("[data-table=bindings-from]")
    assert up in browser.text("[data-table=bindings-to]")  # exchange-to-exchange, to this one
    browser.d.set_window_size(1366, 1300)
    try:
        browser.shot("exchange")
    finally:
        browser.d.set_window_size(1366, 900)

    # Add a binding to a queue from the form.
    browser.choose("#bind-form [name=destination_type]", "q")
    browser.fill("#bind-form [name=destination]", q2)
    browser.fill("#bind-form [name=routing_key]", "b.*")
    browser.click("#bind-form button[type=submit]")
    browser.wait_text("[data-table=bindings-from]", q2)
    keys = {(b["destination"], b["routing_key"])
            for b in api(hutch_ui, "GET", f"/api/exchanges/%2F/{x}/bindings/source").json()}
    assert keys == {(q1, "a.#"), (q2, "b.*")}

    # Publish: routed to q1 (with a header and a property), then a key nothing matches.
    browser.fill("#publish-form [name=routing_key]", "a.b")
    form_headers = browser.find_all("#publish-form fieldset")[0]
    form_headers.find_element("css selector", "[name=arg-key]").send_keys("who")
    form_headers.find_element("css selector", "[name=arg-value]").send_keys("<ui>")
    form_props = browser.find_all("#publish-form fieldset")[1]
    form_props.find_element("css selector", "[name=arg-key]").send_keys("content_type")
    form_props.find_element("css selector", "[name=arg-value]").send_keys("text/plain")
    browser.fill("#publish-form [name=payload]", "hello from the UI")
    browser.click("#publish-form button[type=submit]")
    browser.wait_text("#publish-form .publish-result", "Message published.")
    method, props, body = channel.basic_get(q1, auto_ack=True)
    assert method is not None and body == b"hello from the UI"
    assert props.headers == {"who": "<ui>"} and props.content_type == "text/plain"
    assert props.delivery_mode == 2
    browser.fill("#publish-form [name=routing_key]", "nothing.matches.this")
    browser.click("#publish-form button[type=submit]")
    browser.wait_text("#publish-form .publish-result", "not routed")

    # Unbind q1.
    browser.click(f"[data-table=bindings-from] button[aria-label^='Unbind {q1} ']")
    browser.wait_until(lambda: q1 not in browser.text("[data-table=bindings-from]"), "q1 unbound")
    keys = {b["destination"] for b in api(hutch_ui, "GET", f"/api/exchanges/%2F/{x}/bindings/source").json()}
    assert keys == {q2}

    # "Only if unused" refuses while q2 is bound: the API's reason in an alert, nothing deleted.
    browser.click("#delete input[name=if-unused]")
    browser.click("#delete-exchange")
    browser.accept_confirm()
    alert = browser.wait_for("#notices .notice.error[role=alert]")
    assert "in use" in alert.text.lower() or "unused" in alert.text.lower(), alert.text
    browser.console_errors()  # Chromium logs the refused DELETE itself
    assert api(hutch_ui, "GET", f"/api/exchanges/%2F/{x}").status_code == 200
    browser.click("#delete input[name=if-unused]")

    # Delete (confirmed), back to the list, gone from the broker.
    browser.click("#delete-exchange")
    assert x in browser.accept_confirm()
    browser.wait_until(lambda: browser.d.execute_script("return location.hash") == "#/exchanges",
                       "back at the exchanges list")
    assert api(hutch_ui, "GET", f"/api/exchanges/%2F/{x}").status_code == 404


def test_the_default_exchange_page_explains_and_publishes(browser: Browser, hutch_ui: HutchProcess,
                                                          channel: Any) -> None:
    q = "direct-" + uuid.uuid4().hex[:6]
    channel.queue_declare(q)
    browser.login()
    browser.go("exchanges/%2F/amq.default")
    browser.wait_text("#exchange-name", "(AMQP default)")
    assert "implicitly bound to every queue" in browser.text("#bindings")
    assert not browser.find_all("#delete-exchange")
    browser.fill("#publish-form [name=routing_key]", q)
    browser.choose("#publish-form [name=delivery_mode]", "1")
    browser.fill("#publish-form [name=payload]", "aGk=")
    browser.choose("#publish-form [name=payload_encoding]", "base64")
    browser.click("#publish-form button[type=submit]")
    browser.wait_text("#publish-form .publish-result", "Message published.")
    _method, props, body = channel.basic_get(q, auto_ack=True)
    assert body == b"hi" and props.delivery_mode == 1


def test_the_list_refreshes_without_touching_the_form(browser: Browser, hutch_ui: HutchProcess,
                                                      channel: Any) -> None:
    late = "late-" + uuid.uuid4().hex[:6]
    browser.login()
    browser.go("exchanges")
    browser.wait_for("[data-table=exchanges] tr[data-key='//amq.direct']")
    browser.fill("#add-exchange-form [name=name]", "half-typed")
    box = browser.find("#add-exchange-form [name=name]")
    channel.exchange_declare(late, "direct")
    # The 5 s refresh brings it in; the form a user is typing in stays as it was.
    browser.wait_for(f"[data-table=exchanges] tr[data-key='//{late}']", timeout=12)
    assert browser.find("#add-exchange-form [name=name]") == box
    assert box.get_attribute("value") == "half-typed"
