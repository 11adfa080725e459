"""Admin > Users: add a user, their tags decide what they see, permissions set on the
user's page let them connect over AMQP, a password change, delete."""

from __future__ import annotations

import uuid

import pika
import pika.exceptions
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

GUEST = ("guest", "guest")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def amqp_login(hutch: HutchProcess, user: str, password: str, vhost: str = "/") -> None:
    """Open and close an AMQP connection; raises pika's error when refused."""
    params = pika.ConnectionParameters("127.0.0.1", hutch.port, vhost,
                                       pika.PlainCredentials(user, password),
                                       connection_attempts=1, socket_timeout=5)
    pika.BlockingConnection(params).close()


def amqp_refused(hutch: HutchProcess, user: str, password: str, vhost: str = "/") -> bool:
    try:
        amqp_login(hutch, user, password, vhost)
    except pika.exceptions.AMQPConnectionError:
        return True
    return False


def api(hutch: HutchProcess, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, hutch.http_url + "api/" + path, auth=GUEST, timeout=5, **kw)


def test_add_a_management_user_who_sees_no_admin_and_connects_once_permitted(
        browser: Browser, hutch_ui: HutchProcess) -> None:
    name = unique("ui-user")
    browser.login()
    browser.open("users")
    browser.wait_for("#add-user")
    browser.fill("#add-user [name=username]", name)
    browser.fill("#add-user [name=password]", "s3cret")
    browser.fill("#add-user [name=password_confirm]", "s3cret")
    browser.click("#add-user .tag-pick[data-tag=management]")
    assert browser.find("#add-user [name=tags]").get_attribute("value") == "management"
    browser.click("#add-user button[type=submit]")
    browser.wait_text("[data-table=users] tbody", name)
    user = api(hutch_ui, "GET", f"users/{name}").json()
    assert user["tags"] == ["management"]
    # No permissions yet: the broker refuses the vhost.
    assert amqp_refused(hutch_ui, name, "s3cret")

    browser.click(f'[data-table=users] tr[data-key="{name}"] a')
    browser.wait_text("h1", "User: " + name)
    browser.wait_text("[data-table=user-permissions]", "no access")
    browser.choose("#set-permission [name=vhost]", "/")
    browser.click("#set-permission button[type=submit]")
    browser.wait_text("[data-table=user-permissions] tbody", ".*")
    perm = api(hutch_ui, "GET", f"permissions/%2F/{name}").json()
    assert (perm["configure"], perm["write"], perm["read"]) == (".*", ".*", ".*")
    amqp_login(hutch_ui, name, "s3cret")

    browser.click("#logout")
    browser.login(name, "s3cret")
    assert "Admin" not in browser.text("#nav")
    assert "Queues" in browser.text("#nav")
    browser.go("users")
    browser.wait_text("#main [role=alert]", "tags do not allow")
    browser.go("")
    browser.click("#logout")


def test_a_password_mismatch_is_refused_in_words(browser: Browser, hutch_ui: HutchProcess) -> None:
    name = unique("ui-mismatch")
    browser.login()
    browser.open("users")
    browser.fill("#add-user [name=username]", name)
    browser.fill("#add-user [name=password]", "one")
    browser.fill("#add-user [name=password_confirm]", "two")
    browser.click("#add-user button[type=submit]")
    browser.wait_text("#notices [role=alert]", "passwords do not match")
    assert api(hutch_ui, "GET", f"users/{name}").status_code == 404


