"""Policies and operator policies over the management API and ``ctl``.

The HTTP answers were recorded from RabbitMQ 3.10's management plugin and the tests
run against it too (``HUTCH_TEST_HTTP_URL``); each test works in a vhost of its own,
deleted afterwards, so the shared RabbitMQ's other policies are never touched.  The
``ctl`` tests run ``hutch ctl`` against Hutch, and the real ``rabbitmqctl`` with the
same expectations when ``HUTCH_TEST_RABBITMQCTL`` points at the RabbitMQ under test.
3.10 HTML-escapes ``<<`` in /api/policies' error texts (4.x and its own
/api/operator-policies do not): texts are compared unescaped.
"""

from __future__ import annotations

import html
import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.conftest import EXTERNAL_URL
from tests.mgmt import Api, seg

RABBITMQCTL = os.environ.get("HUTCH_TEST_RABBITMQCTL")
ROOT = Path(__file__).resolve().parents[2]
NOT_YOURS = {"error": "not_authorised", "reason": "User not authorised to access object"}
NOT_ADMIN = {"error": "not_authorised", "reason": "Not administrator user"}


@pytest.fixture
def vhost(api: Api) -> Iterator[str]:
    name = f"pol-{uuid.uuid4().hex[:8]}"
    assert api.put(f"vhosts/{seg(name)}").status_code == 201
    users: list[str] = []
    api.users_made = users  # type: ignore[attr-defined]
    try:
        yield name
    finally:
        api.delete(f"vhosts/{seg(name)}")
        for u in users:
            api.delete(f"users/{seg(u)}")


def reason(r: Any) -> str:
    return html.unescape(r.json()["reason"])


def test_policy_crud_and_shapes(api: Api, vhost: str) -> None:
    v = seg(vhost)
    body = {"pattern": "^q$", "definition": {"max-length": 1}, "priority": 3,
            "apply-to": "queues"}
    assert api.put(f"policies/{v}/p", body).status_code == 201
    body["definition"] = {"max-length": 2, "message-ttl": 1000}
    assert api.put(f"policies/{v}/p", body).status_code == 204
    want = {"vhost": vhost, "name": "p", "pattern": "^q$", "apply-to": "queues",
            "definition": {"max-length": 2, "message-ttl": 1000}, "priority": 3}
    assert api.ok("GET", f"policies/{v}/p") == want
    # Defaults: priority 0, apply-to all.
    assert api.put(f"policies/{v}/d", {"pattern": "x", "definition": {"expires": 5}}
                   ).status_code == 201
    d = api.ok("GET", f"policies/{v}/d")
    assert d["priority"] == 0 and d["apply-to"] == "all"
    # Lists: lowest priority first.
    assert [p["name"] for p in api.ok("GET", f"policies/{v}")] == ["d", "p"]
    assert want in api.ok("GET", "policies")
    assert api.ok("GET", f"definitions/{v}")["policies"][-1] == want or \
        want in api.ok("GET", f"definitions/{v}")["policies"]
    assert want in api.ok("GET", "definitions")["policies"]
    assert api.delete(f"policies/{v}/p").status_code == 204
    assert api.delete(f"policies/{v}/p").status_code == 404
    assert api.get(f"policies/{v}/p").status_code == 404
    # Operator policies: a list and an object of their own.
    assert api.put(f"operator-policies/{v}/o", {"pattern": ".*", "definition": {
        "max-length": 10}}).status_code == 201
    assert api.ok("GET", f"operator-policies/{v}") == [
        {"vhost": vhost, "name": "o", "pattern": ".*", "apply-to": "all",
         "definition": {"max-length": 10}, "priority": 0}]
    assert [p["name"] for p in api.ok("GET", f"policies/{v}")] == ["d"]
    assert api.delete(f"operator-policies/{v}/o").status_code == 204
    # A vhost that does not exist.
    r = api.put(f"policies/{seg(vhost + '-none')}/p", body)
    assert (r.status_code, r.json()) == (404, {"error": "not_found",
                                               "reason": "vhost_not_found"})
    assert api.get(f"policies/{seg(vhost + '-none')}").status_code == 404


