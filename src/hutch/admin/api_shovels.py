"""``/api/parameters/shovel/...`` and ``/api/shovels``: RabbitMQ's dynamic shovels as the
management UI's "Move messages" uses them (shovel.py does the moving).

Who may do what, as RabbitMQ: parameters need an administrator, or a policymaker
with access to the vhost (``is_authorized_policies``: 401 ``User not authorised to
access object``); the shovel status list needs a monitoring user or an
administrator (``is_authorized_monitor``).  Creating a move also asks what
RabbitMQ's shovel would ask of the user's connection: read on the source queue,
write on the destination exchange (the default one for ``dest-queue``) and
configure on a queue it has to declare.  Only the ``shovel`` component exists.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..broker.permissions import CONFIGURE, READ, WRITE
from ..errors import ChannelError
from ..protocol import constants as rc
from .http_api import ApiError, Request, Router, bad_request, json_response, no_content, not_found
from .shovel import Move, Mover, ShovelError, plan
from .views import node_name

COMPONENT = "shovel"


class Shovels:
    """The shovel parameters of this broker and their moves (not kept across a restart)."""

    def __init__(self, broker: Any) -> None:
        self.moves: dict[tuple[str, str], Move] = {}
        self.mover = Mover(broker, self._finished)

    def _finished(self, move: Move) -> None:
        """A one-shot move is done: its parameter goes, as with src-delete-after."""
        if self.moves.get((move.vhost, move.name)) is move:
            del self.moves[(move.vhost, move.name)]

    def remove(self, vhost: str, name: str) -> bool:
        move = self.moves.pop((vhost, name), None)
        if move is None:
            return False
        if move.task is not None and not move.task.done():
            move.task.cancel()  # its taken messages go back to the source
        return True


def shovels(req: Request) -> Shovels:
    api = req.api
    registry = getattr(api, "shovels", None)
    if registry is None:
        registry = Shovels(api.broker)
        setattr(api, "shovels", registry)  # noqa: B010 - made on first use
    return registry


def _component(req: Request) -> None:
    if req.args.get("component", COMPONENT) != COMPONENT:
        raise not_found()


def _authorise(req: Request) -> None:
    """is_authorized_policies: an administrator, or a policymaker (with access to the
    vhost the URL names)."""
    if req.is_admin():
        return
    vhost = req.args.get("vhost")
    if "policymaker" in req.user.tags and (vhost is None or req.has_vhost_access(vhost)):
        return
    raise req.deny("User not authorised to access object")


def _visible(req: Request) -> list[Move]:
    vhost = req.args.get("vhost")
    if vhost is not None:
        req.vhost()
    return [m for m in list(shovels(req).moves.values())
            if (vhost is None or m.vhost == vhost) and req.may_use_vhost(m.vhost)]


async def list_parameters(req: Request) -> web.Response:
    _authorise(req)
    if "component" in req.args and req.args["component"] != COMPONENT:
        if "vhost" in req.args:
            req.vhost()
        return json_response([])
    return json_response([m.parameter() for m in _visible(req)])


async def get_parameter(req: Request) -> web.Response:
    _authorise(req)
    _component(req)
    move = shovels(req).moves.get((req.vhost().name, req.args["name"]))
    if move is None:
        raise not_found()
    return json_response(move.parameter())


def _check_access(req: Request, move: Move) -> None:
    """What the shovel's connection, made as this user, would need."""
    p = move.plan
    with req.amqp("Shovel error"):
        for vhost_name in {p.src_vhost, p.dest_vhost}:
            if vhost_name not in req.broker.vhosts:
                raise ChannelError(rc.NOT_FOUND, f"no vhost '{vhost_name}'")
            if not req.has_vhost_access(vhost_name):
                raise ChannelError(rc.ACCESS_REFUSED, f"access to vhost '{vhost_name}' refused "
                                   f"for user '{req.user.name}'")
        src = req.broker.vhosts[p.src_vhost]
        dest = req.broker.vhosts[p.dest_vhost]
        req.access(src).check("queue", p.src_queue, READ)
        if p.src_queue not in src.queues:
            if not p.src_declare:
                raise ChannelError(rc.NOT_FOUND, f"no queue '{p.src_queue}' in vhost "
                                   f"'{p.src_vhost}'")
            req.access(src).check("queue", p.src_queue, CONFIGURE)
        if p.dest_queue is not None:
            req.access(dest).check("exchange", "", WRITE)
            if p.dest_queue not in dest.queues:
                if not p.dest_declare:
                    raise ChannelError(rc.NOT_FOUND, f"no queue '{p.dest_queue}' in vhost "
                                       f"'{p.dest_vhost}'")
                req.access(dest).check("queue", p.dest_queue, CONFIGURE)
        else:
            exchange = p.dest_exchange or ""
            if exchange and exchange not in dest.exchanges:
                raise ChannelError(rc.NOT_FOUND, f"no exchange '{exchange}' in vhost "
                                   f"'{p.dest_vhost}'")
            req.access(dest).check("exchange", exchange, WRITE)


