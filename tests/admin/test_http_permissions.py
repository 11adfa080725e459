"""Vhost permissions enforced by the management HTTP API, as RabbitMQ does.

Every endpoint that reads or changes a queue, exchange or binding is called by
users who may not do it; the answers (status, error, reason) were recorded
from RabbitMQ 3.10's management plugin, and the same tests run against it
when ``HUTCH_TEST_HTTP_URL`` is set.  Afterwards guest checks that nothing was
changed or consumed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import pika
import pytest

from tests.mgmt import Api, seg

ACCESS_REFUSED = {"error": "not_authorised", "reason": "Access refused."}
NO_VHOST = {"error": "not_authorised", "reason": "User not authorised to access virtual host"}
NOT_ADMIN = {"error": "not_authorised", "reason": "Not administrator user"}
NOT_YOURS = {"error": "not_authorised", "reason": "User not authorised to access object"}
GET_BODY = {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"}


def publish_body(routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, "payload": "hello", "payload_encoding": "string",
            "properties": {}}


@dataclass
class Tenant:
    """A vhost made by guest, with a queue ``q`` holding one message, an exchange ``x``
    bound to it with key ``k``, and users created on demand (all removed afterwards)."""

    api: Api
    vhost: str
    users: list[str] = field(default_factory=list)

    @property
    def v(self) -> str:
        return seg(self.vhost)

    def user(self, tags: str, perms: tuple[str, str, str] | None) -> tuple[str, Api]:
        name = f"u-{tags or 'none'}-{uuid.uuid4().hex[:6]}"
        self.api.add_user(name, "pw", tags)
        self.users.append(name)
        if perms is not None:
            self.api.set_permissions(self.vhost, name, *perms)
        return name, self.api.as_user(name, "pw")

    def refused(self, user: str, kind: str, name: str) -> str:
        return f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{self.vhost}' refused " \
               f"for user '{user}'"

    def messages_in_q(self) -> int:
        """Counted by guest with a get that requeues (statistics lag on RabbitMQ)."""
        got = self.api.ok("POST", f"queues/{self.v}/q/get",
                          {"count": 10, "ackmode": "ack_requeue_true", "encoding": "auto"})
        return len(got)


@pytest.fixture
def tenant(api: Api) -> Iterator[Tenant]:
    t = Tenant(api, f"perm-http-{uuid.uuid4().hex[:6]}")
    assert api.put(f"vhosts/{t.v}").status_code == 201  # guest gets full permissions there
    api.ok("PUT", f"queues/{t.v}/q", {"durable": True})
    api.ok("PUT", f"exchanges/{t.v}/x", {"type": "direct"})
    api.ok("POST", f"bindings/{t.v}/e/x/q/q", {"routing_key": "k"})
    assert api.ok("POST", f"exchanges/{t.v}/x/publish", publish_body("k")) == {"routed": True}
    yield t
    api.delete(f"vhosts/{t.v}")
    for name in t.users:
        api.delete(f"users/{seg(name)}")


def expect(r: Any, status: int, body: dict[str, Any] | None = None) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    if body is not None:
        assert r.json() == body, (r.request.method, r.request.url)


def test_user_with_empty_permissions_can_look_but_not_touch(tenant: Tenant) -> None:
    """``^$ ^$ ^$``: may use the vhost (so may list and read statistics), may not
    declare, delete, purge, publish, get or (un)bind anything."""
    t = tenant
    user, bob = t.user("management", ("^$", "^$", "^$"))
    v = t.v
    # Reading statistics needs no permission beyond access to the vhost.
    assert [q["name"] for q in bob.ok("GET", f"queues/{v}")] == ["q"]
    assert "q" in [q["name"] for q in bob.ok("GET", "queues") if q["vhost"] == t.vhost]
    assert bob.ok("GET", f"queues/{v}/q")["name"] == "q"
    assert bob.ok("GET", f"exchanges/{v}/x")["name"] == "x"
    assert len(bob.ok("GET", f"bindings/{v}/e/x/q/q")) == 1
    # Changes: 401 "Access refused." (RabbitMQ's direct_request).
    expect(bob.put(f"queues/{v}/new", {"durable": True}), 401, ACCESS_REFUSED)
    expect(bob.put(f"queues/{v}/q", {"durable": True}), 401, ACCESS_REFUSED)
    expect(bob.delete(f"queues/{v}/q"), 401, ACCESS_REFUSED)
    expect(bob.delete(f"queues/{v}/q/contents"), 401, ACCESS_REFUSED)
    expect(bob.put(f"exchanges/{v}/newx", {"type": "fanout"}), 401, ACCESS_REFUSED)
    expect(bob.delete(f"exchanges/{v}/x"), 401, ACCESS_REFUSED)
    expect(bob.post(f"bindings/{v}/e/x/q/q", {"routing_key": "k2"}), 401, ACCESS_REFUSED)
    expect(bob.delete(f"bindings/{v}/e/x/q/q/k"), 401, ACCESS_REFUSED)
    # A DELETE of something missing is 404 before any permission check.
    expect(bob.delete(f"queues/{v}/nosuch"), 404)
    # get (even ack_requeue_false) is a basic.get: 401 with the AMQP text, checked
    # before whether the queue exists.
    expect(bob.post(f"queues/{v}/q/get", GET_BODY), 401,
           {"error": "not_authorised", "reason": t.refused(user, "queue", "q")})
    expect(bob.post(f"queues/{v}/nosuch/get", GET_BODY), 401,
           {"error": "not_authorised", "reason": t.refused(user, "queue", "nosuch")})
    # publish: RabbitMQ's channel dies before the confirm: 400 "403 ACCESS_REFUSED - ...".
    expect(bob.post(f"exchanges/{v}/x/publish", publish_body("k")), 400,
           {"error": "bad_request", "reason": "403 " + t.refused(user, "exchange", "x")})
    expect(bob.post(f"exchanges/{v}/amq.default/publish", publish_body("q")), 400,
           {"error": "bad_request", "reason": "403 " + t.refused(user, "exchange", "amq.default")})
    # Nothing changed, nothing consumed.
    api = t.api
    assert t.messages_in_q() == 1
    expect(api.get(f"queues/{v}/new"), 404)
    expect(api.get(f"exchanges/{v}/newx"), 404)
    expect(api.get(f"exchanges/{v}/x"), 200)
    assert [b["routing_key"] for b in api.ok("GET", f"bindings/{v}/e/x/q/q")] == ["k"]


@pytest.mark.parametrize("tags", ["monitoring", "management"])
def test_user_without_access_to_the_vhost_is_kept_out(tenant: Tenant, tags: str) -> None:
    """No permission entry in the vhost: every URL naming it is 401 (monitoring is
    no exception), and lists leave it out (/api/vhosts shows it to monitoring only)."""
    t = tenant
    _user, eve = t.user(tags, None)
    v = t.v
    for method, path, body in [
            ("GET", f"queues/{v}", None), ("GET", f"queues/{v}/q", None),
            ("GET", f"queues/{v}/nosuch", None), ("GET", f"queues/{v}/q/bindings", None),
            ("PUT", f"queues/{v}/q2", {"durable": True}), ("DELETE", f"queues/{v}/q", None),
            ("DELETE", f"queues/{v}/q/contents", None), ("POST", f"queues/{v}/q/get", GET_BODY),
            ("GET", f"exchanges/{v}", None), ("GET", f"exchanges/{v}/x", None),
            ("PUT", f"exchanges/{v}/x2", {"type": "direct"}), ("DELETE", f"exchanges/{v}/x", None),
            ("POST", f"exchanges/{v}/x/publish", publish_body("k")),
            ("GET", f"exchanges/{v}/x/bindings/source", None),
            ("GET", f"bindings/{v}", None), ("GET", f"bindings/{v}/e/x/q/q", None),
            ("POST", f"bindings/{v}/e/x/q/q", {"routing_key": "k2"}),
            ("GET", f"bindings/{v}/e/x/q/q/k", None), ("DELETE", f"bindings/{v}/e/x/q/q/k", None),
            ("GET", f"vhosts/{v}/connections", None), ("GET", f"vhosts/{v}/channels", None)]:
        expect(eve.request(method, path, body), 401, NO_VHOST)
    expect(eve.get(f"vhosts/{v}"), 401, NOT_ADMIN)
    expect(eve.get(f"definitions/{v}"), 401, NOT_ADMIN)
    for listing in ("queues", "exchanges", "bindings"):
        assert not [o for o in eve.ok("GET", listing) if o["vhost"] == t.vhost], listing
    assert (t.vhost in [x["name"] for x in eve.ok("GET", "vhosts")]) == (tags == "monitoring")
    totals = eve.ok("GET", "overview")["object_totals"]
    if tags == "management":  # a monitoring user counts everything, as RabbitMQ's overview
        assert (totals["queues"], totals["exchanges"]) == (0, 0)
    assert t.messages_in_q() == 1


def test_permission_regexes_apply_over_http(tenant: Tenant) -> None:
    """configure/write/read ``^b``: objects named b* may be used, others (q, x, the
    amq.* exchanges) may not, with AMQP's rules for each operation."""
    t = tenant
    user, bob = t.user("management", ("^b", "^b", "^b"))
    v = t.v
    expect(bob.put(f"queues/{v}/bq", {"durable": False}), 201)
    expect(bob.put(f"exchanges/{v}/bx", {"type": "direct"}), 201)
    # A dead-letter exchange needs write on it; an alternate exchange too.
    expect(bob.put(f"queues/{v}/bdl", {"arguments": {"x-dead-letter-exchange": "amq.fanout"}}),
           401, ACCESS_REFUSED)
    expect(bob.put(f"queues/{v}/bdl", {"arguments": {"x-dead-letter-exchange": "bx"}}), 201)
    expect(bob.put(f"exchanges/{v}/balt",
                   {"type": "fanout", "arguments": {"alternate-exchange": "amq.fanout"}}),
           401, ACCESS_REFUSED)
    # Binding: write on the destination, read on the source.
    expect(bob.post(f"bindings/{v}/e/bx/q/bq", {"routing_key": "k"}), 201)
    expect(bob.post(f"bindings/{v}/e/bx/q/q", {"routing_key": "k"}), 401, ACCESS_REFUSED)
    expect(bob.post(f"bindings/{v}/e/x/q/bq", {"routing_key": "k"}), 401, ACCESS_REFUSED)
    assert bob.ok("POST", f"exchanges/{v}/bx/publish", publish_body("k")) == {"routed": True}
    expect(bob.post(f"exchanges/{v}/x/publish", publish_body("k")), 400,
           {"error": "bad_request", "reason": "403 " + t.refused(user, "exchange", "x")})
    got = bob.ok("POST", f"queues/{v}/bq/get", GET_BODY)
    assert [m["payload"] for m in got] == ["hello"]
    expect(bob.post(f"queues/{v}/q/get", GET_BODY), 401,
           {"error": "not_authorised", "reason": t.refused(user, "queue", "q")})
    expect(bob.delete(f"queues/{v}/bq/contents"), 204)
    expect(bob.delete(f"queues/{v}/q/contents"), 401, ACCESS_REFUSED)
    expect(bob.delete(f"bindings/{v}/e/bx/q/bq/k"), 204)
    expect(bob.delete(f"queues/{v}/q"), 401, ACCESS_REFUSED)
    expect(bob.delete(f"exchanges/{v}/amq.direct"), 401, ACCESS_REFUSED)
    for path in (f"queues/{v}/bq", f"queues/{v}/bdl", f"exchanges/{v}/bx"):
        expect(bob.delete(path), 204)
    assert t.messages_in_q() == 1


