"""The management HTTP API server: aiohttp on the broker's own event loop.

Running in the broker's loop means handlers read broker state directly, with
no locks and no copies: every handler runs between two AMQP frame batches.

Routing is our own small table rather than aiohttp's router because
RabbitMQ's URLs carry names percent-encoded *inside* one path segment (the
default vhost is ``%2F``): we split the raw path on ``/`` first, then decode
each segment.  Handlers live in ``api_objects.py`` (queues, exchanges,
bindings, connections, channels, consumers), ``api_access.py`` (overview,
users, vhosts, permissions, definitions) and ``api_health.py`` (health checks,
aliveness test).  The query parameters every reply takes (``columns``, ``sort``,
``page``...) are applied here, to whatever JSON a handler answers (``listing.py``).

Who may do what follows RabbitMQ's management plugin (``rabbit_mgmt_util``):
a URL naming a vhost needs an administrator or a user with a permission entry
there (401 ``User not authorised to access virtual host``); what a request
does to a queue or exchange is checked with the user's configure/write/read
permissions by ``broker.permissions.Access``, the same rules as over AMQP
(``Request.amqp``); every refusal is logged as a warning.  A request body is
read within ``--http-max-body`` and checked against its endpoint's schema
(``schema.py``) before a handler sees it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import BasicAuth, web

from ..broker.permissions import Access, vhost_access_allowed
from ..broker.users import User
from ..errors import AMQPError
from ..protocol import constants as rc
from ..server.connection import is_loopback
from ..server.listener import ListenError, format_address, resolve_hosts
from .https import HttpsConfig, HttpsListeners
from .listing import DEFAULT_SORT, ListingError, shape
from .schema import BodyError, Schema, decode_object
from .stats import SAMPLE_INTERVAL, Rates
from .ui import load_assets, serve_asset, ui_path
from .views import node_name
from .web_security import (
    CROSS_SITE_REASON,
    REBINDING_REASON,
    SecurityHeaders,
    cross_site,
    rebinding,
)

log = logging.getLogger("hutch.management")

MANAGEMENT_TAGS = {"administrator", "monitoring", "policymaker", "management"}

# RabbitMQ's default management.http.max_body_size (MANAGEMENT_DEFAULT_HTTP_MAX_BODY_SIZE
# in rabbit_mgmt.hrl, 3.13+; 3.10-3.12 have no limit): 20,000,000 bytes.
DEFAULT_MAX_BODY = 20_000_000
# RabbitMQ 3.13+ answers an oversized body 400 with this body; Hutch sends the same
# body with 413 Payload Too Large, the status HTTP has for it (README, Known differences).
BODY_TOO_LARGE_STATUS = 413
BODY_TOO_LARGE_REASON = "Exceeded HTTP request body size limit"


class ApiError(Exception):
    """An error answered as RabbitMQ does: ``{"error": ..., "reason": ...}``."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def not_found() -> ApiError:
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: Any) -> ApiError:
    return ApiError(400, "bad_request", reason)


def amqp_reason(exc: AMQPError) -> str:
    """The AMQP text without its ``CODE - `` prefix, as RabbitMQ's ``explanation``."""
    return exc.text.split(" - ", 1)[1] if " - " in exc.text else exc.text


class _Unrestricted(Access):
    """The local operator (``hutch ctl`` with the data dir's cookie) is not bound
    by vhost permissions, like ``rabbitmqctl``."""

    def allowed(self, kind: str, name: str, what: int) -> bool:
        return True


class JsonResponse(web.Response):
    """A JSON reply that keeps its data, so the dispatcher can apply the list and
    column query parameters (``listing.shape``) to every endpoint's reply."""

    def __init__(self, data: Any, status: int = 200) -> None:
        super().__init__(status=status, content_type="application/json")
        self.data = data

    async def prepare(self, request: web.BaseRequest) -> Any:
        # Serialised only when sent: a paged list is cut before this, so 10,000 queues
        # are not turned into megabytes of JSON to send 100 of them.
        if self.body is None:
            self.text = json.dumps(self.data)
        return await super().prepare(request)


