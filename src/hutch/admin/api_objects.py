"""Management API: queues, exchanges, bindings, connections, channels, consumers.

Status codes as RabbitMQ 3.10 answers: PUT creating an object 201, PUT of an
existing (equivalent) one 204, DELETE 204, unknown object 404, an AMQP-level
refusal (inequivalent arguments ...) 400 with the AMQP text after its
``CODE - `` prefix as the reason.

Every operation on a queue or exchange is checked with the user's vhost
permissions, exactly as the same AMQP method would be (``Request.access``,
``Request.amqp`` in http_api.py): declare/delete need configure, publish
write on the exchange, get and purge read on the queue, (un)bind write on
the destination and read on the source.  As in RabbitMQ, a DELETE of a
missing object is 404 before any permission check, while PUT, publish, get
and bind check permissions first.  Lists show only the vhosts the user may
use; connections, channels and consumers only the user's own unless it is
an administrator or a monitoring user.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from ..broker.message import Message
from ..broker.permissions import CONFIGURE, READ, WRITE
from ..broker.vhost import ROUTED
from ..errors import ChannelError, HardError
from ..protocol import constants as rc
from ..protocol.frames import content_header_payload
from ..protocol.properties import encode_properties
from ..protocol.state import CLOSING, RUNNING
from ..server.counters import totals_for, vhost_totals_for
from .api_history import with_history
from .http_api import (
    ApiError,
    Request,
    Router,
    bad_request,
    json_response,
    log,
    no_content,
    not_found,
)
from .render import message_properties, to_json
from .schema import BINDING_POST, EXCHANGE_PUT, GET_MESSAGES, PUBLISH, QUEUE_PUT
from .views import (
    binding_info,
    channel_info,
    channel_name,
    connection_info,
    consumer_info,
    exchange_info,
    exchange_key,
    properties_key,
    queue_detail,
    queue_info,
    queue_key,
    vhost_bindings,
)


def _flag(value: Any, default: bool = False) -> bool:
    """A query-string flag (``?if-unused=true``)."""
    if value is None:
        return default
    return value.lower() == "true"


def _visible_vhosts(req: Request) -> list[Any]:
    """The vhosts whose objects a list shows (RabbitMQ's ``filter_vhost``)."""
    return [v for name, v in list(req.broker.vhosts.items()) if req.may_use_vhost(name)]


def _target_vhost(req: Request) -> Any:
    """The vhost a PUT declares in: 401 without access, then 404 ``vhost_not_found``."""
    vhost = req.broker.vhosts.get(req.args["vhost"])
    if vhost is None:
        raise ApiError(404, "not_found", "vhost_not_found")
    return req.vhost()


def _channel_vhost(req: Request, what: str) -> Any:
    """The vhost of a get/publish, which RabbitMQ runs on an AMQP connection of the
    user's own: a missing vhost, or one where an administrator has no permissions,
    refuses that connection (401 ``Access refused.``)."""
    name = req.args["vhost"]
    vhost = req.broker.vhosts.get(name)
    if vhost is not None:
        req.vhost()  # 401 for a user who may not use it at all
    if vhost is None or not req.has_vhost_access(name):
        log.warning("%s: access to vhost '%s' refused for user '%s'", what, name,
                    req.user.name)
        raise ApiError(401, "not_authorised", "Access refused.")
    return vhost


# -- queues --------------------------------------------------------------------------------
async def list_queues(req: Request) -> web.Response:
    vhosts = [req.vhost()] if "vhost" in req.args else _visible_vhosts(req)
    rates = req.api.rates
    return json_response([queue_info(q, rates) for v in vhosts for q in list(v.queues.values())])


def _queue(req: Request) -> Any:
    q = req.vhost().queues.get(req.args["name"])
    if q is None:
        raise not_found()
    return q


async def get_queue(req: Request) -> web.Response:
    q = _queue(req)
    return json_response(with_history(req, queue_detail(q, req.api.rates), [queue_key(q)],
                                      ceil_lengths=True))


async def put_queue(req: Request) -> web.Response:
    vhost = _target_vhost(req)
    body = await req.body(QUEUE_PUT)
    name = req.args["name"]
    arguments = dict(body.get("arguments", {}))
    if body.get("type") and "x-queue-type" not in arguments:
        arguments["x-queue-type"] = body["type"]
    existed = name in vhost.queues
    with req.amqp("Declare queue error"):
        req.access(vhost).check_queue_declare(name, arguments)
        vhost.declare_queue(name, False, body.get("durable", False), False,
                            body.get("auto_delete", False), arguments, None)
    return no_content(created=not existed)


async def delete_queue(req: Request) -> web.Response:
    q = _queue(req)
    query = req.http.query
    with req.amqp("Delete queue error"):
        req.access(q.vhost).check("queue", q.name, CONFIGURE)
        q.vhost.check_exclusive(q, None)  # another connection's exclusive queue: 400, as RabbitMQ
        if _flag(query.get("if-unused")) and q.consumers:
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"queue '{q.name}' in vhost '{q.vhost.name}' in use")
        if _flag(query.get("if-empty")) and (q.message_count or q.unacked_count):
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"queue '{q.name}' in vhost '{q.vhost.name}' not empty")
        q.vhost.delete_queue(q)
    return no_content()