def test_administrators_need_permissions_too(tenant: Tenant) -> None:
    """The administrator tag admits to every vhost, but what is done there still needs
    the user's own permissions (RabbitMQ runs the operation as that user)."""
    t = tenant
    user, admin = t.user("administrator", None)
    v = t.v
    assert [q["name"] for q in admin.ok("GET", f"queues/{v}")] == ["q"]
    expect(admin.put(f"queues/{v}/new", {}), 401, ACCESS_REFUSED)
    expect(admin.delete(f"queues/{v}/q/contents"), 401, ACCESS_REFUSED)
    # get and publish run on an AMQP connection of the user's own, which the vhost
    # refuses without a permission entry.
    expect(admin.post(f"queues/{v}/q/get", GET_BODY), 401, ACCESS_REFUSED)
    expect(admin.post(f"exchanges/{v}/x/publish", publish_body("k")), 401, ACCESS_REFUSED)
    t.api.set_permissions(t.vhost, user, "", "", "q")
    expect(admin.post(f"exchanges/{v}/x/publish", publish_body("k")), 400,
           {"error": "bad_request", "reason": "403 " + t.refused(user, "exchange", "x")})
    assert [m["payload"] for m in admin.ok("POST", f"queues/{v}/q/get", GET_BODY)] == ["hello"]
    assert t.messages_in_q() == 0