def json_response(data: Any, status: int = 200) -> web.Response:
    return JsonResponse(data, status)


def no_content(created: bool = False) -> web.Response:
    return web.Response(status=201 if created else 204)


@dataclass
class Request:
    """What a handler gets: the aiohttp request, the decoded path variables and the user."""

    http: web.Request
    args: dict[str, str]
    user: User
    api: ManagementApi

    @property
    def broker(self) -> Any:
        return self.api.broker

    def is_admin(self) -> bool:
        return "administrator" in self.user.tags

    def sees_all(self) -> bool:
        """RabbitMQ's ``is_monitor``: administrator or monitoring."""
        return bool({"administrator", "monitoring"} & set(self.user.tags))

    # -- who may see what (rabbit_mgmt_util) -------------------------------------------
    def deny(self, reason: str) -> ApiError:
        """A refused authorisation: logged as RabbitMQ logs it, answered 401."""
        log.warning("HTTP access denied: user '%s' - %s", self.user.name, reason)
        return ApiError(401, "not_authorised", reason)

    def require_admin(self) -> None:
        if not self.is_admin():
            raise self.deny("Not administrator user")

    def require_monitor(self) -> None:
        if not self.sees_all():
            raise self.deny("Not monitor user")

    def has_vhost_access(self, name: str) -> bool:
        """A permission entry there: what AMQP's connection.open asks (the local
        operator needs none)."""
        return self.user is COOKIE_USER or vhost_access_allowed(self.broker.users, name,
                                                                 self.user.name)

    def may_use_vhost(self, name: str) -> bool:
        """An administrator, or a user with a permission entry there (RabbitMQ's
        ``list_login_vhosts``): whom a ``{vhost}`` URL admits and whose queues,
        exchanges and bindings a list shows.  Monitoring alone is not enough."""
        return self.is_admin() or self.has_vhost_access(name)

    def sees_vhost(self, name: str) -> bool:
        """The vhosts ``/api/vhosts`` lists (``list_visible_vhosts``): all of them for
        administrators and monitoring users, else those the user may use."""
        return self.sees_all() or self.may_use_vhost(name)

    def vhost(self, name: str | None = None) -> Any:
        """The vhost named in the URL: 401 unless the user may use it (checked first,
        as RabbitMQ's ``is_authorized_vhost``), 404 if it does not exist."""
        name = self.args["vhost"] if name is None else name
        vhost = self.broker.vhosts.get(name)
        if vhost is not None and not self.may_use_vhost(name):
            raise self.deny("User not authorised to access virtual host")
        if vhost is None:
            raise not_found()
        return vhost

    # -- what may be done there (the AMQP rules) -----------------------------------------
    def access(self, vhost: Any) -> Access:
        """This user's permissions in ``vhost``, checked by the same code as AMQP's."""
        if self.user is COOKIE_USER:
            return _Unrestricted(self.broker.users, vhost.name, self.user.name)
        return Access(self.broker.users, vhost.name, self.user.name)

    @contextmanager
    def amqp(self, what: str, style: str = "direct") -> Iterator[None]:
        """Run an AMQP-level operation, answering its errors as RabbitMQ's management
        plugin does and logging each one as a warning.

        ``direct``: declare, delete, purge, (un)bind (``rabbit_mgmt_util:direct_request``):
        a refusal is 401 ``Access refused.``, a missing object 404, anything else 400.
        ``channel``: get messages (``with_channel``): 401/404 with the AMQP text.
        ``async``: publish (a confirm awaited on a channel that dies): 400 ``"403 ..."``.
        """
        try:
            yield
        except AMQPError as exc:
            log.warning("%s: %s", what, amqp_reason(exc))
            refused = exc.code in (rc.ACCESS_REFUSED, rc.NOT_ALLOWED)
            if style == "direct":
                if refused:
                    raise ApiError(401, "not_authorised", "Access refused.") from None
                if exc.code == rc.NOT_FOUND:
                    raise ApiError(404, "not_found", amqp_reason(exc)) from None
                raise bad_request(amqp_reason(exc)) from None
            if style == "channel" and refused:
                raise ApiError(401, "not_authorised", exc.text) from None
            if style == "channel" and exc.code == rc.NOT_FOUND:
                raise ApiError(404, "not_found", exc.text) from None
            raise bad_request(f"{exc.code} {exc.text}") from None

    async def body(self, schema: Schema | None = None) -> dict[str, Any]:
        """The JSON body, read within the size limit and checked against ``schema``."""
        limit = self.api.max_body
        length = self.http.content_length
        try:
            if length is not None and length > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
            raw = await self.http.read()  # aiohttp stops at client_max_size (= limit)
        except web.HTTPRequestEntityTooLarge:
            log.warning("HTTP API: request exceeded maximum allowed payload size (limit: %d "
                        "bytes, payload size: %s bytes)", limit, length or "more")
            raise ApiError(BODY_TOO_LARGE_STATUS, "bad_request", BODY_TOO_LARGE_REASON) from None
        try:
            data = decode_object(raw)
            return schema.check(data) if schema is not None else data
        except BodyError as exc:
            raise bad_request(exc.reason) from None


