"""The connections pages: the list, a connection's page (client properties as text),
closing a connection with a reason, and what a management-only user sees."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pika
import pytest
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

AUTH = ("guest", "guest")


def api(hutch: HutchProcess, method: str, path: str, **kw: Any) -> requests.Response:
    r = requests.request(method, hutch.http_url.rstrip("/") + path, auth=kw.pop("auth", AUTH),
                         timeout=5, **kw)
    r.raise_for_status()
    return r


def connect(hutch: HutchProcess, name: str, user: str = "guest", password: str = "guest"
            ) -> pika.BlockingConnection:
    params = pika.URLParameters(hutch.url)
    params.credentials = pika.PlainCredentials(user, password)
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def connection_named(hutch: HutchProcess, given: str) -> dict[str, Any]:
    for c in api(hutch, "GET", "/api/connections").json():
        if c["client_properties"].get("connection_name") == given:
            return c
    raise AssertionError(f"no connection named {given!r}")


def test_a_connection_is_listed_shown_as_text_and_closed_with_a_reason(
        browser: Browser, hutch_ui: HutchProcess) -> None:
    given = "<b>x</b>"
    conn = connect(hutch_ui, given)
    try:
        conn.channel()
        name = connection_named(hutch_ui, given)["name"]
        browser.login()
        browser.go("connections")
        row = f"[data-table=connections] tr[data-key='{name}']"
        browser.wait_for(row)
        # The client-provided name is text, never markup.
        assert given in browser.text(row)
        assert not browser.find_all("[data-table=connections] td b")
        assert "Pika Python Client Library" in browser.text(row)
        assert "guest" in browser.text(row)
        browser.shot("connections")

        browser.click(row + " a.connection-link")
        browser.wait_text("#connection-name", name)
        props = browser.wait_text("#client-properties", "publisher_confirms")
        text = browser.text("#client-properties")
        assert given in text and "capabilities" in text and "Pika Python Client Library" in text
        assert not browser.find_all("#client-properties b")
        assert props is not None
        facts = browser.text(".connection-facts")
        assert "PLAIN" in facts and "AMQP 0-9-1" in facts and "60s" in facts
        browser.wait_for("[data-table=connection-channels] a.channel-link")
        browser.d.set_window_size(1366, 1300)
        try:
            browser.shot("connection")
        finally:
            browser.d.set_window_size(1366, 900)

        browser.fill("#close-form [name=reason]", "maintenance")
        browser.click("#force-close")
        assert name in browser.accept_confirm()
        browser.wait_until(lambda: browser.d.execute_script("return location.hash") == "#/connections",
                           "back at the connections list")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            for _ in range(50):
                conn.process_data_events(0.1)
        assert closed.value.reply_code == 320
        assert closed.value.reply_text == "CONNECTION_FORCED - maintenance"
        browser.wait_until(lambda: browser.find_all("[data-table=connections] td.empty")
                           or name not in browser.text("[data-table=connections]"),
                           "the closed connection gone from the list")
        assert name not in browser.text("[data-table=connections]")
    finally:
        if conn.is_open:
            conn.close()


def test_a_management_user_sees_only_its_own_connections_and_no_admin(
        browser: Browser, hutch_ui: HutchProcess) -> None:
    user = "mgmt-" + uuid.uuid4().hex[:8]
    api(hutch_ui, "PUT", f"/api/users/{user}", json={"password": "pw", "tags": "management"})
    api(hutch_ui, "PUT", f"/api/permissions/%2F/{quote(user)}",
        json={"configure": ".*", "write": ".*", "read": ".*"})
    mine = connect(hutch_ui, "mine-" + user, user, "pw")
    theirs = connect(hutch_ui, "theirs-" + user)
    try:
        my_name = connection_named(hutch_ui, "mine-" + user)["name"]
        their_name = connection_named(hutch_ui, "theirs-" + user)["name"]
        browser.login(user, "pw")
        assert "Admin" not in browser.text("#nav")
        assert "Connections" in browser.text("#nav")
        browser.go("connections")
        browser.wait_for(f"[data-table=connections] tr[data-key='{my_name}']")
        table = browser.text("[data-table=connections]")
        assert their_name not in table
        assert "1 items" in browser.text(".table-controls .count")
    finally:
        mine.close()
        theirs.close()
        api(hutch_ui, "DELETE", f"/api/users/{user}")