MAX_MOVES = 100  # moves running at once, per broker


async def put_parameter(req: Request) -> web.Response:
    _authorise(req)
    _component(req)
    name = req.args["name"]
    vhost_name = req.args["vhost"]
    if vhost_name not in req.broker.vhosts:
        raise ApiError(404, "not_found", "vhost_not_found")
    vhost = req.vhost()
    body = await req.body()
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    value = body["value"]
    try:
        move = Move(vhost.name, name, value, plan(name, vhost.name, value))
    except ShovelError as exc:
        raise bad_request(str(exc)) from None
    _check_access(req, move)
    registry = shovels(req)
    if (vhost.name, name) not in registry.moves and len(registry.moves) >= MAX_MOVES:
        # A guard RabbitMQ lacks: each move is a task of the broker's own loop.
        raise bad_request(f"{MAX_MOVES} moves are running already: wait for one to end "
                          "or delete one (DELETE /api/parameters/shovel/VHOST/NAME)")
    existed = registry.remove(vhost.name, name)  # a new definition restarts it, as RabbitMQ
    registry.moves[(vhost.name, name)] = move
    registry.mover.start(move)
    return no_content(created=not existed)


async def delete_parameter(req: Request) -> web.Response:
    _authorise(req)
    _component(req)
    if not shovels(req).remove(req.vhost().name, req.args["name"]):
        raise not_found()
    return no_content()


async def list_shovels(req: Request) -> web.Response:
    req.require_monitor()
    node = node_name()
    return json_response([m.status(node) for m in _visible(req)])


async def delete_shovel(req: Request) -> web.Response:
    """``DELETE /api/shovels/vhost/{vhost}/{name}`` (the shovel UI's Delete)."""
    _authorise(req)
    if not shovels(req).remove(req.vhost().name, req.args["name"]):
        raise not_found()
    return no_content()


async def get_shovel(req: Request) -> web.Response:
    """``GET /api/shovels/vhost/{vhost}/{name}``: one shovel's status, 404 when none."""
    req.require_monitor()
    vhost = req.vhost().name
    move = shovels(req).moves.get((vhost, req.args["name"]))
    if move is None:
        raise not_found()
    return json_response(move.status(node_name()))


def register(router: Router) -> None:
    add = router.add
    add("GET", "parameters", list_parameters)
    add("GET", "parameters/{component}", list_parameters)
    add("GET", "parameters/{component}/{vhost}", list_parameters)
    add("GET", "parameters/{component}/{vhost}/{name}", get_parameter)
    add("PUT", "parameters/{component}/{vhost}/{name}", put_parameter)
    add("DELETE", "parameters/{component}/{vhost}/{name}", delete_parameter)
    add("GET", "shovels", list_shovels)
    add("GET", "shovels/{vhost}", list_shovels)
    add("GET", "shovels/vhost/{vhost}/{name}", get_shovel)
    add("DELETE", "shovels/vhost/{vhost}/{name}", delete_shovel)
