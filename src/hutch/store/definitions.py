"""Durable definitions: users, vhosts, permissions, durable exchanges/queues/bindings.

Kept in ``<data-dir>/definitions.json`` in RabbitMQ's definitions format (the
one ``rabbitmqctl export_definitions`` writes), rewritten whole and atomically
(temp file, fsync, rename, directory fsync) whenever one of them changes.  One
Hutch-only key, ``hutch.queue_ids``, maps each durable queue to the numeric id
its messages carry in the message log; a recreated queue gets a new id, so the
records of a deleted namesake are never mistaken for its own.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from .. import __version__
from ..broker.users import Permission, User

log = logging.getLogger("hutch.store")

FILENAME = "definitions.json"


def snapshot(broker: Any) -> dict[str, Any]:
    users = [{"name": u.name, "password_hash": u.password_hash,
              "hashing_algorithm": u.hashing_algorithm, "tags": list(u.tags), "limits": {}}
             for u in broker.users.users.values()]
    vhosts = [{"name": name, "limits": [], "metadata": {"description": "", "tags": []}}
              for name in broker.vhosts]
    permissions = [{"user": user, "vhost": vhost, "configure": p.configure, "write": p.write,
                    "read": p.read}
                   for (vhost, user), p in broker.users.permissions.items()]
    queues, exchanges, bindings, ids = [], [], [], []
    for vname, vhost in broker.vhosts.items():
        for q in vhost.queues.values():
            if q.durable and not q.exclusive:
                queues.append({"name": q.name, "vhost": vname, "durable": True,
                               "auto_delete": q.auto_delete, "arguments": q.arguments})
                ids.append({"vhost": vname, "name": q.name, "id": q.store_id})
        for ex in vhost.exchanges.values():
            if ex.durable and ex.name and not ex.name.startswith("amq."):
                exchanges.append({"name": ex.name, "vhost": vname, "type": ex.type_name,
                                  "durable": True, "auto_delete": ex.auto_delete,
                                  "internal": ex.internal, "arguments": ex.arguments})
        for ex in vhost.exchanges.values():
            if not ex.durable:
                continue
            for b in ex.bindings.values():
                dest = b.destination
                if not dest.durable or getattr(dest, "exclusive", False):
                    continue
                bindings.append({"source": ex.name, "vhost": vname, "destination": dest.name,
                                 "destination_type": "exchange" if dest.is_exchange else "queue",
                                 "routing_key": b.routing_key, "arguments": b.arguments})
    return {
        "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8",
        "product_name": "Hutch", "product_version": __version__,
        "users": users, "vhosts": vhosts, "permissions": permissions,
        "topic_permissions": [], "parameters": [], "global_parameters": [], "policies": [],
        "queues": queues, "exchanges": exchanges, "bindings": bindings,
        "hutch": {"queue_ids": ids},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def save(broker: Any, data_dir: str, files: Any) -> None:
    data = json.dumps(_jsonable(snapshot(broker)), indent=1, sort_keys=True).encode()
    files.write_file_atomically(os.path.join(data_dir, FILENAME), data)


def load(data_dir: str) -> dict[str, Any] | None:
    path = os.path.join(data_dir, FILENAME)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def apply(broker: Any, defs: dict[str, Any]) -> dict[tuple[str, str], int]:
    """Recreate what ``defs`` describes; returns (vhost, queue) -> store id."""
    users = broker.users
    if defs.get("users"):
        users.users.clear()
        for u in defs["users"]:
            tags = u.get("tags") or []
            if isinstance(tags, str):  # older RabbitMQ exports: "a,b"
                tags = [t for t in tags.split(",") if t]
            users.users[u["name"]] = User(u["name"], u["password_hash"], tags,
                                          u.get("hashing_algorithm", "rabbit_password_hashing_sha256"))
    if "permissions" in defs:
        users.permissions.clear()
        for p in defs["permissions"]:
            users.permissions[(p["vhost"], p["user"])] = Permission(p["configure"], p["write"], p["read"])
    for v in defs.get("vhosts", []):
        if v["name"] not in broker.vhosts:
            broker.vhosts[v["name"]] = broker.make_vhost(v["name"])
    ids = {(e["vhost"], e["name"]): int(e["id"]) for e in defs.get("hutch", {}).get("queue_ids", [])}
    for e in defs.get("exchanges", []):
        vhost = broker.vhosts.get(e["vhost"])
        if vhost is not None and e["name"] not in vhost.exchanges:
            vhost.declare_exchange(e["name"], e["type"], False, True, e.get("auto_delete", False),
                                   e.get("internal", False), e.get("arguments") or {})
    for q in defs.get("queues", []):
        vhost = broker.vhosts.get(q["vhost"])
        if vhost is not None and q["name"] not in vhost.queues:
            vhost.restore_queue(q["name"], q.get("auto_delete", False), q.get("arguments") or {},
                                ids.get((q["vhost"], q["name"])))
    for b in defs.get("bindings", []):
        vhost = broker.vhosts.get(b["vhost"])
        if vhost is None:
            continue
        source = vhost.exchanges.get(b["source"])
        if b["destination_type"] == "queue":
            dest = vhost.queues.get(b["destination"])
        else:
            dest = vhost.exchanges.get(b["destination"])
        if source is not None and dest is not None and source.name:
            source.bind(dest, b["routing_key"], b.get("arguments") or {})
    return ids
