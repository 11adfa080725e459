"""The management HTTP API server: aiohttp on the broker's own event loop.

Running in the broker's loop means handlers read broker state directly, with
no locks and no copies: every handler runs between two AMQP frame batches.

Routing is our own small table rather than aiohttp's router because
RabbitMQ's URLs carry names percent-encoded *inside* one path segment (the
default vhost is ``%2F``): we split the raw path on ``/`` first, then decode
each segment.  Handlers live in ``api_objects.py`` (queues, exchanges,
bindings, connections, channels, consumers) and ``api_access.py`` (overview,
users, vhosts, permissions, definitions, health).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import BasicAuth, web

from ..broker.users import User
from ..server.connection import is_loopback
from ..server.listener import resolve_hosts
from .stats import SAMPLE_INTERVAL, Rates
from .views import node_name

log = logging.getLogger("hutch.management")

MANAGEMENT_TAGS = {"administrator", "monitoring", "policymaker", "management"}


class ApiError(Exception):
    """An error answered as RabbitMQ does: ``{"error": ..., "reason": ...}``."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def not_found() -> ApiError:
    return ApiError(404, "Object Not Found", "Not Found")


def bad_request(reason: str) -> ApiError:
    return ApiError(400, "bad_request", reason)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


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
        return bool({"administrator", "monitoring"} & set(self.user.tags))

    def require_admin(self) -> None:
        if not self.is_admin():
            raise ApiError(401, "not_authorised", "Not administrator user")

    def require_monitor(self) -> None:
        if not self.sees_all():
            raise ApiError(401, "not_authorised", "Not monitor user")

    def can_see_vhost(self, name: str) -> bool:
        return self.sees_all() or (name, self.user.name) in self.broker.users.permissions

    def vhost(self, name: str | None = None) -> Any:
        """The vhost named in the URL (404 if missing, 401 if not this user's)."""
        name = self.args["vhost"] if name is None else name
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise not_found()
        if not self.can_see_vhost(name) and not self.is_admin():
            raise ApiError(401, "not_authorised", "Not_Authorised")
        return vhost

    async def body(self) -> dict[str, Any]:
        raw = await self.http.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise bad_request("not_json") from None
        if not isinstance(data, dict):
            raise bad_request("not_json")
        return data


Handler = Callable[[Request], Awaitable[web.StreamResponse]]


@dataclass
class Route:
    method: str
    parts: tuple[str, ...]
    handler: Handler
    auth: bool = True

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

    def add(self, method: str, path: str, handler: Handler, auth: bool = True) -> None:
        self.routes.append(Route(method, tuple(path.strip("/").split("/")), handler, auth))

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


COOKIE_FILE = "ctl.cookie"
COOKIE_SCHEME = "Hutch-Cookie"
# Who a cookie-authenticated request acts as (shown by /api/whoami).
COOKIE_USER = User("hutch-ctl (local cookie)", "", ["administrator"])


class ManagementApi:
    def __init__(self, broker: Any, host: str, port: int, *, data_dir: str | None = None,
                 amqp_listeners: list[tuple[str, int]] | None = None) -> None:
        self.broker = broker
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
        from . import api_access, api_objects, metrics

        api_access.register(self.router)
        api_objects.register(self.router)
        self.router.add("GET", "metrics", metrics.handle_metrics, auth=False)

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        port = self.port
        for host in resolve_hosts(self.host):
            site = web.TCPSite(self._runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                if host == "::1" and self.http_listeners:
                    log.warning("management API not listening on [::1]:%d: %s", port, exc)
                    continue
                raise
            server = site._server
            sock = server.sockets[0] if server is not None and server.sockets else None
            if sock is not None:
                port = sock.getsockname()[1]
            self.http_listeners.append((host, port))
        self.port = port
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
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        host = self.http_listeners[0][0] if self.http_listeners else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def listeners(self) -> list[dict[str, Any]]:
        out = [{"node": node_name(), "protocol": "amqp", "ip_address": h, "port": p}
               for h, p in self.amqp_listeners]
        out += [{"node": node_name(), "protocol": "http", "ip_address": h, "port": p}
                for h, p in self.http_listeners]
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
            return json_response({"error": "Object Not Found", "reason": "Not Found"}, 404)
        try:
            found = self.router.find(http.method, segments)
            if found is None:
                raise not_found()
            route, args = found
            if not route.auth:
                return await route.handler(Request(http, args, None, self))  # type: ignore[arg-type]
            user = self._authenticate(http)
            return await route.handler(Request(http, args, user, self))
        except ApiError as exc:
            response = json_response({"error": exc.error, "reason": exc.reason}, exc.status)
            if exc.status == 401 and exc.error == "not_authorized":
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
