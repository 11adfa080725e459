"""Definitions export/import in RabbitMQ's JSON format.

This file format is the way to a RabbitMQ cluster: ``hutch ctl
export_definitions defs.json`` then ``rabbitmqctl import_definitions
defs.json`` (and back).  Password hashes travel as they are: Hutch hashes
exactly as RabbitMQ does (``rabbit_password_hashing_sha256``).

Like RabbitMQ, import is additive and idempotent: objects are created or
updated, nothing absent from the file is deleted; an object that conflicts
(e.g. a queue redeclared with other arguments) is reported and skipped.
Exclusive queues and the built-in ``amq.*`` / default exchanges are never
exported, exactly as RabbitMQ 3.10 behaves.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import RABBITMQ_VERSION, __version__
from ..broker.permissions import validate_regex
from ..broker.users import HASHING_ALGORITHM, Permission, parse_tags, valid_password_hash
from ..errors import AMQPError
from .schema import DEFINITIONS, BodyError
from .views import jsonable, permission_info, user_info

log = logging.getLogger("hutch.definitions")

RABBIT_VERSION = RABBITMQ_VERSION  # the RabbitMQ release whose format we write


class DefinitionsError(Exception):
    """The file is not usable at all (not an object, wrong types)."""


def _is_builtin_exchange(name: str) -> bool:
    return name == "" or name.startswith("amq.")


def export_vhost_objects(vhost: Any, with_vhost_field: bool = True) -> dict[str, list[Any]]:
    def tag(d: dict[str, Any]) -> dict[str, Any]:
        return {"name": d.pop("name"), **({"vhost": vhost.name} if with_vhost_field else {}), **d}

    queues = [tag({"name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
                   "arguments": jsonable(q.arguments)})
              for q in list(vhost.queues.values()) if not q.exclusive]
    exchanges = [tag({"name": ex.name, "type": ex.type_name, "durable": ex.durable,
                      "auto_delete": ex.auto_delete, "internal": ex.internal,
                      "arguments": jsonable(ex.arguments)})
                 for ex in list(vhost.exchanges.values()) if not _is_builtin_exchange(ex.name)]
    bindings = []
    for ex in list(vhost.exchanges.values()):
        if not ex.name:
            continue
        for b in list(ex.bindings.values()):
            dest = b.destination
            if not dest.is_exchange and dest.exclusive:
                continue
            entry: dict[str, Any] = {"source": ex.name}
            if with_vhost_field:
                entry["vhost"] = vhost.name
            entry.update({"destination": dest.name,
                          "destination_type": "exchange" if dest.is_exchange else "queue",
                          "routing_key": b.routing_key, "arguments": jsonable(b.arguments)})
            bindings.append(entry)
    return {"queues": queues, "exchanges": exchanges, "bindings": bindings}


def export_definitions(broker: Any) -> dict[str, Any]:
    users = broker.users
    out: dict[str, Any] = {
        "rabbit_version": RABBIT_VERSION,
        "rabbitmq_version": RABBIT_VERSION,
        "product_name": "Hutch",
        "product_version": __version__,
        "users": [user_info(u) for u in users.users.values()],
        "vhosts": [{"name": name} for name in broker.vhosts],
        "permissions": [permission_info(v, u, p) for (v, u), p in users.permissions.items()],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    for vhost in list(broker.vhosts.values()):
        objs = export_vhost_objects(vhost)
        for k in ("queues", "exchanges", "bindings"):
            out[k].extend(objs[k])
    return out


def export_vhost_definitions(broker: Any, vhost: Any) -> dict[str, Any]:
    return {"rabbit_version": RABBIT_VERSION, "parameters": [], "policies": [],
            **export_vhost_objects(vhost, with_vhost_field=False)}


def _checked(defs: Any) -> dict[str, list[dict[str, Any]]]:
    """The document's lists, every field of every item type-checked (schema.DEFINITIONS)
    before anything is applied: a malformed file changes nothing."""
    if not isinstance(defs, dict):
        raise DefinitionsError("definitions must be a JSON object")
    try:
        return DEFINITIONS.check(defs)
    except BodyError as exc:
        raise DefinitionsError(str(exc.reason)) from None


def _list(defs: dict[str, list[dict[str, Any]]], key: str) -> list[dict[str, Any]]:
    return defs.get(key, [])


def import_definitions(broker: Any, defs: Any, only_vhost: str | None = None) -> list[str]:
    """Apply a definitions document; returns one warning per object skipped."""
    defs = _checked(defs)
    warnings: list[str] = []
    users = broker.users
    changed = False

    if only_vhost is None:
        for u in _list(defs, "users"):
            name = u.get("name")
            if not isinstance(name, str) or not name:
                warnings.append(f"user without a name skipped: {u!r}")
                continue
            algorithm = u.get("hashing_algorithm") or HASHING_ALGORITHM
            if "password_hash" in u:
                password_hash = u.get("password_hash") or ""
            else:  # RabbitMQ also accepts a clear-text "password" in definitions
                from ..broker.users import hash_password
                password_hash = hash_password(u.get("password", ""))
                algorithm = HASHING_ALGORITHM
            if not valid_password_hash(password_hash, algorithm):
                warnings.append(f"user '{name}' skipped: unsupported password hash ({algorithm})")
                continue
            users.put(name, password_hash, parse_tags(u.get("tags")), algorithm)
            changed = True
        for v in _list(defs, "vhosts"):
            name = v.get("name")
            if isinstance(name, str) and name and name not in broker.vhosts:
                broker.add_vhost(name)
        for p in _list(defs, "permissions"):
            vname, uname = p.get("vhost"), p.get("user")
            if vname not in broker.vhosts or uname not in users.users:
                warnings.append(f"permission for user '{uname}' in vhost '{vname}' skipped: "
                                "no such user or vhost")
                continue
            perm = Permission(p.get("configure", ""), p.get("write", ""), p.get("read", ""))
            bad = next((e for e in map(validate_regex, (perm.configure, perm.write, perm.read))
                        if e), None)
            if bad:
                warnings.append(f"permission for user '{uname}' in vhost '{vname}' skipped: {bad}")
                continue
            users.set_permission(vname, uname, perm)
            changed = True

    def vhost_of(obj: dict[str, Any]) -> Any:
        name = only_vhost if only_vhost is not None else obj.get("vhost", "/")
        vhost = broker.vhosts.get(name)
        if vhost is None:
            warnings.append(f"{obj.get('name', obj.get('source'))!r} skipped: vhost '{name}' "
                            "does not exist")
        return vhost

    for x in _list(defs, "exchanges"):
        vhost = vhost_of(x)
        name = x.get("name", "")
        if vhost is None or _is_builtin_exchange(name):
            continue
        try:
            vhost.declare_exchange(name, x.get("type", "direct"), False, x.get("durable", True),
                                   x.get("auto_delete", False), x.get("internal", False),
                                   dict(x.get("arguments", {})))
        except AMQPError as exc:
            warnings.append(f"exchange '{name}' skipped: {exc.text}")
    for q in _list(defs, "queues"):
        vhost = vhost_of(q)
        name = q.get("name", "")
        if vhost is None or not name:
            continue
        try:
            vhost.declare_queue(name, False, q.get("durable", True), False,
                                q.get("auto_delete", False), dict(q.get("arguments", {})), None)
        except AMQPError as exc:
            warnings.append(f"queue '{name}' skipped: {exc.text}")
    for b in _list(defs, "bindings"):
        vhost = vhost_of(b)
        if vhost is None:
            continue
        source, dest = b.get("source", ""), b.get("destination", "")
        key, args = b.get("routing_key", ""), dict(b.get("arguments", {}))
        try:
            if b.get("destination_type", "queue") == "exchange":
                vhost.bind_exchange(dest, source, key, args)
            else:
                vhost.bind_queue(dest, source, key, args, None)
        except AMQPError as exc:
            warnings.append(f"binding {source} -> {dest} skipped: {exc.text}")
    if changed:
        broker.definitions_changed()
    for w in warnings:
        log.warning("definitions import: %s", w)
    return warnings
