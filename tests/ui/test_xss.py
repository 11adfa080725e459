"""Queue names, message bodies and header values are the broker's users' strings: the
list and the queue page must show them as text, never as markup.  An <img onerror> or
<script> that became an element would run (an alert) or at least exist in the DOM; both
are checked, and the console must stay clean."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

NAMES = ['<img src=x onerror=alert(1)>', '"><script>alert(1)</script>']
BODY = '<img src=x onerror=alert("body")><script>alert("body")</script>'
HEADER = '<b onmouseover=alert("h")>bold</b><svg onload=alert("svg")>'



@pytest.fixture(scope="module")
def hostile(hutch_ui: HutchProcess) -> Iterator[None]:
    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    ch = conn.channel()
    for name in NAMES:
        ch.queue_declare(name, arguments={"x-dead-letter-exchange": '<i>dlx</i>'})
        ch.basic_publish("", name, BODY.encode(),
                         pika.BasicProperties(headers={"<u>key</u>": HEADER}, content_type="<em>type</em>"))
    conn.close()
    yield


def no_markup(browser: Browser, scope: str) -> None:
    for tag in ("img", "script", "svg", "b", "u", "i", "em"):
        found = browser.find_all(f"{scope} {tag}")
        assert not found, f"a <{tag}> element was created inside {scope}"
    no_alert(browser)


def no_alert(browser: Browser) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    try:
        text = browser.d.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise AssertionError(f"an alert ran: {text!r}")


def test_the_list_shows_hostile_names_as_text(browser: Browser, hostile: None) -> None:
    browser.login_once()
    browser.open("queues")
    for name in NAMES:
        link = browser.wait_for(f"table[data-table=queues] tr[data-key={_css_str('//' + name)}] a.queue-name")
        assert link.text == name
        # encodeURIComponent's escaping: everything but A-Z a-z 0-9 - _ . ! ~ * ' ( )
        assert link.get_attribute("href").endswith("#/queues/%2F/" + quote(name, safe="!*'()"))
    titles = [a.get_attribute("title") for a in browser.find_all("table[data-table=queues] .features abbr")]
    assert 'x-dead-letter-exchange: "<i>dlx</i>"' in titles
    no_markup(browser, "table[data-table=queues]")


@pytest.mark.parametrize("name", NAMES)
def test_the_queue_page_shows_hostile_names_bodies_and_headers_as_text(browser: Browser, hostile: None,
                                                                        name: str) -> None:
    browser.login_once()
    browser.open("queues/%2F/" + quote(name, safe=""))
    assert browser.wait_for(".queue-title").text == name
    browser.click("details#get > summary")
    browser.click("#get-messages button[type=submit]")
    browser.wait_for(".messages .message")
    assert browser.find(".message pre.payload").text == BODY
    header = browser.find(".message .headers dt")
    assert header.text == "<u>key</u>"
    assert browser.find(".message .headers dd").text == HEADER
    assert "<em>type</em>" in browser.text(".message .properties")
    assert "<i>dlx</i>" in browser.text(".queue-facts")
    # The publish form's sentence (in a closed section) names the queue too.
    assert browser.find("#publish-message strong").get_attribute("textContent") == name
    no_markup(browser, "main")
    assert browser.d.title == "Queue - Hutch"


def _css_str(s: str) -> str:
    """A CSS string literal for an attribute selector."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
