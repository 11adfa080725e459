"""Cross-site refusal on the management port (admin/web_security.py), for EVERY
state-changing route of the router: a new route is covered without touching this file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hutch.admin.http_api import ManagementApi
from hutch.admin.web_security import CROSS_SITE_REASON, SAFE_METHODS
from tests.brokerproc import HutchProcess
from tests.conftest import EXTERNAL_URL
from tests.mgmt import Api

pytestmark = pytest.mark.hutch_only

EVIL = {"Origin": "http://evil.example"}
CROSS = {"Sec-Fetch-Site": "cross-site"}


def _state_changing() -> list[tuple[str, str]]:
    """(method, path) of every route but GET, placeholders filled with names that
    exist nowhere (so even an accepted request changes nothing real)."""
    api = ManagementApi(None, "127.0.0.1", 0)
    out = []
    for route in api.router.routes:
        if route.method in SAFE_METHODS:
            continue
        parts = ["xs-none-" + p[1:-1] if p.startswith("{") else p for p in route.parts]
        out.append((route.method, "/".join(parts)))
    return out


ROUTES = _state_changing()


def test_the_route_list_is_the_routers() -> None:
    methods = {m for m, _p in ROUTES}
    assert {"PUT", "POST", "DELETE"} <= methods
    assert ("PUT", "queues/xs-none-vhost/xs-none-name") in ROUTES
    assert len(ROUTES) > 20


@pytest.fixture(scope="module")
def hutch() -> Iterator[HutchProcess]:
    if EXTERNAL_URL:
        pytest.skip("needs its own Hutch process")
    with HutchProcess("--in-memory", http=True) as proc:
        yield proc


def _send(hutch: HutchProcess, method: str, path: str, headers: dict[str, str]) -> requests.Response:
    return requests.request(method, hutch.http_url.rstrip("/") + "/api/" + path, json={},
                            auth=("guest", "guest"), headers=headers, timeout=10)


def _state(hutch: HutchProcess) -> Any:
    api = Api(hutch.http_url)
    return api.ok("GET", "definitions"), [(q["name"], q["messages"]) for q in api.ok("GET", "queues")]


@pytest.mark.parametrize("headers", [EVIL, CROSS, {**EVIL, "Sec-Fetch-Site": "same-site"}],
                         ids=["origin", "sec-fetch-site", "same-site"])
def test_every_state_changing_route_refuses_cross_site(hutch: HutchProcess,
                                                       headers: dict[str, str]) -> None:
    api = Api(hutch.http_url)
    q = f"xs-{uuid.uuid4().hex[:6]}"
    api.ok("PUT", f"queues/%2F/{q}", {"durable": False})
    api.ok("POST", "exchanges/%2F/amq.default/publish",
           {"properties": {}, "routing_key": q, "payload": "keep", "payload_encoding": "string"})
    before = _state(hutch)
    # The real objects too: deleting, purging, publishing to them is refused.
    real = [("DELETE", f"queues/%2F/{q}"), ("DELETE", f"queues/%2F/{q}/contents"),
            ("POST", f"queues/%2F/{q}/get"), ("PUT", "users/xs-evil"), ("PUT", "vhosts/xs-evil"),
            ("POST", "exchanges/%2F/amq.default/publish"), ("POST", "definitions")]
    for method, path in ROUTES + real:
        r = _send(hutch, method, path, headers)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.json() == {"error": "forbidden", "reason": CROSS_SITE_REASON}, (method, path)
    assert _state(hutch) == before
    api.delete(f"queues/%2F/{q}")


def test_same_origin_and_no_origin_are_served(hutch: HutchProcess) -> None:
    own = hutch.http_url.rstrip("/")
    for headers in ({"Origin": own, "Sec-Fetch-Site": "same-origin"}, {"Origin": own},
                    {"Sec-Fetch-Site": "none"}, {}):
        for method, path in ROUTES:  # names that exist nowhere: 4xx, never the refusal
            r = _send(hutch, method, path, headers)
            assert not (r.status_code == 403 and r.text and
                        r.json().get("reason") == CROSS_SITE_REASON), (method, path, headers)
        q = f"xs-ok-{uuid.uuid4().hex[:6]}"
        r = _send(hutch, "PUT", f"queues/%2F/{q}", headers)
        assert r.status_code == 201, (headers, r.text)
        assert _send(hutch, "DELETE", f"queues/%2F/{q}", headers).status_code == 204


def test_reads_are_not_affected(hutch: HutchProcess) -> None:
    for path in ("overview", "queues", "definitions"):
        r = requests.get(hutch.http_url + "api/" + path, auth=("guest", "guest"),
                         headers={**EVIL, **CROSS}, timeout=10)
        assert r.status_code == 200, (path, r.text)


def test_401_has_a_login_prompt_unless_the_ui_asks(hutch: HutchProcess) -> None:
    url = hutch.http_url + "api/overview"
    r = requests.get(url, timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    r = requests.get(url, headers={"X-Requested-With": "XMLHttpRequest"}, timeout=10)
    assert r.status_code == 401
    assert "WWW-Authenticate" not in r.headers
    r = requests.get(url, auth=("guest", "wrong"), headers={"X-Requested-With": "XMLHttpRequest"},
                     timeout=10)
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers
    assert r.json() == {"error": "not_authorized", "reason": "Login failed"}


def test_a_same_origin_browser_request_behind_a_proxy_is_served(hutch: HutchProcess) -> None:
    """Behind a reverse proxy that terminates TLS (https://mq.example.com -> http://127.0.0.1),
    Origin never matches what the server sees; the browser's own Sec-Fetch-Site decides."""
    q = f"xs-proxy-{uuid.uuid4().hex[:6]}"
    headers = {"Sec-Fetch-Site": "same-origin", "Origin": "https://mq.example.com"}
    r = _send(hutch, "PUT", f"queues/%2F/{q}", headers)
    assert r.status_code == 201, r.text
    assert _send(hutch, "DELETE", f"queues/%2F/{q}", headers).status_code == 204


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "mq.attacker.test:15672"])
def test_dns_rebinding_from_loopback_is_refused(hutch: HutchProcess, host: str) -> None:
    """A page whose name was rebound to 127.0.0.1 sends its own name as Host: refused from
    a loopback peer, reads included (GET /api/definitions would hand out password hashes)."""
    port = hutch.http_url.rstrip("/").rsplit(":", 1)[1]
    for method, path in (("GET", "definitions"), ("GET", "overview"), ("PUT", "queues/%2F/xs-rb")):
        r = requests.request(method, f"http://127.0.0.1:{port}/api/{path}", json={},
                             auth=("guest", "guest"), headers={"Host": host}, timeout=10)
        assert r.status_code == 403, (method, path, r.text)
        assert "Host" in r.json()["reason"]
    assert Api(hutch.http_url).get("queues/%2F/xs-rb").status_code == 404


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "app.localhost"])
def test_this_machines_own_names_are_served(hutch: HutchProcess, host: str) -> None:
    import socket

    port = hutch.http_url.rstrip("/").rsplit(":", 1)[1]
    for name in (host, socket.gethostname()):
        r = requests.get(f"http://127.0.0.1:{port}/api/overview", auth=("guest", "guest"),
                         headers={"Host": f"{name}:{port}"}, timeout=10)
        assert r.status_code == 200, (name, r.text)
