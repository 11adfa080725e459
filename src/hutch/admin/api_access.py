"""Management API: overview, node, health, users, vhosts, permissions, definitions.

Everything that changes users, vhosts or permissions calls
``broker.definitions_changed()`` so the durable store writes them out.
Only ``administrator`` users may read or change users, permissions and
definitions, as in RabbitMQ (401 ``Not administrator user`` otherwise).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..broker import limits
from ..broker.definitions import permission_info, user_info
from ..broker.permissions import validate_regex
from ..broker.users import HASHING_ALGORITHM, Permission, hash_password, parse_tags, valid_password_hash
from ..protocol.state import RUNNING
from .api_history import with_history
from .definitions import DefinitionsError, export_definitions, export_vhost_definitions, import_definitions
from .http_api import ApiError, Request, Router, bad_request, json_response, no_content, not_found
from .schema import PERMISSION_PUT, USER_PUT, VHOST_PUT
from .views import node_info, node_name, overview, vhost_info


async def get_overview(req: Request) -> web.Response:
    data = overview(req.broker, req.api.rates, req.api.listeners())
    keys: list[Any] = [("overview",)]
    if not req.sees_all():
        data.update(_own_totals(req))
        keys = [("vhost", name) for name in list(req.broker.vhosts) if req.may_use_vhost(name)]
        # As RabbitMQ's overview for users who are not administrators or monitoring:
        # no node, listeners or contexts; and no message_stats, which Hutch counts for
        # the whole broker only (RabbitMQ sums the user's vhosts).
        for key in ("node", "listeners", "contexts", "message_stats"):
            data.pop(key, None)
    return json_response(with_history(req, data, keys, lengths_in="queue_totals"))


def _own_totals(req: Request) -> dict[str, Any]:
    """Object and message totals over the vhosts the user may use and its own
    connections (``rabbit_mgmt_db:get_overview(User, Range)``)."""
    rates = req.api.rates
    vhosts = [v for name, v in list(req.broker.vhosts.items()) if req.may_use_vhost(name)]
    queues = [q for v in vhosts for q in list(v.queues.values())]
    conns = [c for c in list(req.broker.connections) if c.state is RUNNING
             and c.user is not None and c.user.name == req.user.name]
    ready = sum(q.message_count for q in queues)
    unacked = sum(q.unacked_count for q in queues)
    totals = {"messages": ready + unacked, "messages_ready": ready,
              "messages_unacknowledged": unacked}
    return {
        "object_totals": {"channels": sum(len(c.channels) for c in conns),
                          "connections": len(conns),
                          "consumers": sum(len(q.consumers) for q in queues),
                          "exchanges": sum(len(v.exchanges) for v in vhosts),
                          "queues": len(queues)},
        "queue_totals": {**totals, **{f"{k}_details": {"rate": sum(
            rates.rate(("vhost", v.name), k) for v in vhosts)} for k in totals}},
    }


async def list_nodes(req: Request) -> web.Response:
    req.require_monitor()
    return json_response([node_info(req.broker, req.api.listeners(), req.api.data_dir)])


async def get_node(req: Request) -> web.Response:
    req.require_monitor()
    if req.args["name"] != node_name():
        raise not_found()
    return json_response(node_info(req.broker, req.api.listeners(), req.api.data_dir))


async def whoami(req: Request) -> web.Response:
    return json_response({"name": req.user.name, "tags": list(req.user.tags)})


# -- users ------------------------------------------------------------------------------------
async def list_users(req: Request) -> web.Response:
    req.require_admin()
    return json_response([user_info(u) for u in req.broker.users.users.values()])


def _user(req: Request) -> Any:
    user = req.broker.users.users.get(req.args["name"])
    if user is None:
        raise not_found()
    return user


async def get_user(req: Request) -> web.Response:
    req.require_admin()
    return json_response(user_info(_user(req)))


async def put_user(req: Request) -> web.Response:
    """PUT /api/users/{name}: ``password`` or ``password_hash`` (+ ``hashing_algorithm``) and ``tags``."""
    req.require_admin()
    body = await req.body(USER_PUT)
    if "tags" not in body:
        raise bad_request("tags_not_present")
    users = req.broker.users
    name = req.args["name"]
    existing = users.users.get(name)
    tags = parse_tags(body["tags"])
    algorithm = body.get("hashing_algorithm") or HASHING_ALGORITHM
    if "password" in body:
        password_hash, algorithm = hash_password(body["password"]), HASHING_ALGORITHM
    elif "password_hash" in body:
        password_hash = body["password_hash"]
        if not valid_password_hash(password_hash, algorithm):
            raise bad_request("invalid password_hash or hashing_algorithm")
    else:
        # Neither: a user who cannot log in with a password, as RabbitMQ allows; for an
        # existing user this clears the password, as RabbitMQ 3.10 and 4.x do.
        password_hash = ""
    new_limits = None
    if body.get("limits") is not None:  # as RabbitMQ 3.10+: merged into the user's
        try:
            new_limits = limits.validate(body["limits"], "user")
        except limits.LimitsError as exc:
            raise bad_request(str(exc)) from None
    user = users.put(name, password_hash, tags, algorithm)
    if new_limits:
        user.limits.update(new_limits)
    req.broker.definitions_changed()
    return no_content(created=existing is None)


async def delete_user(req: Request) -> web.Response:
    req.require_admin()
    name = _user(req).name
    req.broker.users.delete(name)
    req.broker.definitions_changed()
    return no_content()


async def user_permissions(req: Request) -> web.Response:
    req.require_admin()
    name = _user(req).name
    return json_response([permission_info(v, u, p) for (v, u), p
                          in req.broker.users.permissions.items() if u == name])


# -- vhosts ------------------------------------------------------------------------------------
async def list_vhosts(req: Request) -> web.Response:
    broker = req.broker
    return json_response([vhost_info(broker, v, req.api.rates) for name, v
                          in list(broker.vhosts.items()) if req.sees_vhost(name)])


async def get_vhost(req: Request) -> web.Response:
    req.require_admin()  # as RabbitMQ 3.10's rabbit_mgmt_wm_vhost, even for its own users
    vhost = req.vhost(req.args["name"])
    return json_response(with_history(req, vhost_info(req.broker, vhost, req.api.rates),
                                      [("vhost", vhost.name)]))


async def put_vhost(req: Request) -> web.Response:
    req.require_admin()
    body = await req.body(VHOST_PUT)
    # What Hutch cannot do is refused rather than accepted and ignored: message tracing
    # (RabbitMQ's firehose) and a default queue type other than classic (RabbitMQ 4.x
    # declares the vhost's queues with it; 3.10 accepts it and reports "undefined").
    if body.get("tracing") is True:
        raise bad_request("Hutch has no message tracing (the firehose): tracing must be false")
    dqt = body.get("default_queue_type")
    if dqt not in (None, "classic", "undefined"):
        raise bad_request(f"Hutch does not apply a default queue type ({dqt!r}): leave it out or "
                          "use 'classic', and declare queues with x-queue-type")
    tags = body.get("tags", [])
    tags = [t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str) else tags
    name = req.args["name"]
    existed = name in req.broker.vhosts
    vhost = req.broker.add_vhost(name)  # calls definitions_changed() when it creates one
    # As RabbitMQ: a PUT replaces the metadata (what it leaves out becomes empty).
    description = body.get("description", "")
    if (vhost.description, vhost.tags) != (description, list(tags)):
        vhost.description, vhost.tags = description, list(tags)
        req.broker.definitions_changed()
    if not existed:
        # Like RabbitMQ's management plugin: the creator gets full permissions there.
        req.broker.users.set_permission(name, req.user.name, Permission())
        req.broker.definitions_changed()
    return no_content(created=not existed)


async def delete_vhost(req: Request) -> web.Response:
    req.require_admin()
    if not req.broker.delete_vhost(req.args["name"]):
        raise not_found()
    return no_content()


async def vhost_permissions(req: Request) -> web.Response:
    req.require_admin()
    name = req.vhost(req.args["name"]).name
    return json_response([permission_info(v, u, p) for (v, u), p
                          in req.broker.users.permissions.items() if v == name])


# -- permissions ----------------------------------------------------------------------------------
async def list_permissions(req: Request) -> web.Response:
    req.require_admin()
    return json_response([permission_info(v, u, p) for (v, u), p
                          in req.broker.users.permissions.items()])


async def get_permission(req: Request) -> web.Response:
    req.require_admin()
    vhost, user = req.args["vhost"], req.args["user"]
    perm = req.broker.users.permissions.get((vhost, user))
    if perm is None:
        raise not_found()
    return json_response(permission_info(vhost, user, perm))


async def put_permission(req: Request) -> web.Response:
    req.require_admin()
    body = await req.body(PERMISSION_PUT)
    vhost, user = req.args["vhost"], req.args["user"]
    users = req.broker.users
    if vhost not in req.broker.vhosts or user not in users.users:
        raise bad_request("vhost_or_user_not_found")
    perm = Permission(body["configure"], body["write"], body["read"])
    for regex in (perm.configure, perm.write, perm.read):
        error = validate_regex(regex)
        if error:
            raise bad_request(error)
    existed = (vhost, user) in users.permissions
    users.set_permission(vhost, user, perm)
    req.broker.definitions_changed()
    return no_content(created=not existed)


async def delete_permission(req: Request) -> web.Response:
    req.require_admin()
    if not req.broker.users.clear_permission(req.args["vhost"], req.args["user"]):
        raise not_found()
    req.broker.definitions_changed()
    return no_content()


# -- definitions -----------------------------------------------------------------------------------
async def get_definitions(req: Request) -> web.Response:
    req.require_admin()
    if "vhost" in req.args:
        return json_response(export_vhost_definitions(req.broker, req.vhost()))
    return json_response(export_definitions(req.broker))


def _missing_vhost(broker: Any, defs: dict[str, Any]) -> str | None:
    """The first vhost a queue, exchange or permission of ``defs`` names that neither
    exists nor is created by the file (bindings are not checked, as in RabbitMQ)."""
    def items(kind: str) -> list[Any]:
        # Not checked yet (import_definitions checks the shapes): a wrong one is its 400.
        value = defs.get(kind)
        return value if isinstance(value, list) else []

    known = set(broker.vhosts) | {v.get("name") for v in items("vhosts") if isinstance(v, dict)}
    for kind in ("queues", "exchanges", "permissions"):
        for obj in items(kind):
            if isinstance(obj, dict) and obj.get("vhost", "/") not in known:
                return str(obj.get("vhost"))
    return None


async def post_definitions(req: Request) -> web.Response:
    req.require_admin()
    only = req.vhost().name if "vhost" in req.args else None
    body = await req.body()
    missing = _missing_vhost(req.broker, body) if only is None else None
    if missing is not None:
        # RabbitMQ's answer (rabbit_definitions: a queue, exchange or permission in a vhost
        # that neither exists nor is in the file); Hutch refuses before changing anything.
        raise ApiError(400, "bad_request", ["no_such_vhost", missing])  # type: ignore[arg-type]
    try:
        import_definitions(req.broker, body, only_vhost=only)
    except DefinitionsError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    return no_content()


PERMISSION_SORT = ("vhost", "user")


def register(router: Router) -> None:
    add = router.add
    add("GET", "overview", get_overview)
    add("GET", "nodes", list_nodes)
    add("GET", "nodes/{name}", get_node)
    add("GET", "whoami", whoami)
    add("GET", "users", list_users)
    add("GET", "users/{name}", get_user)
    add("PUT", "users/{name}", put_user)
    add("DELETE", "users/{name}", delete_user)
    add("GET", "users/{name}/permissions", user_permissions, sort=PERMISSION_SORT)
    add("GET", "vhosts", list_vhosts, sort=("name",), paged=True)
    add("GET", "vhosts/{name}", get_vhost)
    add("PUT", "vhosts/{name}", put_vhost)
    add("DELETE", "vhosts/{name}", delete_vhost)
    add("GET", "vhosts/{name}/permissions", vhost_permissions, sort=PERMISSION_SORT)
    add("GET", "permissions", list_permissions, sort=PERMISSION_SORT)
    add("GET", "permissions/{vhost}/{user}", get_permission)
    add("PUT", "permissions/{vhost}/{user}", put_permission)
    add("DELETE", "permissions/{vhost}/{user}", delete_permission)
    add("GET", "definitions", get_definitions)
    add("POST", "definitions", post_definitions)
    add("GET", "definitions/{vhost}", get_definitions)
    add("POST", "definitions/{vhost}", post_definitions)
