"""The UI's frame: served by the management port, logging in and out, headers."""

from __future__ import annotations

import requests

from tests.ui.conftest import Browser


def test_login_shows_the_user_and_logout_returns_to_the_form(browser: Browser) -> None:
    browser.login()
    assert browser.text("#whoami") == "guest"
    assert "administrator" in browser.text("#session")
    browser.click("#logout")
    browser.wait_for("#login")
    # The credentials are gone: a reload shows the form, not the overview.
    browser.d.refresh()
    browser.wait_for("#login")


def test_wrong_password_is_shown_in_words(browser: Browser) -> None:
    browser.d.get(browser.base + "/")
    browser.d.execute_script("sessionStorage.clear()")
    browser.d.get(browser.base + "/")
    browser.fill("#login [name=username]", "guest")
    browser.fill("#login [name=password]", "wrong")
    browser.click("#login button[type=submit]")
    browser.wait_text("#login-error", "Login failed")
    browser.console_errors()  # the 401 itself is logged by Chromium as a failed load


def test_index_and_assets_carry_the_security_headers(hutch_ui) -> None:
    r = requests.get(hutch_ui.http_url, timeout=5)
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    js = requests.get(hutch_ui.http_url + "static/js/main.js", timeout=5)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    again = requests.get(hutch_ui.http_url + "static/js/main.js", timeout=5,
                         headers={"If-None-Match": js.headers["ETag"]})
    assert again.status_code == 304
    for bad in ("static/../http_api.py", "static/%2e%2e/ui.py", "static/js/nope.js", "ui.py"):
        assert requests.get(hutch_ui.http_url + bad, timeout=5).status_code == 404, bad


def test_after_logout_no_page_renders_without_logging_in(browser: Browser) -> None:
    browser.login()
    browser.click("#logout")
    browser.wait_for("#login")
    browser.go("users")
    browser.go("queues")
    import time

    time.sleep(0.5)  # a route that would render does so within this
    assert browser.find_all("#login") and not browser.find_all(".page")



def test_a_refresh_keeps_the_keyboard_focus_in_a_table(browser: Browser, hutch_ui) -> None:
    """The 5 s refresh rebuilds a table's rows, headers and pager: a keyboard user's focus
    stays on the same control."""
    import time

    import pika

    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        conn.channel().queue_declare("focus-kept")
        browser.login()
        browser.open("queues")
        browser.wait_text("[data-table=queues] tbody", "focus-kept")
        browser.d.execute_script("document.querySelector('button.sort[data-sort=\"name\"]').focus()")
        time.sleep(6.5)  # at least one refresh (every 5 s)
        focused = browser.d.execute_script(
            "const e = document.activeElement; return e.tagName + ':' + (e.dataset.sort || '')")
        assert focused == "BUTTON:name"
        browser.d.execute_script("document.querySelector('.pager select').focus()")
        time.sleep(5.5)
        assert browser.d.execute_script("return document.activeElement.name") == "page_size"
    finally:
        conn.close()


def test_a_deleted_objects_page_says_so_once(browser: Browser, hutch_ui) -> None:
    import time

    import pika

    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        ch = conn.channel()
        ch.queue_declare("gone-soon")
        browser.login()
        browser.open("queues/%2F/gone-soon")
        browser.wait_text("h1", "gone-soon")
        ch.queue_delete("gone-soon")
        browser.wait_text("#notices", "no longer exists", timeout=8)
        time.sleep(6)
        assert len(browser.find_all("#notices .notice.error")) == 1
        browser.console_errors()  # the 404 is logged by Chromium as a failed load
    finally:
        conn.close()