async def purge_queue(req: Request) -> web.Response:
    q = _queue(req)
    with req.amqp("Error purging queue"):
        req.access(q.vhost).check("queue", q.name, READ)
        q.vhost.check_exclusive(q, None)
        q.purge()
    return no_content()


def _payload(body: bytes, encoding: str, truncate: int | None) -> tuple[str, str]:
    if truncate is not None:
        body = body[:truncate]
    if encoding == "auto":
        try:
            return body.decode("utf-8"), "string"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), "base64"


async def get_messages(req: Request) -> web.Response:
    """POST /api/queues/{vhost}/{name}/get: basic.get ``count`` messages, then settle them.

    Needs read on the queue, as basic.get does, whatever the ackmode (RabbitMQ's
    ``ack_requeue_false`` is a basic.get with no_ack, which asks nothing more)."""
    vhost = _channel_vhost(req, "Get messages error")
    body = await req.body(GET_MESSAGES)
    ackmode = body.get("ackmode", "ack_requeue_true")
    if "requeue" in body and "ackmode" not in body:  # pre-3.7 clients
        ackmode = "ack_requeue_true" if body["requeue"] else "ack_requeue_false"
    encoding = body.get("encoding", "auto")
    count = body.get("count", 1)
    truncate = body.get("truncate")
    name = req.args["name"]
    with req.amqp("Get messages error", style="channel"):
        req.access(vhost).check("queue", name, READ)
        q = vhost.queues.get(name)
        if q is None:
            raise ChannelError(rc.NOT_FOUND, f"no queue '{name}' in vhost '{vhost.name}'")
        vhost.check_exclusive(q, None)  # 400 "405 RESOURCE_LOCKED - ...", as RabbitMQ
        q.check_get()
    taken: list[Message] = []
    out = []
    try:
        for _ in range(max(count, 0)):
            msg = q.get(no_ack=False)
            if msg is None:
                break
            taken.append(msg)
            payload, payload_encoding = _payload(msg.body, encoding, truncate)
            out.append({
                "payload_bytes": len(msg.body),
                "redelivered": msg.redelivered,
                "exchange": msg.exchange,
                "routing_key": msg.routing_key,
                "message_count": q.message_count,
                "properties": message_properties(msg.header),
                "payload": payload,
                "payload_encoding": payload_encoding,
            })
    finally:
        # In the broker's message counts as RabbitMQ has them: its management plugin gets
        # through a channel (ack_requeue_false is a basic.get with no_ack).
        for totals in (totals_for(req.broker), vhost_totals_for(vhost)):
            if ackmode == "ack_requeue_false":
                totals.get_no_ack += len(taken)
            else:
                totals.get += len(taken)
            if len(taken) < count:
                totals.get_empty += 1
        # Settled whatever happens above: a message taken must never stay unacked.
        if ackmode.endswith("requeue_true"):
            # A failed delivery for the delivery limit (RabbitMQ 4.3): reject_requeue_true
            # is basic.reject with requeue, ack_requeue_true closes the channel holding it.
            if taken:
                q.requeue(taken, failed=True)
        else:
            for msg in taken:
                q.ack(msg) if ackmode.startswith("ack") else q.reject(msg)
    # Properties are whatever publishers sent, nested to any depth (render.py).
    return web.Response(text=to_json(out), content_type="application/json")


async def queue_bindings(req: Request) -> web.Response:
    q = _queue(req)
    return json_response([b for b in vhost_bindings(q.vhost)
                          if b["destination_type"] == "queue" and b["destination"] == q.name])


