"""Management API request bodies: wrongly typed fields, bad JSON, oversized bodies.

Every field of every endpoint that takes a JSON body is sent a value of the
wrong type: the answer must be 400 ``{"error": "bad_request", ...}`` and the
broker must not log a traceback.  Where RabbitMQ 3.10 answers 400 too the case
runs against it (with its reason where Hutch copies it); where RabbitMQ answers
500 or silently ignores the value the case is Hutch-only (README, Known
differences).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.brokerproc import HutchProcess
from tests.mgmt import Api, seg


@dataclass
class Target:
    """Objects the cases refer to: a queue holding no messages, a user to change."""

    queue: str
    user: str
    name: str  # for objects a case might create (removed afterwards)


@pytest.fixture
def target(api: Api) -> Iterator[Target]:
    tag = uuid.uuid4().hex[:8]  # names that need no escaping in a URL
    t = Target(f"typed-q-{tag}", f"victim-{tag}", f"typed-{tag}")
    api.ok("PUT", f"queues/%2F/{seg(t.queue)}", {"durable": False})
    api.add_user(t.user, "pw")
    yield t
    api.delete(f"queues/%2F/{seg(t.queue)}")
    api.delete(f"queues/%2F/{seg(t.name)}")
    api.delete(f"exchanges/%2F/{seg(t.name)}")
    api.delete(f"vhosts/{seg(t.name)}")
    api.delete(f"users/{seg(t.name)}")
    api.delete(f"users/{seg(t.user)}")


@pytest.fixture
def no_traceback(session_hutch: HutchProcess | None) -> Iterator[None]:
    """The session broker's log gains no traceback (Hutch only: RabbitMQ's log is
    elsewhere)."""
    start = len(session_hutch.log_lines) if session_hutch is not None else 0
    yield
    if session_hutch is not None:
        time.sleep(0.1)  # the log is read from the broker's pipe by a thread
        new = "\n".join(session_hutch.log_lines[start:])
        assert "Traceback" not in new and "management API error" not in new, new


# (method, path, a valid body, field, wrong value, RabbitMQ 3.10 also 400s, its reason)
# Paths: {q} the target queue, {n} a fresh name, {u} the target user.  A field of
# the form "properties.x" is inside "properties".
QUEUE = {"durable": False}
EXCHANGE = {"type": "direct"}
PUBLISH = {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {}}
GET = {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
BIND = {"routing_key": "k"}
USER = {"password": "pw", "tags": ""}
PERM = {"configure": ".*", "write": ".*", "read": ".*"}
CASES: list[tuple[str, str, dict[str, Any], str, Any, bool, Any]] = [
    ("PUT", "queues/%2F/{n}", QUEUE, "durable", "yes", True, ["not_boolean", "yes"]),
    ("PUT", "queues/%2F/{n}", QUEUE, "durable", 5, True, ["not_boolean", 5]),
    ("PUT", "queues/%2F/{n}", QUEUE, "auto_delete", "yes", True, ["not_boolean", "yes"]),
    ("PUT", "queues/%2F/{n}", QUEUE, "arguments", [1, 2], True, None),
    ("PUT", "queues/%2F/{n}", QUEUE, "arguments", "x", False, None),
    ("PUT", "queues/%2F/{n}", QUEUE, "arguments", {"a": {"b": [1, {"c": None}]}}, True,
     "null_not_allowed"),
    ("PUT", "queues/%2F/{n}", QUEUE, "arguments", {"x-max-length": 2**64}, False, None),
    ("PUT", "queues/%2F/{n}", QUEUE, "type", 5, False, None),
    ("PUT", "queues/%2F/{n}", QUEUE, "node", 5, False, None),
    ("PUT", "exchanges/%2F/{n}", EXCHANGE, "type", 5, True, None),
    ("PUT", "exchanges/%2F/{n}", EXCHANGE, "type", ["direct"], False, None),
    ("PUT", "exchanges/%2F/{n}", EXCHANGE, "durable", "yes", True, ["not_boolean", "yes"]),
    ("PUT", "exchanges/%2F/{n}", EXCHANGE, "auto_delete", "yes", True, ["not_boolean", "yes"]),
    ("PUT", "exchanges/%2F/{n}", EXCHANGE, "internal", "no", True, ["not_boolean", "no"]),
    ("PUT", "exchanges/%2F/{n}", EXCHANGE, "arguments", [1, 2], False, None),
    ("PUT", "exchanges/%2F/{n}", EXCHANGE, "arguments", 7, False, None),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "routing_key", 5, False, None),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "payload", 5, True,
     "payload_not_string"),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "payload", None, True,
     "payload_not_string"),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "payload_encoding", 5, True,
     ["unsupported_encoding", 5]),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties", [1], False, None),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties", "x", False, None),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties.delivery_mode", "2",
     True, ["not_int", "delivery_mode"]),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties.priority", "high",
     True, ["not_int", "priority"]),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties.timestamp", "x",
     True, ["not_int", "timestamp"]),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties.expiration", 100,
     True, ["not_string", "expiration"]),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties.content_type", 5,
     True, ["not_string", "content_type"]),
    ("POST", "exchanges/%2F/amq.default/publish", PUBLISH, "properties.headers", [1],
     False, None),
    ("POST", "queues/%2F/{q}/get", GET, "count", "x", True, ["not_integer", "x"]),
    ("POST", "queues/%2F/{q}/get", GET, "count", [1], True, ["not_integer", [1]]),
    ("POST", "queues/%2F/{q}/get", GET, "ackmode", 5, False, None),
    ("POST", "queues/%2F/{q}/get", GET, "encoding", 5, True,
     "Unsupported encoding. Please use auto or base64."),
    ("POST", "queues/%2F/{q}/get", GET, "truncate", "x", True, ["not_integer", "x"]),
    ("POST", "queues/%2F/{q}/get", GET, "requeue", "x", False, None),
    ("POST", "bindings/%2F/e/amq.direct/q/{q}", BIND, "routing_key", 5, False, None),
    ("POST", "bindings/%2F/e/amq.direct/q/{q}", BIND, "routing_key", ["a"], False, None),
    ("POST", "bindings/%2F/e/amq.direct/q/{q}", BIND, "arguments", [1, 2], False, None),
    ("POST", "bindings/%2F/e/amq.direct/q/{q}", BIND, "arguments", "x", False, None),
    ("PUT", "users/{n}", USER, "password", 5, False, None),
    ("PUT", "users/{n}", USER, "tags", 5, False, None),
    ("PUT", "users/{n}", USER, "tags", [1], False, None),
    ("PUT", "users/{n}", {"tags": ""}, "password_hash", 5, False, None),
    ("PUT", "users/{n}", USER, "hashing_algorithm", 5, False, None),
    ("PUT", "vhosts/{n}", {}, "description", 5, False, None),
    ("PUT", "vhosts/{n}", {}, "tags", 5, False, None),
    ("PUT", "vhosts/{n}", {}, "tracing", "x", True, ["not_boolean", "x"]),
    ("PUT", "vhosts/{n}", {}, "default_queue_type", 5, False, None),
    ("PUT", "permissions/%2F/{u}", PERM, "configure", 5, False, None),
    ("PUT", "permissions/%2F/{u}", PERM, "write", [1], False, None),
    ("PUT", "permissions/%2F/{u}", PERM, "read", None, False, None),
    ("POST", "definitions", {}, "queues", 5, False, None),
    ("POST", "definitions", {}, "queues", [5], False, None),
    ("POST", "definitions", {}, "queues", [{"name": 5, "vhost": "/"}], True, None),
    ("POST", "definitions", {}, "queues", [{"name": "{n}", "vhost": "/", "durable": "x"}],
     False, None),
    ("POST", "definitions", {}, "queues", [{"name": "{n}", "vhost": "/", "arguments": [1]}],
     False, None),
    ("POST", "definitions", {}, "exchanges", [{"name": "{n}", "vhost": "/", "type": 5}], True,
     None),
    ("POST", "definitions", {}, "bindings", [{"source": 5, "vhost": "/"}], True, None),
    ("POST", "definitions", {}, "users", [{"name": "{n}", "password": "x", "tags": 5}], True,
     None),
    ("POST", "definitions", {}, "vhosts", [{"name": 5}], False, None),
    ("POST", "definitions", {}, "permissions", [{"user": "{u}", "vhost": "/", "configure": 5,
                                                 "write": ".*", "read": ".*"}], True, None),
    ("POST", "definitions/%2F", {}, "queues", [{"name": "{n}", "auto_delete": 5}], False,
     None),
]


def _fill(value: Any, t: Target) -> Any:
    if isinstance(value, str):
        return value.replace("{q}", t.queue).replace("{n}", t.name).replace("{u}", t.user)
    if isinstance(value, list):
        return [_fill(v, t) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, t) for k, v in value.items()}
    return value


def _case_id(case: tuple[Any, ...]) -> str:
    method, path, _body, fld, value = case[:5]
    return f"{method} {path.split('/')[0]} {fld}={value!r}"[:80]


@pytest.mark.parametrize("case", [
    pytest.param(c, id=_case_id(c), marks=() if c[5] else (pytest.mark.hutch_only,))
    for c in CASES])
@pytest.mark.usefixtures("no_traceback")
def test_wrongly_typed_field_is_400(api: Api, target: Target,
                                    case: tuple[str, str, dict[str, Any], str, Any, bool, Any]
                                    ) -> None:
    method, path, valid, fld, value, _rabbit, reason = case
    body = _fill(dict(valid), target)
    if fld.startswith("properties."):
        body["properties"] = {fld.split(".", 1)[1]: value}
    else:
        body[fld] = _fill(value, target)
    r = api.request(method, _fill(path, target), body)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["error"] == "bad_request"
    if reason is not None:
        assert r.json()["reason"] == reason
    # Nothing was created or changed by the refused request.
    assert api.get(f"queues/%2F/{seg(target.name)}").status_code == 404
    assert api.get(f"exchanges/%2F/{seg(target.name)}").status_code == 404
    assert api.get(f"users/{seg(target.name)}").status_code == 404
    assert api.get(f"permissions/%2F/{seg(target.user)}").status_code == 404


BODY_ENDPOINTS = [("PUT", "queues/%2F/{n}"), ("PUT", "exchanges/%2F/{n}"),
                  ("POST", "exchanges/%2F/amq.default/publish"), ("POST", "queues/%2F/{q}/get"),
                  ("POST", "bindings/%2F/e/amq.direct/q/{q}"), ("PUT", "users/{n}"),
                  ("PUT", "vhosts/{n}"), ("PUT", "permissions/%2F/{u}"),
                  ("POST", "definitions"), ("POST", "definitions/%2F")]


def _raw(api: Api, method: str, path: str, data: bytes | str) -> requests.Response:
    return api.request(method, path, data=data, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("method,path", [
    # RabbitMQ 3.10 answers a binding's unparsable body with a 500 (a badmatch).
    pytest.param(m, p, id=f"{m} {p}", marks=(pytest.mark.hutch_only,) if "bindings" in p else ())
    for m, p in BODY_ENDPOINTS])
@pytest.mark.usefixtures("no_traceback")
def test_non_json_and_non_object_bodies_are_400(api: Api, target: Target, method: str,
                                                path: str, against_rabbitmq: bool) -> None:
    path = _fill(path, target)
    for data in ("{not json", "[1, 2]", "5", '{"a": NaN}'):
        r = _raw(api, method, path, data)
        assert r.status_code == 400, (data, r.status_code, r.text)
        assert r.json()["error"] == "bad_request"
    if not against_rabbitmq:  # RabbitMQ's definitions import words these its own way
        assert _raw(api, method, path, "{not json").json()["reason"] == "not_json"
        r = _raw(api, method, path, '"{}"')
        assert r.status_code == 400 and "doubly-JSON-encoded" in r.json()["reason"]


@pytest.mark.hutch_only  # RabbitMQ 3.10 accepts any depth
@pytest.mark.parametrize("method,path", BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p in BODY_ENDPOINTS])
@pytest.mark.usefixtures("no_traceback")
def test_too_deeply_nested_json_is_400(api: Api, target: Target, method: str,
                                       path: str) -> None:
    path = _fill(path, target)
    for depth in (65, 100_000):  # the limit; far beyond Python's recursion limit
        data = '{"arguments": {"a": ' + "[" * depth + "]" * depth + "}}"
        r = _raw(api, method, path, data)
        assert r.status_code == 400, (depth, r.status_code, r.text)
        assert r.json() == {"error": "bad_request",
                            "reason": "JSON nested too deeply (more than 64 levels)"}
    ok = '{"arguments": {"a": ' + "[" * 60 + "]" * 60 + "}}"
    assert _raw(api, "PUT", f"queues/%2F/{seg(target.name)}", ok).status_code == 201


@pytest.mark.hutch_only  # RabbitMQ 3.10 has no limit; 3.13+ answers 400 (README)
def test_oversized_body_is_413_and_the_limit_is_configurable() -> None:
    proc = HutchProcess("--in-memory", "--http-max-body", "1k", http=True)
    proc.start()
    try:
        api = Api(proc.http_url)
        too_big = {"error": "bad_request", "reason": "Exceeded HTTP request body size limit"}
        pad = "x" * 1100
        r = api.put("queues/%2F/big", {"arguments": {"pad": pad}})
        assert (r.status_code, r.json()) == (413, too_big)
        # Without a Content-Length (chunked), the limit stops the read itself.
        chunks = iter([b'{"arguments": {"pad": "', pad.encode(), b'"}}'])
        r = api.request("PUT", "queues/%2F/big", data=chunks,
                        headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()) == (413, too_big)
        assert api.get("queues/%2F/big").status_code == 404
        assert api.put("queues/%2F/small", {"arguments": {"pad": "x" * 900}}).status_code == 201
        # An unauthenticated client is refused before its body is read.
        r = requests.put(api.base + "queues/%2F/big", data="x" * 5000, timeout=10)
        assert r.status_code == 401
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                "request exceeded maximum allowed payload size (limit: 1024 bytes" in line
                for line in proc.log_lines):
            time.sleep(0.05)
        log = "\n".join(proc.log_lines)
        assert "request exceeded maximum allowed payload size (limit: 1024 bytes" in log
        assert "Traceback" not in log
    finally:
        proc.stop()


def test_default_body_limit_is_rabbitmqs() -> None:
    from hutch.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.http_max_body == 20_000_000  # rabbit_mgmt.hrl MANAGEMENT_DEFAULT_HTTP_MAX_BODY_SIZE
    assert build_parser().parse_args(["serve", "--http-max-body", "64k"]).http_max_body == 65536
