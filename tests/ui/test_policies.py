"""Admin > Policies: a policy added through the page takes effect on a pika client's
queue; a refused definition is shown in the broker's words; Clear removes it."""

from __future__ import annotations

import uuid

import pika
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

GUEST = ("guest", "guest")


def api(hutch: HutchProcess, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, hutch.http_url + "api/" + path, auth=GUEST, timeout=5, **kw)


def add_policy(browser: Browser, name: str, pattern: str, key: str, value: str) -> None:
    browser.fill("#add-policy [name=name]", name)
    browser.fill("#add-policy [name=pattern]", pattern)
    browser.choose("#add-policy [name=apply-to]", "queues")
    browser.fill("#add-policy [name=priority]", "3")
    browser.click(f"#add-policy .quick-pick[data-key={key}]")
    browser.fill("#add-policy .arg-row:last-child [name=arg-value]", value)
    browser.click("#add-policy button[type=submit]")


def test_a_max_length_policy_takes_effect_and_is_cleared(browser: Browser, hutch_ui: HutchProcess) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"pol-{tag}"
    browser.login()
    browser.open("policies")
    browser.wait_for("#add-policy")
    assert "Operator policies" in browser.text("#main")  # an administrator sees both kinds
    add_policy(browser, name, rf"^pol\.{tag}", "max-length", "2")
    browser.wait_text("[data-table=policies] tbody", name)
    policy = api(hutch_ui, "GET", f"policies/%2F/{name}").json()
    assert policy["definition"] == {"max-length": 2}
    assert (policy["pattern"], policy["apply-to"], policy["priority"]) == (rf"^pol\.{tag}", "queues", 3)
    browser.shot("policies")

    # Edit fills the form with the policy; a changed value is the same PUT.
    browser.fill("#add-policy [name=name]", "")
    browser.click(f'[data-table=policies] button[aria-label="Edit the policy {name} on /"]')
    assert browser.find("#add-policy [name=name]").get_attribute("value") == name
    assert browser.find("#add-policy [name=apply-to]").get_attribute("value") == "queues"
    browser.fill("#add-policy .arg-row:first-child [name=arg-value]", "2")
    browser.fill("#add-policy [name=priority]", "4")
    browser.click("#add-policy button[type=submit]")
    browser.wait_until(lambda: api(hutch_ui, "GET", f"policies/%2F/{name}").json()["priority"] == 4,
                       "the policy updated")
    assert api(hutch_ui, "GET", f"policies/%2F/{name}").json()["definition"] == {"max-length": 2}

    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        ch = conn.channel()
        queue = f"pol.{tag}"
        ch.queue_declare(queue, auto_delete=True)
        for i in range(5):
            ch.basic_publish("", queue, f"m{i}".encode())
        ch.basic_publish("", "nowhere", b"sync")  # a round trip after the publishes
        assert ch.queue_declare(queue, passive=True).method.message_count == 2

        browser.click(f'[data-table=policies] button[aria-label="Clear the policy {name} on /"]')
        assert name in browser.accept_confirm()
        browser.wait_until(lambda: name not in browser.text("[data-table=policies] tbody"), "the policy gone")
        assert api(hutch_ui, "GET", f"policies/%2F/{name}").status_code == 404
        for _ in range(3):
            ch.basic_publish("", queue, b"more")
        assert ch.queue_declare(queue, passive=True).method.message_count == 5
    finally:
        conn.close()


def test_a_refused_definition_is_shown_in_the_brokers_words(browser: Browser, hutch_ui: HutchProcess) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    browser.login()
    browser.open("policies")
    browser.wait_for("#add-policy")
    add_policy(browser, name, "^x", "max-length", "lots")
    browser.wait_text("#notices [role=alert]", "must be a number")
    browser.choose("#add-policy .arg-row:last-child [name=arg-type]", "string")
    browser.click("#add-policy button[type=submit]")
    browser.wait_text("#notices [role=alert]", "is not a valid maximum length")
    browser.console_errors()  # Chromium logs the 400 itself as a failed load
    assert api(hutch_ui, "GET", f"policies/%2F/{name}").status_code == 404