INVALID = [
    ({"foo": 1}, "[{<<\"foo\">>,1}] are not recognised policy settings"),
    # Priority cannot be set by a policy (RabbitMQ's priority.md).
    ({"max-priority": 10}, "[{<<\"max-priority\">>,10}] are not recognised policy settings"),
    ({"max-length": "x"}, "<<\"x\">> is not a valid maximum length"),
    ({"max-length-bytes": -1}, "-1 is not a valid maximum length in bytes"),
    ({"message-ttl": -5}, "-5 is not a valid message TTL"),
    ({"expires": 0}, "0 is not a valid queue expiry"),
    ({"overflow": "drop-tail"}, "<<\"drop-tail\">> is not a valid overflow value"),
    ({"queue-mode": "fast"}, "<<\"fast\">> is not a valid queue-mode value"),
    ({"dead-letter-exchange": 5}, "5 is not a valid dead letter exchange name"),
    ({"alternate-exchange": True}, "true is not a valid alternate exchange name"),
    ({"delivery-limit": "3"}, "<<\"3\">> is not a valid delivery limit"),
    ({}, "no policy provided"),
]


@pytest.mark.parametrize(("definition", "text"), INVALID)
def test_invalid_definitions_are_refused_with_rabbitmqs_text(api: Api, vhost: str,
                                                             definition: Any, text: str) -> None:
    r = api.put(f"policies/{seg(vhost)}/bad", {"pattern": ".*", "definition": definition})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request"
    assert reason(r) == f"Validation failed\n\n{text}\n"
    assert api.ok("GET", f"policies/{seg(vhost)}") == []


def test_invalid_fields_are_refused(api: Api, vhost: str) -> None:
    v = seg(vhost)
    r = api.put(f"policies/{v}/bad", {"definition": {"max-length": 1}})
    assert (r.status_code, r.json()["reason"]) == (400, "[{key_missing,pattern}]")
    r = api.put(f"policies/{v}/bad", {"pattern": ".*", "definition": {"max-length": 1},
                                      "priority": "a"})
    assert reason(r) == "Validation failed\n\npriority should be a number, actually was " \
                        "<<\"a\">>\n"
    r = api.put(f"policies/{v}/bad", {"pattern": "(", "definition": {"max-length": 1}})
    assert reason(r).startswith("Validation failed\n\npattern should be regular expression "
                                "but is invalid: ")
    # 4.x lists the queue-type names too; 3.10 only queues/exchanges/all.
    r = api.put(f"policies/{v}/bad", {"pattern": ".*", "definition": {"max-length": 1},
                                      "apply-to": "bogus"})
    assert reason(r).startswith("Validation failed\n\napply-to 'bogus' unrecognised; should be ")
    # Operator policies take only the limits.
    r = api.put(f"operator-policies/{v}/bad", {"pattern": ".*",
                                               "definition": {"dead-letter-exchange": "a"}})
    assert reason(r) == "Validation failed\n\n[{<<\"dead-letter-exchange\">>,<<\"a\">>}] are " \
                        "not recognised policy settings\n"
    assert api.ok("GET", f"policies/{v}") == [] and api.ok("GET", f"operator-policies/{v}") == []


# rabbit_policy:set/8 defaults only an ABSENT priority / apply-to; a present null (or
# "") is validated like any value.  A non-string pattern: rabbit_parameter_validation:regex/2.
BAD_FIELDS = [
    ({"priority": None}, "priority should be a number, actually was null"),
    ({"priority": True}, "priority should be a number, actually was true"),
    ({"pattern": 5}, "pattern should be a binary but was 5"),
    ({"pattern": None}, "pattern should be a binary but was null"),
    ({"pattern": [1]}, "pattern should be a binary but was [1]"),
    ({"pattern": {"a": 1}}, 'pattern should be a binary but was #{<<"a">> => 1}'),
    # The rest of these texts is 3.10's or 4.x's list of apply-to values.
    ({"apply-to": ""}, "apply-to '' unrecognised; should be "),
    ({"apply-to": None}, "apply-to 'null' unrecognised; should be "),
    ({"apply-to": True}, "apply-to 'true' unrecognised; should be "),
]


