"""Broker state <-> RabbitMQ definitions (broker/definitions.py), in process, no sockets:
export/import round trips for every object kind, the import's checks and warnings,
the durable definitions file written and read back, a big import written once."""

from __future__ import annotations

import asyncio
import decimal
import json
import types
from typing import Any

import pytest

from hutch.admin.definitions import DefinitionsError, import_definitions
from hutch.broker import definitions
from hutch.broker.defaults import DefaultData
from hutch.broker.node import Node
from hutch.broker.users import Permission, hash_password
from hutch.store import definitions as definitions_file


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def populate(b: Node) -> None:
    """One of every object kind, durable and not, with arguments of several types."""
    b.users.add("alice", "secret", ["monitoring", "policymaker"])
    b.users.put("bob", hash_password("pw", algorithm="rabbit_password_hashing_sha512"), [],
                "rabbit_password_hashing_sha512")
    b.users.put("nopass", "", ["management"])
    b.add_vhost("dev")
    b.users.set_permission("dev", "alice", Permission("^a.*", "", ".*"))
    b.users.set_permission("/", "bob", Permission(".*", ".*", ""))
    for vname in ("/", "dev"):
        v = b.vhosts[vname]
        v.declare_exchange("events", "topic", False, True, False, False, {"alternate-exchange": "ae"})
        v.declare_exchange("ae", "fanout", False, True, False, False, {})
        v.declare_exchange("scratch", "direct", False, False, True, False, {})
        v.declare_exchange("hidden", "headers", False, True, False, True, {})
        v.declare_queue("orders", False, True, False, False,
                        {"x-max-length": 10, "x-dead-letter-exchange": "ae"}, None)
        v.declare_queue("tmp", False, False, False, True, {"x-message-ttl": 500}, None)
        owner = types.SimpleNamespace(exclusive_queues=[])  # a connection, for an exclusive queue
        v.declare_queue("mine", False, True, True, False, {}, owner)
        v.bind_queue("orders", "events", "order.#", {"x-b": b"raw", "n": decimal.Decimal("1.5")},
                     None)
        v.bind_queue("tmp", "events", "tmp", {}, None)
        v.bind_queue("orders", "amq.direct", "o", {}, None)
        v.bind_exchange("ae", "events", "#", {})
        v.bind_exchange("scratch", "events", "s", {})


def names(doc: dict[str, Any], kind: str) -> set[tuple[str, ...]]:
    key = "source" if kind == "bindings" else "name"
    return {(o.get("vhost", ""), o[key], o.get("destination", "")) for o in doc[kind]}


def test_export_import_round_trip_covers_every_kind() -> None:
    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        a = Node()
        populate(a)
        exported = definitions.export_document(a)
        b = Node()
        assert definitions.import_document(b, json.loads(json.dumps(exported))) == []
        return exported, definitions.export_document(b)

    exported, again = run(go())
    assert again == exported
    assert {u["name"] for u in exported["users"]} == {"guest", "alice", "bob", "nopass"}
    alice = next(u for u in exported["users"] if u["name"] == "alice")
    assert alice["tags"] == ["monitoring", "policymaker"]
    assert exported["vhosts"] == [{"name": "/"}, {"name": "dev"}]
    assert {"user": "alice", "vhost": "dev", "configure": "^a.*", "write": "",
            "read": ".*"} in exported["permissions"]
    # Non-durable objects are exported; exclusive queues and amq.* exchanges are not.
    assert names(exported, "queues") == {(v, q, "") for v in ("/", "dev") for q in ("orders", "tmp")}
    assert ("/", "scratch", "") in names(exported, "exchanges")
    assert not any(x["name"].startswith("amq.") for x in exported["exchanges"])
    binding = next(b for b in exported["bindings"] if b["routing_key"] == "order.#")
    assert binding["arguments"] == {"x-b": "raw", "n": 1.5}
    assert ("/", "amq.direct", "orders") in names(exported, "bindings")
    assert list(exported["queues"][0]) == ["name", "vhost", "durable", "auto_delete", "arguments"]


