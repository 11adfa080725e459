"""Broker state <-> RabbitMQ's definitions document, the one serializer for the format.

The format is ``rabbitmqctl export_definitions``'s JSON, and it has two uses:

* the durable definitions file: ``store_document`` is what the store persists
  (durable objects only, plus the Hutch-only ``hutch.queue_ids`` key: the numeric
  id each durable queue's messages carry in the message log), ``restore`` brings
  it back at boot;
* export/import over the management API and ``hutch ctl``: ``export_document``
  and ``export_vhost_document`` (every object a client may see again: exclusive
  queues and the built-in ``amq.*`` / default exchanges are never exported, as in
  RabbitMQ 3.10), ``import_document`` (type-checked by the caller first).

Like RabbitMQ, import is additive and idempotent: objects are created or updated,
nothing absent from the document is deleted, an object that conflicts (a queue
redeclared with other arguments, a permission for an unknown user) is skipped with
a warning.  Password hashes travel as they are: Hutch hashes exactly as RabbitMQ
does, so definitions move between the two unchanged.
"""

from __future__ import annotations

import datetime
import decimal
import logging
from typing import TYPE_CHECKING, Any

from ..errors import AMQPError
from ..version import RABBITMQ_VERSION, __version__
from . import limits
from .permissions import validate_regex
from .policies import PolicyError, make_policy, set_policy
from .users import HASHING_ALGORITHM, Permission, User, hash_password, parse_tags, valid_password_hash

if TYPE_CHECKING:
    from .node import Node
    from .vhost import Vhost

log = logging.getLogger("hutch.definitions")

Document = dict[str, Any]


# -- field values --------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """AMQP field values (bytes, Decimal, datetime, nested tables) as JSON values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return scalar(value)


