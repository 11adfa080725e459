"""``/api/vhost-limits`` and ``/api/user-limits``, as RabbitMQ's management plugin serves
them (rabbit_mgmt_wm_limits / _limit / _user_limits / _user_limit, 4.x; the shapes and
texts checked against 3.10.8):

  GET    /api/vhost-limits[/{vhost}]        [{"vhost": V, "value": {"max-queues": 10}}]
  PUT    /api/vhost-limits/{vhost}/{name}   {"value": 10}   (one limit; the others stay)
  DELETE /api/vhost-limits/{vhost}/{name}
  GET    /api/user-limits[/{user}]          [{"user": U, "value": {"max-channels": 5}}]
  PUT    /api/user-limits/{user}/{name}     {"value": 5}
  DELETE /api/user-limits/{user}/{name}

The lists admit any management user (``is_authorized_vhost_visible``; vhost limits of
the vhosts the user sees, user limits of everyone, as RabbitMQ); changes need an
administrator.  A refused value is 400 with RabbitMQ's validation text
(broker/limits.validate).  Where RabbitMQ answers 500 (DELETE for a vhost or user
that does not exist) Hutch answers 404.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..broker import limits
from .http_api import ApiError, Request, Router, bad_request, json_response, no_content, not_found
from .schema import Schema

LIMIT_PUT = Schema({"value": lambda name, value: value}, required=("value",))


# -- vhost limits ------------------------------------------------------------------------------
async def list_vhost_limits(req: Request) -> web.Response:
    if "vhost" in req.args:
        vhost = req.broker.vhosts.get(req.args["vhost"])
        if vhost is None:
            raise not_found()
        if not req.sees_vhost(vhost.name):
            raise req.deny("User not authorised to access virtual host")
        return json_response([{"vhost": vhost.name, "value": dict(vhost.limits)}]
                             if vhost.limits else [])
    return json_response([{"vhost": name, "value": dict(v.limits)}
                          for name, v in list(req.broker.vhosts.items())
                          if v.limits and req.sees_vhost(name)])


def _vhost_for_change(req: Request) -> Any:
    req.require_admin()
    vhost = req.broker.vhosts.get(req.args["vhost"])
    if vhost is None:
        raise ApiError(404, "not_found", "vhost_not_found")
    return vhost


async def put_vhost_limit(req: Request) -> web.Response:
    vhost = _vhost_for_change(req)
    body = await req.body(LIMIT_PUT)
    # rabbit_vhost_limit:update_limit: this one replaced, the others kept, the whole
    # set validated again.
    new = {k: v for k, v in (vhost.limits or {}).items() if k != req.args["name"]}
    new[req.args["name"]] = body["value"]
    try:
        vhost.limits = limits.validate(new, "vhost")
    except limits.LimitsError as exc:
        raise bad_request(str(exc)) from None
    req.broker.definitions_changed()
    return no_content()


async def delete_vhost_limit(req: Request) -> web.Response:
    vhost = _vhost_for_change(req)
    # The last one removed removes the parameter (RabbitMQ keeps an empty one, which
    # only its global list shows, as "value": []).
    vhost.limits = {k: v for k, v in (vhost.limits or {}).items() if k != req.args["name"]} or None
    req.broker.definitions_changed()
    return no_content()


# -- user limits -------------------------------------------------------------------------------
async def list_user_limits(req: Request) -> web.Response:
    users = req.broker.users.users
    if "user" in req.args:
        user = users.get(req.args["user"])
        if user is None:
            raise not_found()
        return json_response([{"user": user.name, "value": dict(user.limits)}]
                             if user.limits else [])
    return json_response([{"user": u.name, "value": dict(u.limits)}
                          for u in list(users.values()) if u.limits])


async def put_user_limit(req: Request) -> web.Response:
    req.require_admin()
    body = await req.body(LIMIT_PUT)
    try:  # validated before the user is looked up, as RabbitMQ does
        new = limits.validate({req.args["name"]: body["value"]}, "user")
    except limits.LimitsError as exc:
        raise bad_request(str(exc)) from None
    user = req.broker.users.users.get(req.args["user"])
    if user is None:
        raise bad_request(["no_such_user", req.args["user"]])
    user.limits.update(new)
    req.broker.definitions_changed()
    return no_content()


async def delete_user_limit(req: Request) -> web.Response:
    req.require_admin()
    user = req.broker.users.users.get(req.args["user"])
    if user is None:
        raise ApiError(404, "not_found", "user_not_found")
    if req.args["name"] == "all":  # rabbit_auth_backend_internal:clear_user_limits
        user.limits.clear()
    else:
        user.limits.pop(req.args["name"], None)
    req.broker.definitions_changed()
    return no_content()


def register(router: Router) -> None:
    add = router.add
    add("GET", "vhost-limits", list_vhost_limits)
    add("GET", "vhost-limits/{vhost}", list_vhost_limits)
    add("PUT", "vhost-limits/{vhost}/{name}", put_vhost_limit)
    add("DELETE", "vhost-limits/{vhost}/{name}", delete_vhost_limit)
    add("GET", "user-limits", list_user_limits)
    add("GET", "user-limits/{user}", list_user_limits)
    add("PUT", "user-limits/{user}/{name}", put_user_limit)
    add("DELETE", "user-limits/{user}/{name}", delete_user_limit)