def test_vhost_export_has_no_vhost_field_and_imports_into_another_vhost() -> None:
    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        a = Node()
        populate(a)
        doc = definitions.export_vhost_document(a.vhosts["dev"])
        a.add_vhost("copy")
        assert definitions.import_document(a, doc, only_vhost="copy") == []
        return doc, definitions.export_vhost_document(a.vhosts["copy"])

    doc, copy = run(go())
    assert set(doc) == {"rabbit_version", "parameters", "policies", "queues", "exchanges",
                        "bindings"}
    assert all("vhost" not in o for k in ("queues", "exchanges", "bindings") for o in doc[k])
    assert copy == doc


def test_a_malformed_document_changes_nothing() -> None:
    async def go() -> list[str]:
        b = Node()
        errors = []
        for bad in ([], {"queues": "orders"},
                    {"queues": [{"name": "q1"}], "bindings": [{"destination_type": "topic"}]}):
            with pytest.raises(DefinitionsError) as exc:
                import_definitions(b, bad)
            errors.append(str(exc.value))
        assert "q1" not in b.vhosts["/"].queues
        return errors

    errors = run(go())
    assert errors[0] == "definitions must be a JSON object"
    assert errors[1] == "'queues' must be a list of objects"
    assert "invalid_destination_type" in errors[2]


def test_objects_that_cannot_be_applied_are_skipped_with_a_warning() -> None:
    async def go() -> tuple[list[str], Node]:
        b = Node()
        b.vhosts["/"].declare_queue("q", False, True, False, False, {"x-max-length": 1}, None)
        warnings = import_definitions(b, {
            "users": [{"name": "x", "password_hash": "nothash", "tags": []},
                      {"name": "y", "password": "pw", "tags": "a, b"}],
            "permissions": [{"user": "nobody", "vhost": "/", "configure": ".*", "write": ".*",
                             "read": ".*"},
                            {"user": "y", "vhost": "/", "configure": "(", "write": "",
                             "read": ""}],
            "queues": [{"name": "q", "vhost": "/", "durable": True, "arguments": {}},
                       {"name": "elsewhere", "vhost": "nope", "durable": True}],
            "exchanges": [{"name": "e", "vhost": "/", "type": "nonsense"}],
            "bindings": [{"source": "missing", "vhost": "/", "destination": "q",
                          "destination_type": "queue", "routing_key": ""}],
        })
        return warnings, b

    warnings, b = run(go())
    assert len(warnings) == 7, warnings
    assert warnings[0].startswith("user 'x' skipped: unsupported password hash")
    assert b.users.authenticate("y", "pw") is not None
    assert b.users.users["y"].tags == ["a", "b"]
    assert "no such user or vhost" in warnings[1]
    assert "permission for user 'y' in vhost '/' skipped" in warnings[2]
    assert "exchange 'e' skipped: PRECONDITION_FAILED - invalid exchange type 'nonsense'" in warnings
    assert any(w.startswith("queue 'q' skipped: PRECONDITION_FAILED - inequivalent arg "
                            "'x-max-length'") for w in warnings)
    assert "'elsewhere' skipped: vhost 'nope' does not exist" in warnings
    assert any(w.startswith("binding missing -> q skipped: NOT_FOUND") for w in warnings)