Handler = Callable[[Request], Awaitable[web.StreamResponse]]


@dataclass
class Route:
    method: str
    parts: tuple[str, ...]
    handler: Handler
    auth: bool = True
    # For a list: its default sort keys (RabbitMQ's reply_list DefaultSorts) and
    # whether it takes page/page_size/name/use_regex (see listing.py).
    sort: tuple[str, ...] | None = None
    paged: bool = False

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.parts):
            return None
        args: dict[str, str] = {}
        for want, got in zip(self.parts, segments, strict=True):
            if want.startswith("{"):
                args[want[1:-1]] = got
            elif want != got:
                return None
        return args


@dataclass
class Router:
    routes: list[Route] = field(default_factory=list)

    def add(self, method: str, path: str, handler: Handler, auth: bool = True,
            sort: tuple[str, ...] | None = DEFAULT_SORT, paged: bool = False) -> None:
        """``sort`` matters only when the handler answers a JSON list."""
        self.routes.append(Route(method, tuple(path.strip("/").split("/")), handler, auth,
                                 sort, paged))

    def find(self, method: str, segments: list[str]) -> tuple[Route, dict[str, str]] | None:
        """The route for ``method`` (HEAD is served by GET); 405 if only the method is wrong."""
        method = "GET" if method == "HEAD" else method
        path_matched = False
        for route in self.routes:
            args = route.match(segments)
            if args is None:
                continue
            path_matched = True
            if route.method == method:
                return route, args
        if path_matched:
            raise ApiError(405, "method_not_allowed", "Method Not Allowed")
        return None


def _shaped(response: JsonResponse, http: web.Request, route: Route) -> web.Response:
    """The reply with ``columns``/``sort``/``page``... applied, as RabbitMQ's
    ``rabbit_mgmt_util:reply*`` do for every endpoint (listing.py)."""
    data = response.data
    if not isinstance(data, list) and "columns" not in http.query:
        return response
    try:
        shaped = shape(data, http.query, route.sort, route.paged)
    except ListingError as exc:
        raise ApiError(400, exc.error, exc.reason) from None
    return JsonResponse(shaped, response.status)


COOKIE_FILE = "ctl.cookie"
COOKIE_SCHEME = "Hutch-Cookie"
# Who a cookie-authenticated request acts as (shown by /api/whoami).
COOKIE_USER = User("hutch-ctl (local cookie)", "", ["administrator"])