def scalar(value: Any) -> Any:
    """One AMQP field value that is not a table or an array, as a JSON value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    return value


# -- broker -> document -------------------------------------------------------------
def is_builtin_exchange(name: str) -> bool:
    return name == "" or name.startswith("amq.")


def user_info(user: User) -> dict[str, Any]:
    return {"name": user.name, "password_hash": user.password_hash,
            "hashing_algorithm": user.hashing_algorithm, "tags": list(user.tags),
            "limits": dict(user.limits)}


def permission_info(vhost: str, user: str, perm: Permission) -> dict[str, Any]:
    return {"user": user, "vhost": vhost, "configure": perm.configure, "write": perm.write,
            "read": perm.read}


def vhost_objects(vhost: Vhost, *, with_vhost_field: bool = True,
                  durable_only: bool = False) -> dict[str, list[Any]]:
    """A vhost's queues, exchanges and bindings; ``durable_only``: just what survives
    a restart (a binding only if both its ends do)."""
    def entry(name_key: str, name: str, **fields: Any) -> dict[str, Any]:
        # The vhost goes right after the name, where RabbitMQ puts it.
        out = {name_key: name, **({"vhost": vhost.name} if with_vhost_field else {})}
        out.update(fields)
        return out

    # list(): an export may run while the loop is between two changes of these dicts.
    queues = [entry("name", q.name, durable=q.durable, auto_delete=q.auto_delete,
                    arguments=jsonable(q.arguments))
              for q in list(vhost.queues.values())
              if not q.exclusive and (q.durable or not durable_only)]
    exchanges = [entry("name", ex.name, type=ex.type_name, durable=ex.durable,
                       auto_delete=ex.auto_delete, internal=ex.internal,
                       arguments=jsonable(ex.arguments))
                 for ex in list(vhost.exchanges.values())
                 if not is_builtin_exchange(ex.name) and (ex.durable or not durable_only)]
    bindings = []
    for ex in list(vhost.exchanges.values()):
        if not ex.name or (durable_only and not ex.durable):
            continue
        for b in list(ex.bindings.values()):
            dest = b.destination
            if (not dest.is_exchange and dest.exclusive) or (durable_only and not dest.durable):
                continue
            bindings.append(entry("source", ex.name, destination=dest.name,
                                  destination_type="exchange" if dest.is_exchange else "queue",
                                  routing_key=b.routing_key, arguments=jsonable(b.arguments)))
    return {"queues": queues, "exchanges": exchanges, "bindings": bindings}


def _document(broker: Node, vhosts: list[dict[str, Any]], durable_only: bool) -> Document:
    users = broker.users
    out: Document = {
        "rabbit_version": RABBITMQ_VERSION,
        "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Hutch",
        "product_version": __version__,
        "users": [user_info(u) for u in users.users.values()],
        "vhosts": vhosts,
        "permissions": [permission_info(v, u, p) for (v, u), p in users.permissions.items()],
        "topic_permissions": [],
        "parameters": limits.vhost_parameters(broker),
        "global_parameters": [],
        "policies": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    for vhost in list(broker.vhosts.values()):
        out["policies"].extend(p.info() for p in vhost.policies.values())
        objs = vhost_objects(vhost, durable_only=durable_only)
        for k in ("queues", "exchanges", "bindings"):
            out[k].extend(objs[k])
    return out


def export_document(broker: Node) -> Document:
    """GET /api/definitions, ``hutch ctl export_definitions``."""
    return _document(broker, [{"name": name} for name in broker.vhosts], durable_only=False)


def export_vhost_document(vhost: Vhost) -> Document:
    """GET /api/definitions/{vhost}: its objects, without a vhost field."""
    # Unlike its queues and exchanges, RabbitMQ keeps the vhost field on policies here.
    policies = [p.info() for p in vhost.policies.values()]
    parameters = [p for p in limits.vhost_parameters(vhost.broker) if p["vhost"] == vhost.name]
    return {"rabbit_version": RABBITMQ_VERSION, "parameters": parameters, "policies": policies,
            **vhost_objects(vhost, with_vhost_field=False)}


def store_document(broker: Node) -> Document:
    """What the definitions file holds: everything that survives a restart.  Taken on
    the loop (the broker is not thread-safe) as plain JSON data, so the store can
    encode and write it on a thread of its own."""
    # The vhosts' limits and metadata are the file's shape since its first version.
    vhosts = [{"name": name, "limits": [],
               "metadata": {"description": v.description, "tags": list(v.tags)}}
              for name, v in broker.vhosts.items()]
    out = _document(broker, vhosts, durable_only=True)
    out["hutch"] = {"queue_ids": [{"vhost": vname, "name": q.name, "id": q.store_id}
                                  for vname, vhost in broker.vhosts.items()
                                  for q in vhost.queues.values() if q.durable and not q.exclusive],
                    # Likewise the id a durable delayed exchange's waiting messages carry.
                    "exchange_ids": [{"vhost": vname, "name": ex.name, "id": ex.store.store_id}
                                     for vname, vhost in broker.vhosts.items()
                                     for ex in vhost.exchanges.values()
                                     if ex.delays and ex.durable and ex.store.store_id],
                    # Not part of RabbitMQ's export (rabbit_definitions lists policies
                    # only), but as durable there (runtime parameters).
                    "operator_policies": [p.info() for vhost in broker.vhosts.values()
                                          for p in vhost.operator_policies.values()]}
    return out


# -- document -> broker -------------------------------------------------------------
def import_document(broker: Node, defs: Document, only_vhost: str | None = None) -> list[str]:
    """Apply a type-checked document (admin/schema.DEFINITIONS) additively; returns one
    warning per object skipped.  ``only_vhost``: its objects all go to that vhost, and
    users, vhosts and permissions are left alone (POST /api/definitions/{vhost}).
    The definitions file is written once for the whole import."""
    with broker.definitions_batch():
        return _apply(broker, defs, only_vhost=only_vhost, restoring=False)


def restore(broker: Node, defs: Document) -> list[str]:
    """Bring back the definitions file at boot.  Unlike an import it replaces the users
    and permissions (the file has them all; the default user is only kept when the
    file has no users), and queues come back with the store ids of their messages."""
    return _apply(broker, defs, only_vhost=None, restoring=True)


def _set_vhost_metadata(vhost: Vhost, entry: dict[str, Any]) -> None:
    """A vhost's description and tags, from RabbitMQ 4.x's top-level fields or the
    ``metadata`` object (Hutch's own file, 3.x); an entry with neither (a 3.10
    export) leaves them alone."""
    raw = entry.get("metadata")
    meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
    description = entry.get("description", meta.get("description"))
    tags = entry.get("tags", meta.get("tags"))
    if isinstance(description, str):
        vhost.description = description
    if isinstance(tags, list):
        vhost.tags = [str(t) for t in tags]
    elif isinstance(tags, str):
        vhost.tags = [t.strip() for t in tags.split(",") if t.strip()]


def _apply(broker: Node, defs: Document, only_vhost: str | None,
           restoring: bool) -> list[str]:
    warnings: list[str] = []
    users = broker.users
    if only_vhost is None:
        if restoring and defs.get("users"):
            users.users.clear()
        for u in defs.get("users", []):
            _put_user(broker, u, warnings)
        for v in defs.get("vhosts", []):
            name = v.get("name")
            if isinstance(name, str) and name and name not in broker.vhosts:
                broker.add_vhost(name)
            if isinstance(name, str) and name in broker.vhosts:
                _set_vhost_metadata(broker.vhosts[name], v)
        if restoring and "permissions" in defs:
            users.permissions.clear()
        for p in defs.get("permissions", []):
            _set_permission(broker, p, warnings)
        for v in defs.get("vhosts", []):
            # RabbitMQ 4.x also writes a vhost's limits into its entry.
            if isinstance(v.get("limits"), dict) and v["limits"] and v.get("name") in broker.vhosts:
                _set_vhost_limits(broker, broker.vhosts[v["name"]], v["limits"], warnings)

    def vhost_of(obj: dict[str, Any]) -> Vhost | None:
        name = only_vhost if only_vhost is not None else obj.get("vhost", "/")
        vhost = broker.vhosts.get(name)
        if vhost is None:
            warnings.append(f"{obj.get('name', obj.get('source'))!r} skipped: vhost '{name}' "
                            "does not exist")
        return vhost

    # Vhost limits (runtime parameters) before the queues, as RabbitMQ imports them.
    for p in defs.get("parameters", []):
        value = limits.parameter_limits(p)
        if value is not None:
            vhost = vhost_of(p)
            if vhost is not None:
                _set_vhost_limits(broker, vhost, value, warnings)
    # Policies before the objects they match, as RabbitMQ imports them.
    operator = defs.get("hutch", {}).get("operator_policies", []) if restoring else []
    for entries, is_op in ((defs.get("policies", []), False), (operator, True)):
        for p in entries:
            vhost = vhost_of(p)
            if vhost is None:
                continue
            if not p.get("name"):
                warnings.append(f"policy in vhost '{vhost.name}' without a name skipped")
                continue
            try:
                set_policy(vhost, make_policy(vhost.name, str(p.get("name", "")), p, is_op),
                           is_op)
            except PolicyError as exc:
                warnings.append(f"policy '{p.get('name')}' skipped: {exc}")
    store_ids = {(e["vhost"], e["name"]): int(e["id"])
                 for e in defs.get("hutch", {}).get("queue_ids", [])} if restoring else {}
    exchange_ids = {(e["vhost"], e["name"]): int(e["id"])
                    for e in defs.get("hutch", {}).get("exchange_ids", [])} if restoring else {}
    for x in defs.get("exchanges", []):
        vhost = vhost_of(x)
        name = x.get("name", "")
        if vhost is None or is_builtin_exchange(name):
            continue
        try:
            ex = vhost.declare_exchange(name, x.get("type", "direct"), False,
                                        x.get("durable", True), x.get("auto_delete", False),
                                        x.get("internal", False), dict(x.get("arguments") or {}))
        except AMQPError as exc:
            warnings.append(f"exchange '{name}' skipped: {exc.text}")
            continue
        if restoring and ex.delays and (vhost.name, name) in exchange_ids:
            ex.store.store_id = exchange_ids[(vhost.name, name)]  # its logged messages' id
    for q in defs.get("queues", []):
        vhost = vhost_of(q)
        name = q.get("name", "")
        if vhost is None or not name:
            continue
        if restoring:
            # Not a declare: neither counted as one nor checked again (it was, when
            # declared), and it keeps the id its messages in the log carry.
            if name not in vhost.queues:
                vhost.restore_queue(name, q.get("auto_delete", False),
                                    dict(q.get("arguments") or {}),
                                    store_ids.get((vhost.name, name)))
            continue
        try:
            vhost.declare_queue(name, False, q.get("durable", True), False,
                                q.get("auto_delete", False), dict(q.get("arguments") or {}), None)
        except AMQPError as exc:
            warnings.append(f"queue '{name}' skipped: {exc.text}")
    for b in defs.get("bindings", []):
        vhost = vhost_of(b)
        if vhost is None:
            continue
        source, dest = b.get("source", ""), b.get("destination", "")
        key, args = b.get("routing_key", ""), dict(b.get("arguments") or {})
        try:
            if b.get("destination_type", "queue") == "exchange":
                vhost.bind_exchange(dest, source, key, args)
            else:
                vhost.bind_queue(dest, source, key, args, None)
        except AMQPError as exc:
            warnings.append(f"binding {source} -> {dest} skipped: {exc.text}")
    for w in warnings:
        log.warning("definitions %s: %s", "file" if restoring else "import", w)
    return warnings


def _put_user(broker: Node, u: dict[str, Any], warnings: list[str]) -> None:
    name = u.get("name")
    if not isinstance(name, str) or not name:
        warnings.append(f"user without a name skipped: {u!r}")
        return
    algorithm = u.get("hashing_algorithm") or HASHING_ALGORITHM
    if "password_hash" in u:
        password_hash = u.get("password_hash") or ""
    else:  # RabbitMQ also accepts a clear-text "password" in definitions
        password_hash = hash_password(u.get("password", ""))
        algorithm = HASHING_ALGORITHM
    if not valid_password_hash(password_hash, algorithm):
        warnings.append(f"user '{name}' skipped: unsupported password hash ({algorithm})")
        return
    user = broker.users.put(name, password_hash, parse_tags(u.get("tags")), algorithm)
    if u.get("limits"):
        try:
            user.limits.update(limits.validate(u["limits"], "user"))
        except limits.LimitsError as exc:
            warnings.append(f"limits of user '{name}' skipped: {exc}")
    broker.definitions_changed()


def _set_vhost_limits(broker: Node, vhost: Vhost, value: Any, warnings: list[str]) -> None:
    try:
        vhost.limits = limits.validate(value, "vhost")
    except limits.LimitsError as exc:
        warnings.append(f"limits of vhost '{vhost.name}' skipped: {exc.args[0].strip()}")
        return
    broker.definitions_changed()


def _set_permission(broker: Node, p: dict[str, Any], warnings: list[str]) -> None:
    vname, uname = p.get("vhost"), p.get("user")
    if vname not in broker.vhosts or uname not in broker.users.users:
        warnings.append(f"permission for user '{uname}' in vhost '{vname}' skipped: "
                        "no such user or vhost")
        return
    perm = Permission(p.get("configure", ""), p.get("write", ""), p.get("read", ""))
    bad = next((e for e in map(validate_regex, (perm.configure, perm.write, perm.read)) if e),
               None)
    if bad:
        warnings.append(f"permission for user '{uname}' in vhost '{vname}' skipped: {bad}")
        return
    broker.users.set_permission(vname, uname, perm)
    broker.definitions_changed()