def _connect(broker_url: str, vhost: str, user: str) -> pika.BlockingConnection:
    u = urlparse(broker_url)
    return pika.BlockingConnection(pika.ConnectionParameters(
        u.hostname or "127.0.0.1", u.port or 5672, vhost, pika.PlainCredentials(user, "pw"),
        connection_attempts=1))


def test_connections_channels_and_consumers_are_shown_to_their_owner(
        tenant: Tenant, broker_url: str) -> None:
    """A management user sees and may close only its own connections; a monitoring
    user sees all of them but closes only its own; consumers likewise."""
    t = tenant
    alice_name, alice = t.user("management", (".*", ".*", ".*"))
    _bob_name, bob = t.user("management", (".*", ".*", ".*"))
    _mon_name, mon = t.user("monitoring", None)
    conn = _connect(broker_url, t.vhost, alice_name)
    try:
        conn.channel().basic_consume("q", lambda *a: None, consumer_tag="alice-ctag")
        def mine(cs: list[dict[str, Any]]) -> bool:
            return any(c.get("user") == alice_name for c in cs)

        name = next(c["name"] for c in alice.wait_for("connections", mine)
                    if c["user"] == alice_name)
        alice.wait_for("channels", lambda cs: len(cs) == 1)
        alice.wait_for("consumers", lambda cs: [c["consumer_tag"] for c in cs] == ["alice-ctag"])
        mon.wait_for("connections", mine)
        mon.wait_for("consumers", lambda cs: "alice-ctag" in [c["consumer_tag"] for c in cs])
        assert not [c for c in bob.ok("GET", "connections") if c["user"] == alice_name]
        assert not [c for c in bob.ok("GET", f"vhosts/{t.v}/connections")
                    if c["user"] == alice_name]
        assert not [c for c in bob.ok("GET", "channels") if c["user"] == alice_name]
        assert "alice-ctag" not in [c["consumer_tag"] for c in bob.ok("GET", "consumers")]
        assert "alice-ctag" not in [c["consumer_tag"] for c in bob.ok("GET", f"consumers/{t.v}")]
        path = f"connections/{seg(name)}"
        expect(bob.get(path), 401, NOT_YOURS)
        expect(bob.get(f"{path}/channels"), 401, NOT_YOURS)
        expect(bob.delete(path), 401, NOT_YOURS)
        assert mon.ok("GET", path)["user"] == alice_name
        expect(mon.delete(path), 401, NOT_YOURS)
        assert conn.is_open
        assert alice.ok("GET", path)["name"] == name
        expect(alice.delete(path), 204)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
            conn.process_data_events(time_limit=5)
            conn.process_data_events(time_limit=5)
    finally:
        if conn.is_open:
            conn.close()