# -- exchanges -----------------------------------------------------------------------------
async def list_exchanges(req: Request) -> web.Response:
    vhosts = [req.vhost()] if "vhost" in req.args else _visible_vhosts(req)
    rates = req.api.rates
    return json_response([exchange_info(ex, rates) for v in vhosts
                          for ex in list(v.exchanges.values())])


def _exchange(req: Request) -> Any:
    name = req.args["name"]
    ex = req.vhost().exchanges.get("" if name == "amq.default" else name)
    if ex is None:
        raise not_found()
    return ex


async def get_exchange(req: Request) -> web.Response:
    ex = _exchange(req)
    return json_response(with_history(req, exchange_info(ex, req.api.rates), [exchange_key(ex)]))


async def put_exchange(req: Request) -> web.Response:
    vhost = _target_vhost(req)
    body = await req.body(EXCHANGE_PUT)
    name = req.args["name"]
    arguments = dict(body.get("arguments", {}))
    existed = name in vhost.exchanges
    with req.amqp("Declare exchange error"):
        req.access(vhost).check_exchange_declare(name, arguments)
        vhost.declare_exchange(name, body.get("type", "direct"), False,
                               body.get("durable", False), body.get("auto_delete", False),
                               body.get("internal", False), arguments)
    return no_content(created=not existed)


async def delete_exchange(req: Request) -> web.Response:
    ex = _exchange(req)
    with req.amqp("Delete exchange error"):
        req.access(ex.vhost).check_exchange_delete(ex.name)
        ex.vhost.delete_exchange(ex.name, _flag(req.http.query.get("if-unused")))
    return no_content()


async def publish(req: Request) -> web.Response:
    """POST /api/exchanges/{vhost}/{name}/publish -> {"routed": bool}; needs write on
    the exchange, as basic.publish does."""
    vhost = _channel_vhost(req, "Publish error")
    body = await req.body(PUBLISH)
    if body["payload_encoding"] == "string":
        data = body["payload"].encode("utf-8")
    else:
        try:
            data = base64.b64decode(body["payload"], validate=True)
        except ValueError:
            raise bad_request("invalid base64 payload") from None
    name = "" if req.args["name"] == "amq.default" else req.args["name"]
    with req.amqp("Publish error", style="async"):
        req.access(vhost).check("exchange", name, WRITE)
        ex = vhost.exchanges.get(name)
        if ex is None:
            raise ChannelError(rc.NOT_FOUND, f"no exchange '{name}' in vhost '{vhost.name}'")
    props = dict(body["properties"])
    try:
        header = content_header_payload(len(data), encode_properties(props))
    except Exception as exc:
        raise bad_request(f"invalid properties: {exc}") from None
    persistent = props.get("delivery_mode") == 2
    expires_at = None
    if props.get("expiration") is not None:
        try:
            expires_at = time.monotonic() + int(props["expiration"]) / 1000.0
        except ValueError:
            raise bad_request("invalid expiration") from None
    routing_key = body.get("routing_key", "")
    # The one publish path (routing, delayed exchanges, each queue's overflow policy), as
    # for basic.publish; no publishing connection to hold back (``fed`` is thrown away).
    try:
        result = vhost.publish(name, routing_key, header, data, persistent, expires_at, set())
        totals_for(req.broker).publish += 1  # counted as a channel's publish is
        vhost_totals_for(vhost).publish += 1
    except HardError as exc:  # an x-delay string that is not an integer
        raise bad_request(exc.text.split(" - ", 1)[-1]) from None
    return json_response({"routed": bool(result & ROUTED)})


async def exchange_bindings(req: Request) -> web.Response:
    ex = _exchange(req)
    side = req.args["side"]
    if side not in ("source", "destination"):
        raise not_found()
    bindings = vhost_bindings(ex.vhost)
    if side == "source":
        out = [b for b in bindings if b["source"] == ex.name]
    else:
        out = [b for b in bindings if b["destination_type"] == "exchange"
               and b["destination"] == ex.name]
    return json_response(out)


# -- bindings --------------------------------------------------------------------------------
async def list_bindings(req: Request) -> web.Response:
    vhosts = [req.vhost()] if "vhost" in req.args else _visible_vhosts(req)
    return json_response([b for v in vhosts for b in vhost_bindings(v)])


def _binding_endpoints(req: Request) -> tuple[Any, str, str, str]:
    kind = req.args["kind"]
    if kind not in ("q", "e"):
        raise not_found()
    vhost = req.vhost()
    source = "" if req.args["source"] == "amq.default" else req.args["source"]
    return vhost, source, req.args["dest"], "queue" if kind == "q" else "exchange"


