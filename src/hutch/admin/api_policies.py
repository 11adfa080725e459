"""``/api/policies`` and ``/api/operator-policies``, as RabbitMQ's management plugin
serves them (rabbit_mgmt_wm_policies / _policy / _operator_policies /
_operator_policy, 4.x).

Who may do what: the lists admit any management user and show the policies of the
vhosts the user may use (``is_authorized_vhost`` + ``filter_vhost``); one policy, to
read or change, needs an administrator or a policymaker with access to its vhost
(``is_authorized_policies``: 401 ``User not authorised to access object``); an
operator policy needs an administrator.  A refused policy is 400 with RabbitMQ's
``Validation failed`` text (``policies.make_policy``, which gets the body as sent: a
``null`` priority or apply-to is refused, as in RabbitMQ, not defaulted).
"""

from __future__ import annotations

from functools import partial

from aiohttp import web

from ..broker import policies
from .http_api import ApiError, Request, Router, bad_request, json_response, no_content, not_found
from .schema import POLICY_PUT, BodyError

# reply_list's default sort for these lists (rabbit_mgmt_wm_policies:to_json).
POLICY_SORT = ("priority",)


def _table(vhost: object, operator: bool) -> dict[str, policies.Policy]:
    return vhost.operator_policies if operator else vhost.policies  # type: ignore[attr-defined]


async def _list(req: Request, operator: bool) -> web.Response:
    if "vhost" in req.args:
        vhosts = [req.vhost()]
    else:
        vhosts = [v for name, v in list(req.broker.vhosts.items()) if req.may_use_vhost(name)]
    return json_response([p.info() for v in vhosts for p in _table(v, operator).values()])


def _authorise_one(req: Request, operator: bool) -> None:
    name = req.args["vhost"]
    if operator:
        req.require_admin()
    elif not (req.is_admin() or ("policymaker" in req.user.tags
                                 and req.has_vhost_access(name))):
        raise req.deny("User not authorised to access object")


def _vhost_or_404(req: Request) -> object:
    vhost = req.broker.vhosts.get(req.args["vhost"])
    if vhost is None:
        raise not_found()
    return vhost


async def _get(req: Request, operator: bool) -> web.Response:
    _authorise_one(req, operator)
    policy = _table(_vhost_or_404(req), operator).get(req.args["name"])
    if policy is None:
        raise not_found()
    return json_response(policy.info())


async def _put(req: Request, operator: bool) -> web.Response:
    _authorise_one(req, operator)
    vhost = req.broker.vhosts.get(req.args["vhost"])
    if vhost is None:
        raise ApiError(404, "not_found", "vhost_not_found")
    body = await req.body()
    try:
        # RabbitMQ's with_decode: [{key_missing,pattern}].  The schema's result is not
        # used: it drops a null optional field, and rabbit_policy:set/8 defaults only
        # an ABSENT priority / apply-to ("priority": null is refused), so
        # make_policy gets the body as sent.
        POLICY_PUT.check(body)
    except BodyError as exc:
        raise bad_request(exc.reason) from None
    try:
        policy = policies.make_policy(vhost.name, req.args["name"], body, operator)
    except policies.PolicyError as exc:
        raise bad_request(policies.validation_text(exc)) from None
    created = policies.set_policy(vhost, policy, operator)
    return no_content(created=created)


async def _delete(req: Request, operator: bool) -> web.Response:
    _authorise_one(req, operator)
    if not policies.clear_policy(_vhost_or_404(req), req.args["name"], operator):  # type: ignore[arg-type]
        raise not_found()
    return no_content()


def register(router: Router) -> None:
    add = router.add
    # The same handlers serve both tables; ``operator`` picks the one.
    for base, operator in (("policies", False), ("operator-policies", True)):
        lst = partial(_list, operator=operator)
        add("GET", base, lst, sort=POLICY_SORT)
        add("GET", f"{base}/{{vhost}}", lst, sort=POLICY_SORT)
        add("GET", f"{base}/{{vhost}}/{{name}}", partial(_get, operator=operator))
        add("PUT", f"{base}/{{vhost}}/{{name}}", partial(_put, operator=operator))
        add("DELETE", f"{base}/{{vhost}}/{{name}}", partial(_delete, operator=operator))