@pytest.mark.parametrize("kind", ["policies", "operator-policies"])
@pytest.mark.parametrize(("fields", "text"), BAD_FIELDS)
def test_present_but_invalid_fields_are_refused(api: Api, vhost: str, kind: str,
                                                fields: dict[str, Any], text: str) -> None:
    body = {"pattern": ".*", "definition": {"max-length": 1}, **fields}
    r = api.put(f"{kind}/{seg(vhost)}/bad", body)
    assert r.status_code == 400, r.text
    got = reason(r)
    assert got.startswith(f"Validation failed\n\n{text}") and got.count("\n") == 3, got
    assert api.ok("GET", f"{kind}/{seg(vhost)}") == []


@pytest.mark.parametrize("kind", ["policies", "operator-policies"])
def test_every_invalid_field_is_reported(api: Api, vhost: str, kind: str) -> None:
    """All the errors, one a line, definition first and priority last."""
    r = api.put(f"{kind}/{seg(vhost)}/bad", {"pattern": None, "definition": {"foo": 1},
                                             "priority": None, "apply-to": "bogus"})
    assert r.status_code == 400, r.text
    lines = reason(r).split("\n")
    assert lines[:3] == ["Validation failed", "", '[{<<"foo">>,1}] are not recognised policy '
                                                  "settings"]
    assert lines[3].startswith("apply-to 'bogus' unrecognised; should be ")
    assert lines[4:] == ["pattern should be a binary but was null",
                         "priority should be a number, actually was null", ""]
    r = api.put(f"{kind}/{seg(vhost)}/bad", {"pattern": "(", "definition": {"max-length": "x"},
                                             "priority": "p"})
    lines = reason(r).split("\n")
    assert lines[2] == '<<"x">> is not a valid maximum length'
    # PCRE's own words for the regex error (Python's differ: Hutch compiles with re).
    assert lines[3].startswith("pattern should be regular expression but is invalid: ")
    assert lines[4:] == ['priority should be a number, actually was <<"p">>', ""]
    assert api.ok("GET", f"{kind}/{seg(vhost)}") == []


@pytest.mark.hutch_only  # RabbitMQ 4.x texts and keys 3.10 does not have
def test_hutch_follows_rabbitmq_4_keys(api: Api, vhost: str) -> None:
    v = seg(vhost)
    for apply_to in ("classic_queues", "quorum_queues", "streams"):
        assert api.put(f"policies/{v}/t", {"pattern": ".*", "definition": {"max-length": 1},
                                           "apply-to": apply_to}).status_code in (201, 204)
    r = api.put(f"policies/{v}/bad", {"pattern": ".*", "definition": {"max-length": 1},
                                      "apply-to": "bogus"})
    assert reason(r) == ("Validation failed\n\napply-to 'bogus' unrecognised; should be one of: "
                         "'queues', 'classic_queues',  'quorum_queues', 'streams', 'exchanges', "
                         "or 'all'\n")
    r = api.put(f"policies/{v}/bad", {"pattern": ".*", "definition": {"max-length": 1},
                                      "apply-to": ""})
    assert reason(r) == ("Validation failed\n\napply-to '' unrecognised; should be one of: "
                         "'queues', 'classic_queues',  'quorum_queues', 'streams', 'exchanges', "
                         "or 'all'\n")
    # ha-* is gone in 4.x (no classic mirroring).
    r = api.put(f"policies/{v}/bad", {"pattern": ".*", "definition": {"ha-mode": "all"}})
    assert reason(r) == ("Validation failed\n\n[{<<\"ha-mode\">>,<<\"all\">>}] are not recognised "
                         "policy settings\n")
    # Known to RabbitMQ 4.3 but not implemented: refused, naming it.
    r = api.put(f"policies/{v}/bad", {"pattern": ".*", "definition": {"delayed-retry-type": "all"}})
    assert r.status_code == 400 and "delayed-retry-type" in reason(r)
    # Accepted and ignored (placement, storage version, streams).
    for key, value in (("queue-mode", "lazy"), ("queue-version", 2), ("max-age", "1D"),
                       ("queue-leader-locator", "balanced"), ("consumer-timeout", 1000),
                       ("delivery-limit", -1)):
        assert api.put(f"policies/{v}/ok", {"pattern": "^$", "definition": {key: value}}
                       ).status_code in (201, 204), key
    r = api.put(f"policies/{v}/bad", {"pattern": ".*", "definition": [1]})
    assert reason(r) == "Validation failed\n\ndefinition must be a dictionary: [1]\n"