def _matching(req: Request) -> list[dict[str, Any]]:
    vhost, source, dest, dtype = _binding_endpoints(req)
    return [b for b in vhost_bindings(vhost) if b["source"] == source
            and b["destination"] == dest and b["destination_type"] == dtype]


async def list_binding_pair(req: Request) -> web.Response:
    vhost, source, dest, dtype = _binding_endpoints(req)
    if source not in vhost.exchanges or (dest not in (vhost.queues if dtype == "queue"
                                                      else vhost.exchanges)):
        raise not_found()
    return json_response(_matching(req))


async def create_binding(req: Request) -> web.Response:
    vhost, source, dest, dtype = _binding_endpoints(req)
    body = await req.body(BINDING_POST)
    key = body.get("routing_key", "")
    args = dict(body.get("arguments", {}))
    with req.amqp("Binding error"):
        req.access(vhost).check_binding(dtype, dest, source)
        if dtype == "queue":
            vhost.bind_queue(dest, source, key, args, None)
        else:
            vhost.bind_exchange(dest, source, key, args)
    response = no_content(created=True)
    # RabbitMQ encodes the (already encoded) properties key once more here.
    response.headers["Location"] = f"{quote(dest, safe='')}/{quote(properties_key(key, args), safe='')}"
    return response


def _binding(req: Request) -> dict[str, Any]:
    for b in _matching(req):
        # The router decoded the URL segment; properties_key is the encoded form.
        if unquote(b["properties_key"]) == req.args["props"]:
            return b
    raise not_found()


async def get_binding(req: Request) -> web.Response:
    return json_response(_binding(req))


async def delete_binding(req: Request) -> web.Response:
    b = _binding(req)
    vhost, source, dest, dtype = _binding_endpoints(req)
    ex = vhost.exchanges.get(source)
    if ex is not None:
        for binding in list(ex.bindings.values()):
            d = binding.destination
            info = binding_info(vhost.name, source, d.name,
                                "exchange" if d.is_exchange else "queue",
                                binding.routing_key, binding.arguments)
            if info == b:
                with req.amqp("Unbinding error"):
                    req.access(vhost).check_binding(dtype, dest, source)
                    if dtype == "queue":
                        vhost.unbind_queue(dest, source, binding.routing_key, binding.arguments,
                                           None)
                    else:
                        vhost.unbind_exchange(dest, source, binding.routing_key,
                                              binding.arguments)
                break
    return no_content()


# -- connections, channels, consumers ---------------------------------------------------------------
def _all_connections(req: Request) -> list[Any]:
    conns = [c for c in list(req.broker.connections) if c.state in (RUNNING, CLOSING)
             and c.user is not None and c.vhost is not None]
    return sorted(conns, key=lambda c: c.connected_at)


def _connections(req: Request) -> list[Any]:
    """What a list shows: the user's own connections unless it is an administrator or
    a monitoring user (``filter_conn_ch_list``)."""
    conns = _all_connections(req)
    if "vhost" in req.args:
        vhost = req.vhost()
        conns = [c for c in conns if c.vhost is vhost]
    if not req.sees_all():
        conns = [c for c in conns if c.user.name == req.user.name]
    return conns


def _authorise_object(req: Request, owner: str) -> None:
    """One connection or channel (``is_authorized_user``): its owner may see and
    close it; monitoring users may see any; only administrators close others'."""
    allowed = req.is_admin() if req.http.method == "DELETE" else req.sees_all()
    if not allowed and owner != req.user.name:
        raise req.deny("User not authorised to access object")


async def list_connections(req: Request) -> web.Response:
    return json_response([connection_info(c, req.api.rates) for c in _connections(req)])


def _connection(req: Request) -> Any:
    for c in _all_connections(req):
        if c.name == req.args["name"]:
            _authorise_object(req, c.user.name)
            return c
    raise not_found()


async def get_connection(req: Request) -> web.Response:
    return json_response(connection_info(_connection(req), req.api.rates))


async def close_connection(req: Request) -> web.Response:
    """DELETE: connection.close 320, the reason from the X-Reason header as RabbitMQ does."""
    conn = _connection(req)
    reason = req.http.headers.get("X-Reason", "Closed via management plugin")
    conn.close(rc.CONNECTION_FORCED, f"CONNECTION_FORCED - {reason}")
    return no_content()