class ManagementApi:
    def __init__(self, broker: Any, host: str, port: int, *, data_dir: str | None = None,
                 amqp_listeners: list[tuple[str, int]] | None = None,
                 max_body: int = DEFAULT_MAX_BODY, plain_http: bool = True,
                 https: HttpsConfig | None = None,
                 amqps_listeners: list[tuple[str, int]] | None = None,
                 security: SecurityHeaders | None = None) -> None:
        self.broker = broker
        self.security = security or SecurityHeaders()
        self.assets = load_assets()
        # management.tcp.* and management.ssl.* (admin/https.py) may coexist, as in RabbitMQ.
        self.plain_http = plain_http
        self.https_config = https
        self.https = HttpsListeners()
        self.amqps_listeners = amqps_listeners or []
        self.max_body = max_body
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.amqp_listeners = amqp_listeners or []
        self.http_listeners: list[tuple[str, int]] = []
        self.cookie = ""
        self.rates = Rates()
        self.router = Router()
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        from . import (
            api_access,
            api_alarms,
            api_environment,
            api_health,
            api_limits,
            api_objects,
            api_policies,
            api_shovels,
            metrics,
        )

        api_access.register(self.router)
        api_alarms.register(self.router)
        api_environment.register(self.router)
        api_objects.register(self.router)
        api_health.register(self.router)
        api_policies.register(self.router)
        api_limits.register(self.router)
        api_shovels.register(self.router)
        self.router.add("GET", "metrics", metrics.handle_metrics, auth=False)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_body)
        app.on_response_prepare.append(self.security.on_prepare)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        port = self.port
        for host in resolve_hosts(self.host) if self.plain_http else []:
            site = web.TCPSite(self._runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                if host == "::1" and self.http_listeners:
                    log.warning("management API not listening on [::1]:%d: %s", port, exc)
                    continue
                await self._runner.cleanup()
                raise ListenError(format_address(host, port), exc) from None
            server: Any = site._server  # aiohttp keeps the asyncio.Server here
            sock = server.sockets[0] if server is not None and server.sockets else None
            if sock is not None:
                port = sock.getsockname()[1]
            self.http_listeners.append((host, port))
        self.port = port
        if self.https_config is not None:
            try:
                await self.https.start(self._runner, self.https_config, "management HTTPS")
            except ListenError:
                await self._runner.cleanup()
                raise
        self._sampler = asyncio.get_running_loop().create_task(self._sample_forever())
        self._write_cookie()

    def _write_cookie(self) -> None:
        """The local operator credential, like RabbitMQ's Erlang cookie: whoever can read
        ``<data-dir>/ctl.cookie`` (mode 0600: the user running the broker) may run
        ``hutch ctl`` without a password — which is how the seeds' locked-out
        ``guest`` gets its password back.  Honoured from loopback only."""
        self.cookie = secrets.token_urlsafe(32)
        if self.data_dir is None:
            return
        path = os.path.join(self.data_dir, COOKIE_FILE)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": self.url, "cookie": self.cookie}, f)
        os.replace(path + ".tmp", path)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        await self.https.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        if not self.http_listeners and self.https.addresses:
            return self.https.url
        host = self.http_listeners[0][0] if self.http_listeners else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def listeners(self) -> list[dict[str, Any]]:
        out = [{"node": node_name(), "protocol": "amqp", "ip_address": h, "port": p}
               for h, p in self.amqp_listeners]
        out += [{"node": node_name(), "protocol": "amqp/ssl", "ip_address": h, "port": p}
                for h, p in self.amqps_listeners]
        out += [{"node": node_name(), "protocol": "http", "ip_address": h, "port": p}
                for h, p in self.http_listeners]
        out += [{"node": node_name(), "protocol": "https", "ip_address": h, "port": p}
                for h, p in self.https.addresses]
        return out

    # -- statistics sampling --------------------------------------------------------
    async def _sample_forever(self) -> None:
        from .sampler import sample

        while True:
            try:
                sample(self.broker, self.rates)
            except Exception:  # statistics must never take the API down
                log.exception("statistics sampling failed")
            await asyncio.sleep(SAMPLE_INTERVAL)

    # -- request handling ---------------------------------------------------------------
    async def _dispatch(self, http: web.Request) -> web.StreamResponse:
        raw = http.raw_path.split("?", 1)[0]
        segments = [unquote(s) for s in raw.strip("/").split("/")]
        if segments and segments[0] == "api":
            segments = segments[1:]
            if not segments:
                segments = [""]
        elif segments != ["metrics"]:
            asset = ui_path(segments)
            found_asset = serve_asset(self.assets, asset, http) if asset is not None else None
            if found_asset is not None and http.method in ("GET", "HEAD"):
                return found_asset
            return json_response({"error": "Object Not Found", "reason": "Not Found"}, 404)
        if rebinding(http, is_loopback(http.remote or "")):
            log.warning("HTTP API: refused %s %s from %s with Host %s (DNS rebinding?)",
                        http.method, http.raw_path, http.remote, http.headers.get("Host"))
            return json_response({"error": "forbidden", "reason": REBINDING_REASON}, 403)
        if cross_site(http):
            log.warning("HTTP API: refused a cross-site %s %s (Origin %s, Sec-Fetch-Site %s)",
                        http.method, http.raw_path, http.headers.get("Origin"),
                        http.headers.get("Sec-Fetch-Site"))
            return json_response({"error": "forbidden", "reason": CROSS_SITE_REASON}, 403)
        try:
            found = self.router.find(http.method, segments)
            if found is None:
                raise not_found()
            route, args = found
            if not route.auth:
                return await route.handler(Request(http, args, None, self))  # type: ignore[arg-type]
            user = self._authenticate(http)
            store = self.broker.store
            before = store.definitions.version if store is not None else 0
            response = await route.handler(Request(http, args, user, self))
            if isinstance(response, JsonResponse):
                response = _shaped(response, http, route)
            if store is not None and store.definitions.version != before:
                # A durable change is answered only once it is on disk, as over AMQP.
                error = await self.broker.definitions_synced()
                if error is not None:
                    raise ApiError(500, "internal_server_error",
                                   f"could not write definitions: {error.strerror or error}")
            return response
        except ApiError as exc:
            response = json_response({"error": exc.error, "reason": exc.reason}, exc.status)
            # The UI marks its requests (X-Requested-With, as many web frameworks do)
            # so a wrong password shows its own message rather than the browser's
            # login prompt.
            if exc.status == 401 and exc.error == "not_authorized" and \
                    http.headers.get("X-Requested-With") != "XMLHttpRequest":
                response.headers["WWW-Authenticate"] = 'Basic realm="RabbitMQ Management"'
            return response
        except Exception:
            log.exception("management API error on %s %s", http.method, http.path)
            return json_response({"error": "internal_server_error", "reason": "internal error"}, 500)

    def _authenticate(self, http: web.Request) -> User:
        header = http.headers.get("Authorization")
        if not header:
            raise ApiError(401, "not_authorized", "Login failed")
        if header.startswith(COOKIE_SCHEME + " ") and self.cookie:
            if hmac.compare_digest(header[len(COOKIE_SCHEME) + 1 :], self.cookie) and \
                    is_loopback(http.remote or ""):
                return COOKIE_USER
            raise ApiError(401, "not_authorized", "Login failed")
        try:
            creds = BasicAuth.decode(header, encoding="utf-8")
        except ValueError:
            raise ApiError(401, "not_authorized", "Login failed") from None
        users = self.broker.users
        user = users.authenticate(creds.login, creds.password)
        if user is None:
            log.warning("HTTP access denied: user '%s' - invalid credentials", creds.login)
            raise ApiError(401, "not_authorized", "Login failed")
        if user.name in users.loopback_only and not is_loopback(http.remote or ""):
            log.warning("HTTP access denied: user '%s' can only log in via localhost", user.name)
            raise ApiError(401, "not_authorized", "User can only log in via localhost")
        if not MANAGEMENT_TAGS & set(user.tags):
            raise ApiError(401, "not_authorised", "Not management user")
        return user
