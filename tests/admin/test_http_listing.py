"""List query parameters and health checks of the management API, as RabbitMQ 3.10's
``rabbit_mgmt_util`` (columns, sort, sort_reverse, page, page_size, name, use_regex)
and ``rabbit_mgmt_wm_health_check_*`` / ``rabbit_mgmt_wm_aliveness_test`` answer them.

Run against RabbitMQ too (HUTCH_TEST_HTTP_URL): these are its bodies and status codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.brokerproc import free_port
from tests.mgmt import Api, seg

ENVELOPE = {"filtered_count", "item_count", "items", "page", "page_count", "page_size",
            "total_count"}


@pytest.fixture
def three_queues(api: Api) -> Iterator[tuple[str, list[str]]]:
    prefix = f"lst-{uuid.uuid4().hex[:8]}-"
    names = [prefix + s for s in ("b1", "a2", "c3")]
    for n in names:
        api.ok("PUT", f"queues/%2F/{seg(n)}", {"durable": False})
    try:
        yield prefix, names
    finally:
        for n in names:
            api.delete(f"queues/%2F/{seg(n)}")


def _mine(items: list[dict], prefix: str) -> list[str]:
    return [i["name"] for i in items if i.get("name", "").startswith(prefix)]


def test_columns_on_lists_and_single_objects(api: Api, three_queues) -> None:
    _prefix, names = three_queues
    items = api.ok("GET", "queues/%2F?columns=name,durable")
    assert all(set(i) <= {"name", "durable"} for i in items)
    assert {"name": names[0], "durable": False} in items
    one = api.ok("GET", f"queues/%2F/{seg(names[0])}?columns=name,vhost")
    assert one == {"name": names[0], "vhost": "/"}
    vhosts = api.ok("GET", "vhosts?columns=name")
    assert {"name": "/"} in vhosts


def test_lists_are_sorted_by_default_and_by_sort(api: Api, three_queues) -> None:
    prefix, names = three_queues
    assert _mine(api.ok("GET", "queues/%2F"), prefix) == sorted(names)
    assert _mine(api.ok("GET", "queues?sort=name&sort_reverse=true"), prefix) == \
        sorted(names, reverse=True)
    assert _mine(api.ok("GET", "queues/%2F?sort=name"), prefix) == sorted(names)
    names_out = [v["name"] for v in api.ok("GET", "vhosts")]
    assert names_out == sorted(names_out)


def test_pagination_envelope_and_name_filter(api: Api, three_queues) -> None:
    prefix, names = three_queues
    page = api.ok("GET", f"queues/%2F?page=1&page_size=2&name={prefix}")
    assert set(page) == ENVELOPE
    assert {k: page[k] for k in ENVELOPE - {"items", "total_count"}} == {
        "filtered_count": 3, "item_count": 2, "page": 1, "page_count": 2, "page_size": 2}
    assert page["total_count"] >= 3
    assert [i["name"] for i in page["items"]] == sorted(names)[:2]
    page2 = api.ok("GET", f"queues/%2F?page=2&page_size=2&name={prefix.upper()}&sort=name")
    assert [i["name"] for i in page2["items"]] == sorted(names)[2:]  # case-insensitive
    regex = api.ok("GET", f"queues?page=1&name=^{prefix}[ab]&use_regex=true&columns=name")
    assert regex["items"] == [{"name": n} for n in sorted(names)[:2]]
    assert regex["page_size"] == 100  # RabbitMQ's default page size
    # Other paged lists: vhosts, exchanges, connections, channels.
    for path in ("vhosts", "exchanges", "exchanges/%2F", "connections", "channels"):
        assert set(api.ok("GET", f"{path}?page=1")) == ENVELOPE, path
    # Lists RabbitMQ 3.10 does not page ignore page.
    assert isinstance(api.ok("GET", "bindings/%2F?page=1"), list)


@pytest.mark.parametrize(("query", "status", "body"), [
    ("page=1&page_size=501", 400, {"error": "invalid_pagination_parameters",
                                   "reason": "Invalid pagination parameters: page number 1, "
                                             "page size 501"}),
    ("page=0", 400, {"error": "invalid_pagination_parameters",
                     "reason": "Invalid pagination parameters: page number 0, page size "
                               "undefined"}),
    ("page=1&page_size=0", 400, {"error": "invalid_pagination_parameters",
                                 "reason": "Invalid pagination parameters: page number 1, "
                                           "page size 0"}),
    ("page=x", 400, {"error": "bad_request", "reason": "Pagination parameters are invalid"}),
])
def test_pagination_errors(api: Api, query: str, status: int, body: dict) -> None:
    r = api.get(f"queues?{query}")
    assert (r.status_code, r.json()) == (status, body)


def test_page_out_of_range(api: Api, three_queues) -> None:
    prefix, _names = three_queues
    # Just past the end is an empty page; further is an error.
    empty = api.ok("GET", f"queues/%2F?page=2&page_size=3&name={prefix}")
    assert empty["items"] == [] and empty["item_count"] == 0 and empty["page_count"] == 1
    r = api.get(f"queues/%2F?page=3&page_size=2&name={prefix}")
    assert r.status_code == 400
    assert r.json() == {"error": "page_out_of_range",
                        "reason": "Page out of range, page: 3 page size: 2, len: 3"}


def _amqp_port(broker_url: str) -> int:
    return urlsplit(broker_url).port or 5672


def test_health_check_listeners(api: Api, broker_url: str) -> None:
    port = _amqp_port(broker_url)
    assert api.ok("GET", f"health/checks/port-listener/{port}") == {"status": "ok", "port": port}
    unused = free_port()
    r = api.get(f"health/checks/port-listener/{unused}")
    assert r.status_code == 503
    body = r.json()
    assert {k: body[k] for k in ("status", "reason", "missing")} == {
        "status": "failed", "reason": "No active listener", "missing": unused}
    assert port in body["ports"]
    r = api.get("health/checks/port-listener/fivesixseventwo")
    assert (r.status_code, r.json()) == (400, {"error": "bad_request", "reason": "Invalid port"})
    for name in ("amqp", "AMQP091", "amqp0-9-1"):
        assert api.ok("GET", f"health/checks/protocol-listener/{name}") == {
            "status": "ok", "protocol": "amqp"}
    r = api.get("health/checks/protocol-listener/mqtt")
    assert r.status_code == 503
    body = r.json()
    assert {k: body[k] for k in ("status", "reason", "missing")} == {
        "status": "failed", "reason": "No active listener", "missing": "mqtt"}
    assert "amqp" in body["protocols"]


def test_health_checks_node(api: Api) -> None:
    assert api.ok("GET", "health/checks/virtual-hosts") == {"status": "ok"}
    assert api.ok("GET", "health/checks/local-alarms") == {"status": "ok"}
    assert api.ok("GET", "health/checks/alarms") == {"status": "ok"}
    assert api.ok("GET", "health/checks/node-is-quorum-critical") == {
        "status": "ok", "reason": "single node cluster"}


def test_aliveness_test(api: Api) -> None:
    try:
        assert api.ok("GET", "aliveness-test/%2F") == {"status": "ok"}
        assert api.ok("GET", "aliveness-test/%2F") == {"status": "ok"}  # again: queue reused
        queue = api.ok("GET", "queues/%2F/aliveness-test")  # kept, as RabbitMQ keeps it
        assert queue["durable"] is False
        r = api.get(f"aliveness-test/nosuch-{uuid.uuid4().hex[:6]}")
        assert r.status_code == 404
    finally:
        api.delete("queues/%2F/aliveness-test")


def test_aliveness_test_needs_the_vhost(api: Api) -> None:
    name = f"alive-{uuid.uuid4().hex[:6]}"
    api.add_user(name, "pw", "management")
    try:
        r = api.as_user(name, "pw").get("aliveness-test/%2F")
        assert r.status_code == 401
        assert r.json()["error"] == "not_authorised"
    finally:
        api.delete(f"users/{name}")