async def connection_channels(req: Request) -> web.Response:
    conn = _connection(req)
    return json_response([channel_info(ch, req.api.rates) for ch in list(conn.channels.values())])


def _channels(req: Request) -> list[Any]:
    return [ch for c in _connections(req) for ch in list(c.channels.values())]


async def list_channels(req: Request) -> web.Response:
    return json_response([channel_info(ch, req.api.rates) for ch in _channels(req)])


async def get_channel(req: Request) -> web.Response:
    for c in _all_connections(req):
        for ch in list(c.channels.values()):
            if channel_name(ch) == req.args["name"]:
                _authorise_object(req, c.user.name)
                return json_response(with_history(req, channel_info(ch, req.api.rates),
                                                  [("channel", id(ch))]))
    raise not_found()


async def list_consumers(req: Request) -> web.Response:
    """Consumers of every vhost (or the one named: 404 if missing, but no access check,
    as RabbitMQ's ``rabbit_mgmt_wm_consumers``), only those on the user's own channels
    unless it is an administrator or a monitoring user."""
    if "vhost" in req.args:
        vhost = req.broker.vhosts.get(req.args["vhost"])
        if vhost is None:
            raise not_found()
        vhosts = [vhost]
    else:
        vhosts = list(req.broker.vhosts.values())
    mine = None if req.sees_all() else req.user.name
    return json_response([consumer_info(c) for v in vhosts for q in list(v.queues.values())
                          for c in list(q.consumers)
                          if mine is None or _owner(c.channel.conn) == mine])


def _owner(conn: Any) -> str:
    return conn.user.name if conn.user is not None else ""


# rabbit_mgmt_wm_bindings' default sort ("type" is no field: it sorts as 0).
BINDING_SORT = ("vhost", "source", "type", "destination", "routing_key", "properties_key")


def register(router: Router) -> None:
    """Lists are sorted and take ``columns``/``sort``; ``paged`` ones also ``page`` etc.,
    as in RabbitMQ 3.10 (listing.py)."""
    add = router.add
    add("GET", "queues", list_queues, paged=True)
    add("GET", "queues/{vhost}", list_queues, paged=True)
    add("GET", "queues/{vhost}/{name}", get_queue)
    add("PUT", "queues/{vhost}/{name}", put_queue)
    add("DELETE", "queues/{vhost}/{name}", delete_queue)
    add("DELETE", "queues/{vhost}/{name}/contents", purge_queue)
    add("POST", "queues/{vhost}/{name}/get", get_messages)
    add("GET", "queues/{vhost}/{name}/bindings", queue_bindings, sort=BINDING_SORT)
    add("GET", "exchanges", list_exchanges, paged=True)
    add("GET", "exchanges/{vhost}", list_exchanges, paged=True)
    add("GET", "exchanges/{vhost}/{name}", get_exchange)
    add("PUT", "exchanges/{vhost}/{name}", put_exchange)
    add("DELETE", "exchanges/{vhost}/{name}", delete_exchange)
    add("POST", "exchanges/{vhost}/{name}/publish", publish)
    add("GET", "exchanges/{vhost}/{name}/bindings/{side}", exchange_bindings, sort=BINDING_SORT)
    add("GET", "bindings", list_bindings, sort=BINDING_SORT)
    add("GET", "bindings/{vhost}", list_bindings, sort=BINDING_SORT)
    add("GET", "bindings/{vhost}/e/{source}/{kind}/{dest}", list_binding_pair, sort=BINDING_SORT)
    add("POST", "bindings/{vhost}/e/{source}/{kind}/{dest}", create_binding)
    add("GET", "bindings/{vhost}/e/{source}/{kind}/{dest}/{props}", get_binding)
    add("DELETE", "bindings/{vhost}/e/{source}/{kind}/{dest}/{props}", delete_binding)
    add("GET", "connections", list_connections, paged=True)
    add("GET", "vhosts/{vhost}/connections", list_connections)
    add("GET", "connections/{name}", get_connection)
    add("DELETE", "connections/{name}", close_connection)
    add("GET", "connections/{name}/channels", connection_channels)
    add("GET", "channels", list_channels, paged=True)
    add("GET", "vhosts/{vhost}/channels", list_channels)
    add("GET", "channels/{name}", get_channel)
    add("GET", "consumers", list_consumers)
    add("GET", "consumers/{vhost}", list_consumers)
