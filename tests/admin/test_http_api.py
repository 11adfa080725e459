"""The management HTTP API over real HTTP, against the session's broker.

With ``HUTCH_TEST_HTTP_URL`` (and ``HUTCH_TEST_AMQP_URL``) set to a RabbitMQ
with the management plugin, the same tests check RabbitMQ answers the same way.
"""

from __future__ import annotations

import uuid

import pika
import pytest
import requests

from tests.mgmt import Api, seg


def _conn(broker_url: str, name: str | None = None) -> pika.BlockingConnection:
    params = pika.URLParameters(broker_url)
    if name is not None:  # shown as client_properties.connection_name, as on RabbitMQ
        params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def test_auth_required_and_refused(api: Api) -> None:
    r = requests.get(api.base + "overview", timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="RabbitMQ Management"'
    r = api.as_user("guest", "wrong").get("overview")
    assert r.status_code == 401
    assert r.json() == {"error": "not_authorized", "reason": "Login failed"}


def test_user_without_management_tag_is_refused(api: Api) -> None:
    name = f"notag-{uuid.uuid4().hex[:6]}"
    api.add_user(name, "pw")
    try:
        r = api.as_user(name, "pw").get("overview")
        assert r.status_code == 401
        assert r.json() == {"error": "not_authorised", "reason": "Not management user"}
        api.add_user(name, "pw", "monitoring")
        mon = api.as_user(name, "pw")
        assert mon.get("overview").status_code == 200
        assert mon.get("whoami").json() == {"name": name, "tags": ["monitoring"]}
        r = mon.get("users")
        assert r.status_code == 401
        assert r.json() == {"error": "not_authorised", "reason": "Not administrator user"}
        assert mon.put("vhosts/never").status_code == 401
    finally:
        api.delete(f"users/{name}")


def test_overview_whoami_health(api: Api) -> None:
    o = api.ok("GET", "overview")
    for key in ("management_version", "rabbitmq_version", "cluster_name", "node", "listeners",
                "object_totals", "queue_totals", "message_stats", "exchange_types"):
        assert key in o
    assert {"connections", "channels", "queues", "exchanges", "consumers"} <= set(o["object_totals"])
    assert any(listener["protocol"] == "amqp" for listener in o["listeners"])
    assert api.ok("GET", "whoami") == {"name": "guest", "tags": ["administrator"]}
    assert api.ok("GET", "healthchecks/node") == {"status": "ok"}


def test_queue_put_get_delete_and_status_codes(api: Api, qname: str) -> None:
    path = f"queues/%2F/{seg(qname)}"
    r = api.put(path, {"durable": True, "arguments": {"x-max-length": 5}})
    assert r.status_code == 201, r.text
    assert api.put(path, {"durable": True, "arguments": {"x-max-length": 5}}).status_code == 204
    r = api.put(path, {"durable": False, "arguments": {"x-max-length": 5}})
    assert r.status_code == 400
    assert r.json() == {"error": "bad_request", "reason": f"inequivalent arg 'durable' for queue "
                        f"'{qname}' in vhost '/': received 'false' but current is 'true'"}
    # RabbitMQ adds the message counts, and the consumer count, with its statistics
    # samples (not always the same one: CI once saw the counts without "consumers").
    q = api.wait_for(path, lambda q: "messages" in q and "consumers" in q)
    assert q["name"] == qname and q["vhost"] == "/"
    assert q["durable"] is True and q["auto_delete"] is False and q["exclusive"] is False
    assert q["arguments"] == {"x-max-length": 5}
    assert (q["messages"], q["messages_ready"], q["messages_unacknowledged"], q["consumers"]) \
        == (0, 0, 0, 0)
    assert q["consumer_details"] == []
    assert any(x["name"] == qname for x in api.ok("GET", "queues"))
    assert any(x["name"] == qname for x in api.ok("GET", "queues/%2F"))
    assert api.delete(path).status_code == 204
    r = api.delete(path)
    assert r.status_code == 404
    assert r.json() == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.get(path).status_code == 404
    assert api.get("queues/no-such-vhost").status_code == 404
    r = api.put("queues/no-such-vhost/q", {})
    assert r.status_code == 404 and r.json() == {"error": "not_found", "reason": "vhost_not_found"}
    # A fresh connection: RabbitMQ drops the kept-alive one after the 404 above.
    r = requests.put(api.base + path, data=b"{not json", auth=api.auth, timeout=10,
                     headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json() == {"error": "bad_request", "reason": "not_json"}


def test_publish_get_and_purge(api: Api, qname: str) -> None:
    path = f"queues/%2F/{seg(qname)}"
    api.ok("PUT", path, {"durable": False})
    try:
        for i in range(3):
            r = api.ok("POST", "exchanges/%2F/amq.default/publish",
                       {"routing_key": qname, "payload": f"m{i}", "payload_encoding": "string",
                        "properties": {"delivery_mode": 2, "headers": {"a": 1}}})
            assert r == {"routed": True}
        assert api.ok("POST", "exchanges/%2F/amq.default/publish",
                      {"routing_key": "nowhere-" + qname, "payload": "x",
                       "payload_encoding": "string", "properties": {}}) == {"routed": False}
        api.wait_for(path, lambda q: q.get("messages") == 3)
        got = api.ok("POST", f"{path}/get", {"count": 2, "ackmode": "ack_requeue_true",
                                             "encoding": "auto", "truncate": 50000})
        assert [m["payload"] for m in got] == ["m0", "m1"]
        assert got[0] == {"payload_bytes": 2, "redelivered": False, "exchange": "",
                          "routing_key": qname, "message_count": 2,
                          "properties": {"delivery_mode": 2, "headers": {"a": 1}},
                          "payload": "m0", "payload_encoding": "string"}
        again = api.ok("POST", f"{path}/get", {"count": 1, "ackmode": "ack_requeue_false",
                                               "encoding": "base64"})
        assert again[0]["redelivered"] is True
        assert again[0]["payload_encoding"] == "base64" and again[0]["payload"] == "bTA="
        api.wait_for(path, lambda q: q["messages"] == 2)
        assert api.delete(f"{path}/contents").status_code == 204
        api.wait_for(path, lambda q: q["messages"] == 0)
    finally:
        api.delete(path)


def test_exchanges_and_bindings(api: Api, qname: str) -> None:
    ex, qpath = qname + ".x", f"queues/%2F/{seg(qname)}"
    expath = f"exchanges/%2F/{seg(ex)}"
    assert api.put(expath, {"type": "topic", "durable": True}).status_code == 201
    assert api.put(expath, {"type": "topic", "durable": True}).status_code == 204
    try:
        api.ok("PUT", qpath, {"durable": True})
        x = api.ok("GET", expath)
        assert {k: x[k] for k in ("name", "vhost", "type", "durable", "auto_delete", "internal",
                                  "arguments")} == {
            "name": ex, "vhost": "/", "type": "topic", "durable": True, "auto_delete": False,
            "internal": False, "arguments": {}}
        default = api.ok("GET", "exchanges/%2F/amq.default")
        assert default["name"] == "" and default["type"] == "direct"
        pair = f"bindings/%2F/e/{seg(ex)}/q/{seg(qname)}"
        r = api.post(pair, {"routing_key": "a.#", "arguments": {}})
        # RabbitMQ percent-encodes the already encoded properties key once more.
        assert r.status_code == 201 and r.headers["Location"] == f"{qname}/a.%2523"
        b = api.ok("GET", pair)
        assert b == [{"source": ex, "vhost": "/", "destination": qname,
                      "destination_type": "queue", "routing_key": "a.#", "arguments": {},
                      "properties_key": "a.%23"}]
        assert api.ok("GET", f"{pair}/a.%23") == b[0]
        assert b[0] in api.ok("GET", "bindings/%2F")
        assert b[0] in api.ok("GET", f"{qpath}/bindings")
        assert b[0] in api.ok("GET", f"{expath}/bindings/source")
        implicit = {"source": "", "vhost": "/", "destination": qname, "destination_type": "queue",
                    "routing_key": qname, "arguments": {}, "properties_key": seg(qname)}
        assert implicit in api.ok("GET", "bindings")
        r = api.post(f"bindings/%2F/e/{seg(ex)}/q/no-such-queue-{qname}", {"routing_key": "k"})
        assert r.status_code == 404
        assert r.json() == {"error": "not_found",
                            "reason": f"no queue 'no-such-queue-{qname}' in vhost '/'"}
        assert api.delete(f"{pair}/a.%23").status_code == 204
        assert api.delete(f"{pair}/a.%23").status_code == 404
        assert api.ok("GET", pair) == []
    finally:
        api.delete(qpath)
        assert api.delete(expath).status_code == 204
    assert api.delete(expath).status_code == 404


def test_connections_channels_consumers_and_forced_close(api: Api, broker_url: str,
                                                         qname: str) -> None:
    # A name of its own finds this connection among whatever else the shared broker has.
    label = f"http-api-test-{uuid.uuid4().hex[:8]}"
    conn = _conn(broker_url, label)
    try:
        ch = conn.channel()
        ch.queue_declare(qname, auto_delete=True)
        ch.basic_qos(prefetch_count=3)
        ch.basic_consume(qname, lambda *a: None, consumer_tag="ctag-" + qname)

        def is_mine(c: dict) -> bool:
            return c["client_properties"].get("connection_name") == label

        conns = api.wait_for("connections", lambda cs: any(is_mine(c) for c in cs))
        mine = next(c for c in conns if is_mine(c))
        assert mine["user"] == "guest"
        assert mine["client_properties"]["product"].startswith("Pika")
        for key in ("name", "user", "vhost", "peer_host", "peer_port", "host", "port", "state",
                    "channels", "protocol", "auth_mechanism", "timeout", "frame_max",
                    "channel_max", "client_properties", "connected_at"):
            assert key in mine, key
        assert mine["protocol"] == "AMQP 0-9-1" and mine["auth_mechanism"] == "PLAIN"
        name = mine["name"]
        assert api.ok("GET", f"connections/{seg(name)}")["name"] == name
        chans = api.wait_for(f"connections/{seg(name)}/channels",
                             lambda cs: len(cs) == 1 and cs[0]["consumer_count"] == 1)
        assert chans[0]["name"] == f"{name} (1)" and chans[0]["number"] == 1
        assert chans[0]["prefetch_count"] == 3
        # RabbitMQ's channel_details is [] until it has the channel's statistics.
        consumers = api.wait_for("consumers/%2F", lambda cs: any(
            c["consumer_tag"] == "ctag-" + qname and isinstance(c["channel_details"], dict)
            and c["channel_details"] for c in cs))
        c = next(c for c in consumers if c["consumer_tag"] == "ctag-" + qname)
        assert c["queue"] == {"name": qname, "vhost": "/"}
        assert c["ack_required"] is True and c["prefetch_count"] == 3
        assert c["channel_details"]["connection_name"] == name
        r = api.delete(f"connections/{seg(name)}", headers={"X-Reason": "maintenance"})
        assert r.status_code == 204
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            conn.process_data_events(time_limit=5)
            conn.process_data_events(time_limit=5)
        assert info.value.reply_code == 320
        assert info.value.reply_text == "CONNECTION_FORCED - maintenance"
    finally:
        if conn.is_open:
            conn.close()
    assert api.get("connections/no%20such%20connection").status_code == 404


def test_users_vhosts_permissions(api: Api) -> None:
    user, vhost = f"u-{uuid.uuid4().hex[:6]}", f"vh-{uuid.uuid4().hex[:6]}"
    assert api.put(f"users/{user}", {"password": "pw", "tags": "monitoring,management"}) \
        .status_code == 201
    try:
        u = api.ok("GET", f"users/{user}")
        assert u["name"] == user and u["tags"] == ["monitoring", "management"]
        assert u["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert u["limits"] == {}
        assert api.put(f"users/{user}", {"password": "pw2", "tags": "monitoring"}).status_code == 204
        assert api.put(f"users/{user}-x", {}).json() == {"error": "bad_request",
                                                         "reason": "tags_not_present"}
        assert api.as_user(user, "pw2").get("whoami").status_code == 200
        assert api.as_user(user, "pw").get("whoami").status_code == 401
        assert api.put(f"vhosts/{vhost}").status_code == 201
        assert api.put(f"vhosts/{vhost}").status_code == 204
        assert api.ok("GET", f"vhosts/{vhost}")["name"] == vhost
        assert any(v["name"] == vhost for v in api.ok("GET", "vhosts"))
        perm = f"permissions/{vhost}/{user}"
        assert api.put(perm, {"configure": "^a", "write": ".*", "read": ".*"}).status_code == 201
        assert api.put(perm, {"configure": "^b", "write": ".*", "read": ".*"}).status_code == 204
        assert api.ok("GET", perm) == {"user": user, "vhost": vhost, "configure": "^b",
                                       "write": ".*", "read": ".*"}
        assert api.ok("GET", perm) in api.ok("GET", "permissions")
        assert api.ok("GET", f"users/{user}/permissions") == [api.ok("GET", perm)]
        # Creating a vhost over HTTP grants its creator (guest) full permissions there.
        assert api.ok("GET", f"vhosts/{vhost}/permissions") == [
            {"user": "guest", "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"},
            api.ok("GET", perm)]
        r = api.put(perm, {"configure": ".*"})
        assert r.status_code == 400
        assert r.json()["reason"] == "[{key_missing,write},{key_missing,read}]"
        r = api.put(f"permissions/{vhost}/nobody-{user}", {"configure": "", "write": "",
                                                           "read": ""})
        assert r.json() == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
        assert api.delete(perm).status_code == 204
        assert api.delete(perm).status_code == 404
    finally:
        assert api.delete(f"users/{user}").status_code == 204
        api.delete(f"vhosts/{vhost}")
    assert api.delete(f"users/{user}").status_code == 404
    assert api.delete(f"vhosts/{vhost}").status_code == 404


def test_definitions_export_and_import(api: Api, qname: str) -> None:
    vhost = f"defs-{uuid.uuid4().hex[:6]}"
    defs = {
        "vhosts": [{"name": vhost}],
        "users": [],
        "permissions": [{"user": "guest", "vhost": vhost, "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "queues": [{"name": qname, "vhost": vhost, "durable": True, "auto_delete": False,
                    "arguments": {"x-message-ttl": 60000}}],
        "exchanges": [{"name": "x", "vhost": vhost, "type": "fanout", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": "x", "vhost": vhost, "destination": qname,
                      "destination_type": "queue", "routing_key": "", "arguments": {}}],
    }
    r = api.post("definitions", defs)
    assert r.status_code in (201, 204), r.text
    try:
        out = api.ok("GET", "definitions")
        for key in ("rabbit_version", "users", "vhosts", "permissions", "queues", "exchanges",
                    "bindings"):
            assert key in out
        assert {"name": vhost} in [{"name": v["name"]} for v in out["vhosts"]]
        assert {"name": qname, "vhost": vhost, "durable": True, "auto_delete": False,
                "arguments": {"x-message-ttl": 60000}} in out["queues"]
        assert {"name": "x", "vhost": vhost, "type": "fanout", "durable": True,
                "auto_delete": False, "internal": False, "arguments": {}} in out["exchanges"]
        assert defs["bindings"][0] in out["bindings"]
        assert not any(x["name"].startswith("amq.") or x["name"] == "" for x in out["exchanges"])
        guest = next(u for u in out["users"] if u["name"] == "guest")
        assert guest["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert guest["password_hash"]
    finally:
        api.delete(f"vhosts/{vhost}")


def test_vhost_description_and_tags_are_kept(api: Api) -> None:
    """A vhost's description and tags are kept and shown (RabbitMQ 3.10 and 4.x), and a PUT
    replaces them."""
    name = f"meta-{uuid.uuid4().hex[:8]}"
    try:
        assert api.put(f"vhosts/{seg(name)}", {"description": "billing jobs",
                                               "tags": "team-a,prod"}).status_code == 201
        v = api.ok("GET", f"vhosts/{seg(name)}")
        assert v["description"] == "billing jobs" and v["tags"] == ["team-a", "prod"]
        assert v["metadata"] == {"description": "billing jobs", "tags": ["team-a", "prod"]}
        assert api.put(f"vhosts/{seg(name)}", {"description": "d2"}).status_code == 204
        v = api.ok("GET", f"vhosts/{seg(name)}")
        assert v["description"] == "d2" and v["tags"] == []
    finally:
        api.delete(f"vhosts/{seg(name)}")


@pytest.mark.hutch_only
def test_vhost_settings_hutch_cannot_honour_are_refused(api: Api) -> None:
    """tracing (the firehose) and a default queue type other than classic are refused with
    400 rather than accepted and ignored (README, Known differences)."""
    name = f"meta-{uuid.uuid4().hex[:8]}"
    for body in ({"tracing": True}, {"default_queue_type": "quorum"}):
        r = api.put(f"vhosts/{seg(name)}", body)
        assert r.status_code == 400, (body, r.text)
        assert api.get(f"vhosts/{seg(name)}").status_code == 404
    assert api.put(f"vhosts/{seg(name)}", {"default_queue_type": "classic",
                                           "tracing": False}).status_code == 201
    api.delete(f"vhosts/{seg(name)}")


@pytest.mark.hutch_only
def test_vhost_metadata_survives_a_restart() -> None:
    from tests.brokerproc import HutchProcess
    from tests.conftest import EXTERNAL_URL

    if EXTERNAL_URL:
        pytest.skip("needs its own Hutch process")
    proc = HutchProcess(http=True)
    proc.start()
    try:
        api = Api(proc.http_url)
        assert api.put("vhosts/kept", {"description": "kept", "tags": ["x"]}).status_code == 201
        proc.stop()
        proc.start()
        v = Api(proc.http_url).ok("GET", "vhosts/kept")
        assert (v["description"], v["tags"]) == ("kept", ["x"])
    finally:
        proc.stop()


def test_another_connections_exclusive_queue_is_locked_over_http(api: Api, broker_url: str) -> None:
    """Get, purge and delete of an exclusive queue through the API are refused with 400
    RESOURCE_LOCKED, as RabbitMQ's management plugin does; nothing is taken."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"secret")
        r = api.post(f"queues/%2F/{seg(q)}/get", {"count": 1, "ackmode": "ack_requeue_false",
                                                   "encoding": "auto"})
        assert r.status_code == 400 and "RESOURCE_LOCKED" in r.json()["reason"], r.text
        for method, path in (("DELETE", f"queues/%2F/{seg(q)}/contents"),
                             ("DELETE", f"queues/%2F/{seg(q)}")):
            r = api.request(method, path)
            assert r.status_code == 400, (path, r.text)
            assert "cannot obtain exclusive access to locked queue" in r.json()["reason"]
        assert ch.queue_declare(q, passive=True).method.message_count == 1
    finally:
        conn.close()


def test_definitions_naming_a_missing_vhost_are_refused(api: Api) -> None:
    """A queue, exchange or permission in a vhost that neither exists nor is in the file:
    400 ["no_such_vhost", NAME], as RabbitMQ answers (nothing skipped silently)."""
    vh = f"nosuch-{uuid.uuid4().hex[:8]}"
    q = f"defs-q-{uuid.uuid4().hex[:8]}"
    queue = {"name": q, "vhost": vh, "durable": True, "auto_delete": False, "arguments": {}}
    exchange = {"name": q, "vhost": vh, "type": "direct", "durable": True,
                "auto_delete": False, "internal": False, "arguments": {}}
    perm = {"user": "guest", "vhost": vh, "configure": ".*", "write": ".*", "read": ".*"}
    for doc in ({"queues": [queue]}, {"exchanges": [exchange]}, {"permissions": [perm]}):
        r = api.post("definitions", doc)
        assert r.status_code == 400, (doc, r.text)
        assert r.json()["reason"] == ["no_such_vhost", vh]
    assert api.get(f"vhosts/{seg(vh)}").status_code == 404
    # With the vhost in the same file, it is created first.
    try:
        r = api.post("definitions", {"vhosts": [{"name": vh}], "queues": [queue]})
        assert r.status_code in (200, 201, 204), r.text
        assert api.get(f"queues/{seg(vh)}/{seg(q)}").status_code == 200
    finally:
        api.delete(f"vhosts/{seg(vh)}")


def test_a_put_without_password_clears_an_existing_users_password(api: Api) -> None:
    """PUT /api/users/NAME with neither password nor password_hash leaves the user with no
    password, new or existing, as RabbitMQ does."""
    name = f"nopw-{uuid.uuid4().hex[:8]}"
    try:
        assert api.put(f"users/{seg(name)}", {"password": "pw1", "tags": "management"}).status_code == 201
        assert api.as_user(name, "pw1").get("whoami").status_code == 200
        assert api.put(f"users/{seg(name)}", {"tags": "management"}).status_code == 204
        assert api.as_user(name, "pw1").get("whoami").status_code == 401
        assert api.ok("GET", f"users/{seg(name)}")["password_hash"] == ""
    finally:
        api.delete(f"users/{seg(name)}")