def test_the_definitions_file_holds_durable_objects_and_comes_back(tmp_path) -> None:
    async def first() -> tuple[dict[str, Any], dict[tuple[str, str], int]]:
        b = Node()
        await b.open_store(str(tmp_path))
        populate(b)
        assert await b.definitions_synced() is None
        ids = {(v.name, q.name): q.store_id for v in b.vhosts.values()
               for q in v.queues.values() if q.durable and not q.exclusive}
        doc = definitions.store_document(b)
        await b.close_store()
        return doc, ids

    async def second() -> dict[str, Any]:
        b = Node(defaults=DefaultData(user="other"))  # the file's users replace the default one
        await b.open_store(str(tmp_path))
        doc = definitions.store_document(b)
        await b.close_store()
        return doc

    doc, ids = run(first())
    on_disk = definitions_file.load(str(tmp_path))
    assert on_disk == doc
    # The file's shape since its first version (existing data dirs must load).
    assert set(on_disk) == {"rabbit_version", "rabbitmq_version", "product_name",
                            "product_version", "users", "vhosts", "permissions",
                            "topic_permissions", "parameters", "global_parameters", "policies",
                            "queues", "exchanges", "bindings", "hutch"}
    assert on_disk["vhosts"][0] == {"name": "/", "limits": [],
                                    "metadata": {"description": "Default virtual host", "tags": []}}
    assert names(on_disk, "queues") == {("/", "orders", ""), ("dev", "orders", "")}
    assert names(on_disk, "exchanges") == {(v, x, "") for v in ("/", "dev")
                                           for x in ("events", "ae", "hidden")}
    assert names(on_disk, "bindings") == {(v, s, d) for v in ("/", "dev") for s, d in
                                          (("events", "orders"), ("events", "ae"),
                                           ("amq.direct", "orders"))}
    assert {(e["vhost"], e["name"]): e["id"] for e in on_disk["hutch"]["queue_ids"]} == ids
    assert run(second()) == doc


def test_a_file_in_an_older_rabbitmq_shape_loads(tmp_path) -> None:
    """Tags as one comma-separated string, no hutch.queue_ids (a RabbitMQ export)."""
    doc = {"users": [{"name": "ops", "password_hash": hash_password("pw"),
                      "hashing_algorithm": "rabbit_password_hashing_sha256",
                      "tags": "administrator,monitoring"}],
           "vhosts": [{"name": "/"}],
           "permissions": [{"user": "ops", "vhost": "/", "configure": ".*", "write": ".*",
                            "read": ".*"}],
           "queues": [{"name": "q", "vhost": "/", "durable": True, "auto_delete": False,
                       "arguments": {}}]}
    (tmp_path / definitions_file.FILENAME).write_text(json.dumps(doc))

    async def go() -> Node:
        b = Node()
        await b.open_store(str(tmp_path))
        await b.close_store()
        return b

    b = run(go())
    assert list(b.users.users) == ["ops"]
    assert b.users.users["ops"].tags == ["administrator", "monitoring"]
    assert list(b.users.permissions) == [("/", "ops")]
    assert b.vhosts["/"].queues["q"].store_id


def test_a_big_import_is_one_change_and_one_write(tmp_path) -> None:
    n = 2000
    doc = {"exchanges": [{"name": f"x{i}", "vhost": "/", "type": "direct", "durable": True}
                         for i in range(n // 10)],
           "queues": [{"name": f"q{i}", "vhost": "/", "durable": True} for i in range(n)],
           "bindings": [{"source": f"x{i % (n // 10)}", "vhost": "/", "destination": f"q{i}",
                         "destination_type": "queue", "routing_key": "k"} for i in range(n)]}

    async def go() -> tuple[int, int, set[int], int]:
        b = Node()
        await b.open_store(str(tmp_path))
        writer = b.store.definitions
        version, writes = writer.version, writer.writes
        assert import_definitions(b, doc) == []
        assert await b.definitions_synced() is None
        gates = {q.defs_version for q in b.vhosts["/"].queues.values()}
        out = (writer.version - version, writer.writes - writes, gates, writer.version)
        await b.close_store()
        return out

    changes, writes, gates, version = run(go())
    assert changes == 1 and writes == 1
    # Every queue's messages wait for the one change that made it durable.
    assert gates == {version}
    assert len(definitions_file.load(str(tmp_path))["queues"]) == n
