"""Admin > Virtual hosts: add one, give a user permissions on it, a max-queues limit
that the broker enforces on a pika client, clear it, delete the vhost."""

from __future__ import annotations

import uuid

import pika
import pika.exceptions
import pytest
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

GUEST = ("guest", "guest")


def api(hutch: HutchProcess, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, hutch.http_url + "api/" + path, auth=GUEST, timeout=5, **kw)


def test_add_a_vhost_permit_a_user_limit_its_queues_and_delete_it(
        browser: Browser, hutch_ui: HutchProcess) -> None:
    name = f"ui-vh-{uuid.uuid4().hex[:8]}"
    browser.login()
    browser.open("vhosts")
    browser.fill("#add-vhost [name=name]", name)
    browser.fill("#add-vhost [name=description]", "billing <b>jobs</b>")
    browser.fill("#add-vhost [name=tags]", "team-a, prod")
    browser.click("#add-vhost button[type=submit]")
    browser.wait_text("[data-table=vhosts] tbody", name)
    made = api(hutch_ui, "GET", f"vhosts/{name}").json()
    assert (made["description"], made["tags"]) == ("billing <b>jobs</b>", ["team-a", "prod"])
    browser.wait_text(f'[data-table=vhosts] tr[data-key="{name}"]', "team-a")
    browser.shot("vhosts")

    browser.click(f'[data-table=vhosts] tr[data-key="{name}"] a')
    browser.wait_text("h1", "Virtual host: " + name)
    browser.wait_text("#main .facts", "running")
    browser.wait_text("#main .facts", "billing <b>jobs</b>")  # as text
    browser.choose("#set-permission [name=user]", "guest")
    browser.click("#set-permission button[type=submit]")
    browser.wait_text("[data-table=vhost-permissions] tbody", "guest")

    browser.choose("[data-limits=vhost] [name=limit]", "max-queues")
    browser.fill("[data-limits=vhost] [name=value]", "1")
    browser.click("[data-limits=vhost] button[type=submit]")
    browser.wait_text("[data-table=vhost-limits] tbody", "max-queues")
    limits = api(hutch_ui, "GET", f"vhost-limits/{name}").json()
    assert limits == [{"vhost": name, "value": {"max-queues": 1}}]

    params = pika.URLParameters(hutch_ui.url + name)
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.queue_declare("q1")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare("q2")
        assert refused.value.reply_code == 406
        assert "queue limit" in refused.value.reply_text

        browser.click('[data-table=vhost-limits] button[aria-label^="Clear max-queues"]')
        browser.accept_confirm()
        browser.wait_text("[data-table=vhost-limits] tbody", "No limits")
        assert api(hutch_ui, "GET", f"vhost-limits/{name}").json() == []
        conn.channel().queue_declare("q2")
    finally:
        conn.close()

    browser.click("#delete-vhost")
    assert name in browser.accept_confirm()
    browser.wait_until(lambda: browser.d.current_url.endswith("#/vhosts"), "back to the list")
    browser.wait_for("[data-table=vhosts] tbody")
    assert api(hutch_ui, "GET", f"vhosts/{name}").status_code == 404


def test_a_refused_limit_is_shown_in_words(browser: Browser) -> None:
    browser.login()
    browser.open("vhosts/%2F")
    browser.wait_for("[data-limits=vhost]")
    browser.fill("[data-limits=vhost] [name=value]", "1.5")
    browser.click("[data-limits=vhost] button[type=submit]")
    browser.wait_text("#notices [role=alert]", "whole number")


def test_the_limits_page_sets_a_user_limit_the_broker_enforces(
        browser: Browser, hutch_ui: HutchProcess) -> None:
    user = f"ui-lim-{uuid.uuid4().hex[:8]}"
    assert api(hutch_ui, "PUT", f"users/{user}", json={"password": "pw", "tags": ""}).ok
    assert api(hutch_ui, "PUT", f"permissions/%2F/{user}",
               json={"configure": ".*", "write": ".*", "read": ".*"}).ok
    browser.login()
    browser.open("limits")
    browser.wait_for("[data-limits=user]")
    browser.wait_until(lambda: user in browser.text("[data-limits=user] [name=user]"), "the user to choose")
    browser.choose("[data-limits=user] [name=user]", user)
    browser.choose("[data-limits=user] [name=limit]", "max-channels")
    browser.fill("[data-limits=user] [name=value]", "1")
    browser.click("[data-limits=user] button[type=submit]")
    browser.wait_text("[data-table=user-limits] tbody", user)
    limits = api(hutch_ui, "GET", f"user-limits/{user}").json()
    assert limits == [{"user": user, "value": {"max-channels": 1}}]
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", hutch_ui.port, "/", pika.PlainCredentials(user, "pw")))
    try:
        conn.channel()
        with pytest.raises(pika.exceptions.AMQPError):
            conn.channel()
    finally:
        if conn.is_open:
            conn.close()
    browser.click(f'[data-table=user-limits] button[aria-label="Clear max-channels of {user}"]')
    browser.accept_confirm()
    browser.wait_until(lambda: user not in browser.text("[data-table=user-limits] tbody"),
                       "the limit cleared")
    assert api(hutch_ui, "GET", f"user-limits/{user}").json() == []