def test_update_keeps_an_unchanged_password_and_changes_a_new_one(
        browser: Browser, hutch_ui: HutchProcess) -> None:
    name = unique("ui-pw")
    assert api(hutch_ui, "PUT", f"users/{name}", json={"password": "old-pw", "tags": ""}).ok
    assert api(hutch_ui, "PUT", f"permissions/%2F/{name}",
               json={"configure": ".*", "write": ".*", "read": ".*"}).ok
    browser.login()
    browser.open(f"users/{name}")
    browser.wait_for("#update-user")
    # Tags only, the password boxes left empty: the password stays.
    browser.click("#update-user .tag-pick[data-tag=monitoring]")
    browser.click("#update-user button[type=submit]")
    browser.wait_text("#notices", f'User "{name}" updated')
    browser.wait_text("#main .facts", "monitoring")
    assert api(hutch_ui, "GET", f"users/{name}").json()["tags"] == ["monitoring"]
    amqp_login(hutch_ui, name, "old-pw")

    browser.fill("#update-user [name=password]", "new-pw")
    browser.fill("#update-user [name=password_confirm]", "new-pw")
    browser.click("#update-user button[type=submit]")
    browser.wait_until(lambda: amqp_refused(hutch_ui, name, "old-pw"), "the old password refused")
    amqp_login(hutch_ui, name, "new-pw")
    # The picture for the docs: the page from the top, with a limit in its table.
    assert api(hutch_ui, "PUT", f"user-limits/{name}/max-connections", json={"value": 10}).ok
    browser.d.refresh()
    browser.wait_text("[data-table=user-limits] tbody", "max-connections")
    browser.d.execute_script("window.scrollTo(0, 0)")
    browser.shot("user")


def test_delete_a_user(browser: Browser, hutch_ui: HutchProcess) -> None:
    name = unique("ui-del")
    assert api(hutch_ui, "PUT", f"users/{name}", json={"password": "x", "tags": "management"}).ok
    browser.login()
    browser.open("users")
    browser.wait_text("[data-table=users] tbody", name)
    browser.shot("users")
    browser.go(f"users/{name}")
    browser.click("#delete-user")
    assert name in browser.accept_confirm()
    browser.wait_until(lambda: browser.d.current_url.endswith("#/users"), "back to the list")
    browser.wait_for("[data-table=users] tbody")
    assert name not in browser.text("[data-table=users] tbody")
    assert api(hutch_ui, "GET", f"users/{name}").status_code == 404


def test_a_policymaker_sees_only_the_policies(browser: Browser, hutch_ui: HutchProcess) -> None:
    name = unique("ui-pm")
    assert api(hutch_ui, "PUT", f"users/{name}", json={"password": "pm", "tags": "policymaker"}).ok
    assert api(hutch_ui, "PUT", f"permissions/%2F/{name}",
               json={"configure": ".*", "write": ".*", "read": ".*"}).ok
    browser.login(name, "pm")
    browser.click('#nav a[data-group="admin"]')
    browser.wait_for("#add-policy")
    assert browser.text(".subnav") == "Policies"
    assert "Operator policies" not in browser.text("#main")
    browser.click("#logout")


def test_a_user_named_like_markup_is_shown_as_text(browser: Browser, hutch_ui: HutchProcess) -> None:
    name = f"<img src=x onerror=alert(1)>{uuid.uuid4().hex[:6]}"
    assert api(hutch_ui, "PUT", "users/" + requests.utils.quote(name, safe=""),
               json={"password": "x", "tags": "management"}).ok
    browser.login()
    browser.open("users")
    browser.wait_text("[data-table=users] tbody", name)
    assert not browser.find_all("[data-table=users] img")
    browser.click(f'[data-table=users] tr[data-key="{name}"] a')
    browser.wait_text("h1", "User: " + name)
    assert not browser.find_all("#main img")


def test_changing_ones_own_password_keeps_the_session(browser: Browser, hutch_ui: HutchProcess) -> None:
    name = unique("ui-self")
    assert api(hutch_ui, "PUT", f"users/{name}", json={"password": "first", "tags": "administrator"}).ok
    browser.login(name, "first")
    browser.open(f"users/{name}")
    browser.fill("#update-user [name=password]", "second")
    browser.fill("#update-user [name=password_confirm]", "second")
    browser.click("#update-user button[type=submit]")
    browser.wait_text("#notices", f'User "{name}" updated')
    # The page goes on with the new password: the next requests are not refused.
    browser.go("users")
    browser.wait_text("[data-table=users] tbody", name)
    browser.d.refresh()
    browser.wait_text("#whoami", name)
    assert requests.get(hutch_ui.http_url + "api/whoami", auth=(name, "second"), timeout=5).ok