def test_who_may_manage_policies(api: Api, vhost: str) -> None:
    v = seg(vhost)
    made: list[str] = api.users_made  # type: ignore[attr-defined]

    def user(tags: str, access: bool) -> Api:
        name = f"u-{tags or 'none'}-{uuid.uuid4().hex[:6]}"
        api.add_user(name, "pw", tags)
        made.append(name)
        if access:
            api.set_permissions(vhost, name)
        return api.as_user(name, "pw")

    body = {"pattern": "^nothing$", "definition": {"max-length": 1}}
    maker = user("policymaker", True)
    assert maker.put(f"policies/{v}/m", body).status_code == 201
    assert maker.ok("GET", f"policies/{v}/m")["name"] == "m"
    assert maker.delete(f"policies/{v}/m").status_code == 204
    # An operator policy is for administrators only.
    r = maker.put(f"operator-policies/{v}/m", body)
    assert (r.status_code, r.json()) == (401, NOT_ADMIN)
    # A policymaker without access to the vhost, a management user with access.
    for who in (user("policymaker", False), user("management", True)):
        r = who.put(f"policies/{v}/m", body)
        assert (r.status_code, r.json()) == (401, NOT_YOURS)
        assert who.delete(f"policies/{v}/m").status_code == 401
    # Listing needs only access to the vhost.
    api.ok("PUT", f"policies/{v}/seen", body)
    viewer = user("management", True)
    assert [p["name"] for p in viewer.ok("GET", f"policies/{v}")] == ["seen"]
    outsider = user("management", False)
    assert vhost not in [p["vhost"] for p in outsider.ok("GET", "policies")]


def test_queues_and_exchanges_show_their_policies(api: Api, vhost: str) -> None:
    v = seg(vhost)
    api.ok("PUT", f"queues/{v}/q", {"durable": False})
    api.ok("PUT", f"queues/{v}/other", {"durable": False})
    api.ok("PUT", f"exchanges/{v}/x", {"type": "direct"})
    api.ok("PUT", f"policies/{v}/p", {"pattern": "^(q|x)$", "priority": 1,
                                      "definition": {"max-length": 5, "alternate-exchange": "ae"}})
    api.ok("PUT", f"operator-policies/{v}/o", {"pattern": "^q$", "apply-to": "queues",
                                               "definition": {"max-length": 3}})
    q = api.wait_for(f"queues/{v}/q", lambda q: q.get("operator_policy") == "o")
    assert q["policy"] == "p"
    assert q["effective_policy_definition"] == {"alternate-exchange": "ae", "max-length": 3}
    other = api.wait_for(f"queues/{v}/other", lambda q: "policy" in q)
    assert other["policy"] is None and other["operator_policy"] is None
    assert other["effective_policy_definition"] == {}
    assert api.ok("GET", f"exchanges/{v}/x")["policy"] == "p"
    # A cleared policy leaves the queue at once.
    api.ok("DELETE", f"operator-policies/{v}/o")
    q = api.wait_for(f"queues/{v}/q", lambda q: q.get("operator_policy") is None)
    assert q["effective_policy_definition"] == {"alternate-exchange": "ae", "max-length": 5}