def test_overview_counts_only_what_the_user_may_see(tenant: Tenant) -> None:
    t = tenant
    _user, bob = t.user("management", ("^$", "^$", "^$"))
    overview = bob.ok("GET", "overview")
    assert overview["object_totals"]["queues"] == 1
    assert overview["object_totals"]["exchanges"] == 8  # x and the 7 amq.* exchanges
    assert "listeners" not in overview and "node" not in overview


@pytest.mark.hutch_only
def test_refusals_are_logged_as_warnings(tenant: Tenant, session_hutch: Any) -> None:
    """Each refusal is one warning line, worded as RabbitMQ's, and never a traceback."""
    t = tenant
    start = len(session_hutch.log_lines)
    user, bob = t.user("management", ("^$", "^$", "^$"))
    mon_name, mon = t.user("monitoring", None)
    expect(bob.put(f"queues/{t.v}/new", {}), 401)
    expect(bob.delete(f"queues/{t.v}/q/contents"), 401)
    expect(bob.post(f"queues/{t.v}/q/get", GET_BODY), 401)
    expect(bob.post(f"exchanges/{t.v}/x/publish", publish_body("k")), 400)
    expect(mon.get(f"queues/{t.v}"), 401)
    expect(bob.get("users"), 401)
    refused = f"in vhost '{t.vhost}' refused for user '{user}'"
    last = f"HTTP access denied: user '{user}' - Not administrator user"
    deadline = time.monotonic() + 5  # the log is read from the broker's pipe by a thread
    while last not in "\n".join(session_hutch.log_lines[start:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = "\n".join(session_hutch.log_lines[start:])
    for line in (f"Declare queue error: access to queue 'new' {refused}",
                 f"Error purging queue: access to queue 'q' {refused}",
                 f"Get messages error: access to queue 'q' {refused}",
                 f"Publish error: access to exchange 'x' {refused}",
                 f"HTTP access denied: user '{mon_name}' - User not authorised to access "
                 "virtual host",
                 f"HTTP access denied: user '{user}' - Not administrator user"):
        assert line in log, line
    assert "[warning] <hutch.management>" in log
    assert "Traceback" not in log