# -- ctl ----------------------------------------------------------------------------------
@pytest.fixture
def ctl(hutch_exe: list[str], http_url: str, ctl_env: dict[str, str]
        ) -> Callable[..., subprocess.CompletedProcess]:
    """``hutch ctl`` against Hutch; rabbitmqctl against RabbitMQ (if it is given)."""
    if EXTERNAL_URL:
        if not RABBITMQCTL:
            pytest.skip("HUTCH_TEST_RABBITMQCTL is not set")
        cmd = shlex.split(RABBITMQCTL)
    else:
        cmd = [*hutch_exe, "ctl", "--url", http_url, "--user", "guest", "--password", "guest"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120,
                              env=ctl_env, cwd=ROOT)
    return run


def test_ctl_policy_commands(ctl, api: Api, vhost: str) -> None:
    r = ctl("set_policy", "-p", vhost, "--priority", "3", "--apply-to", "queues", "lim",
            "^q$", '{"max-length":1, "message-ttl": 5}')
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f'Setting policy "lim" for pattern "^q$" to "{{"max-length":1, '
                        f'"message-ttl": 5}}" with priority "3" for vhost "{vhost}" ...\n')
    assert ctl("set_policy", "-p", vhost, "all", ".*", '{"expires":100000}').returncode == 0
    r = ctl("list_policies", "-p", vhost)
    assert r.stdout.splitlines() == [
        f'Listing policies for vhost "{vhost}" ...',
        "vhost\tname\tpattern\tapply-to\tdefinition\tpriority",
        f"{vhost}\tall\t.*\tall\t{{\"expires\":100000}}\t0",
        f"{vhost}\tlim\t^q$\tqueues\t{{\"max-length\":1,\"message-ttl\":5}}\t3"]
    r = ctl("list_policies", "-p", vhost, "--formatter", "json")
    assert json.loads(r.stdout)[1] == {"vhost": vhost, "name": "lim", "pattern": "^q$",
                                       "apply-to": "queues", "priority": 3,
                                       "definition": '{"max-length":1,"message-ttl":5}'}
    assert api.ok("GET", f"policies/{seg(vhost)}/lim")["definition"] == {"max-length": 1,
                                                                       "message-ttl": 5}
    # Refused definitions: "Error:" and RabbitMQ's text, exit 69.
    r = ctl("set_policy", "-p", vhost, "bad", ".*", '{"foo":1}')
    assert r.returncode == 69
    assert "Validation failed\n\n[{<<\"foo\">>,1}] are not recognised policy settings" in r.stderr
    r = ctl("set_operator_policy", "-p", vhost, "op", ".*", '{"max-length":"a"}')
    assert r.returncode == 69 and "<<\"a\">> is not a valid maximum length" in r.stderr
    assert ctl("set_policy", "-p", vhost, "bad", ".*", "{bad").returncode == 69
    assert ctl("set_policy", "-p", vhost, "bad", ".*").returncode == 64
    assert ctl("set_policy", "-p", vhost, "--priority", "x", "b", ".*", "{}").returncode == 64
    assert ctl("set_policy", "-p", vhost + "-none", "b", ".*", '{"expires":1}').returncode == 65
    # Operator policies.
    r = ctl("set_operator_policy", "-p", vhost, "op", "^q$", '{"max-length":2}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('Setting operator policy override "op" for pattern "^q$"')
    r = ctl("list_operator_policies", "-p", vhost, "-q")
    assert r.stdout.splitlines()[1] == f"{vhost}\top\t^q$\tall\t{{\"max-length\":2}}\t0"
    r = ctl("clear_operator_policy", "-p", vhost, "op")
    assert r.stdout == f'Clearing operator policy "op" on vhost "{vhost}" ...\n'
    # Clearing.
    r = ctl("clear_policy", "-p", vhost, "lim")
    assert (r.returncode, r.stdout) == (0, f'Clearing policy "lim" on vhost "{vhost}" ...\n')
    r = ctl("clear_policy", "-p", vhost, "lim")
    assert r.returncode == 69 and "Parameter does not exist" in r.stderr
    assert [p["name"] for p in api.ok("GET", f"policies/{seg(vhost)}")] == ["all"]


@pytest.mark.hutch_only
def test_ctl_list_queues_policy_column(hutch_exe: list[str], http_url: str, api: Api,
                                       vhost: str, ctl_env: dict[str, str]) -> None:
    v = seg(vhost)
    api.ok("PUT", f"queues/{v}/q", {"durable": False})
    api.ok("PUT", f"exchanges/{v}/x", {"type": "direct"})
    api.ok("PUT", f"policies/{v}/p", {"pattern": "^(q|x)$", "definition": {"max-length": 5}})
    base = [*hutch_exe, "ctl", "--url", http_url, "-q", "-p", vhost]
    r = subprocess.run([*base, "list_queues", "name", "policy"], capture_output=True, text=True,
                       env=ctl_env, timeout=30)
    assert "q\tp" in r.stdout.splitlines(), r.stdout
    r = subprocess.run([*base, "list_exchanges", "name", "policy"], capture_output=True,
                       text=True, env=ctl_env, timeout=30)
    assert "x\tp" in r.stdout.splitlines(), r.stdout


# -- durability and definitions ---------------------------------------------------------------
@pytest.mark.hutch_only
@pytest.mark.parametrize("how", ["restart", "kill -9"])
def test_policies_survive_a_restart(how: str) -> None:
    proc = HutchProcess(http=True)
    proc.start()
    try:
        api = Api(proc.http_url)
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("dq", durable=True)
        api.ok("PUT", "policies/%2F/p", {"pattern": "^dq$", "priority": 2,
                                        "definition": {"max-length": 2}})
        api.ok("PUT", "operator-policies/%2F/o", {"pattern": "^dq$", "apply-to": "queues",
                                                 "definition": {"max-length": 1}})
        conn.close()
        time.sleep(0.3)  # the definitions file is written soon, off the loop
        if how == "restart":
            proc.stop()
        else:
            proc.kill()
        proc.start()
        api = Api(proc.http_url)
        assert api.ok("GET", "policies/%2F/p")["definition"] == {"max-length": 2}
        assert api.ok("GET", "operator-policies/%2F/o")["definition"] == {"max-length": 1}
        q = api.ok("GET", "queues/%2F/dq")
        assert (q["policy"], q["operator_policy"]) == ("p", "o")
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.confirm_delivery()
        for b in (b"1", b"2", b"3"):
            ch.basic_publish("", "dq", b)
        assert ch.queue_declare("dq", passive=True).method.message_count == 1
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_definitions_import_brings_policies(private_hutch) -> None:
    api = Api(private_hutch.http_url)
    defs = {"vhosts": [{"name": "/"}], "policies": [
        {"vhost": "/", "name": "imp", "pattern": "^iq$", "apply-to": "queues",
         "definition": {"max-length": 1}, "priority": 1},
        {"vhost": "/", "name": "broken", "pattern": ".*", "apply-to": "queues",
         "definition": {"nope": 1}, "priority": 0}]}
    assert api.post("definitions", defs).status_code in (200, 201, 204)
    assert [p["name"] for p in api.ok("GET", "policies")] == ["imp"]
    api.ok("PUT", "queues/%2F/iq", {"durable": False})
    assert api.ok("GET", "queues/%2F/iq")["policy"] == "imp"
    exported = api.ok("GET", "definitions")["policies"]
    assert exported == [{"vhost": "/", "name": "imp", "pattern": "^iq$", "apply-to": "queues",
                         "definition": {"max-length": 1}, "priority": 1}]
