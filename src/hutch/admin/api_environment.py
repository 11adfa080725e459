"""GET /api/hutch/environment: the effective configuration (``hutch ctl environment``).

Hutch-only (RabbitMQ's HTTP API has no equivalent: rabbitmq-diagnostics environment
asks the node over Erlang distribution).  Administrators only, as the configuration
says where files and users are; secrets are already ``********`` (config/environment.py).
Rows: ``[{"key": "log.file", "value": "/var/log/hutch/hutch.log",
"source": "/etc/hutch/hutch.conf:12"}, ...]``.
"""

from __future__ import annotations

from aiohttp import web

from .http_api import Request, Router, json_response


async def get_environment(req: Request) -> web.Response:
    req.require_admin()
    return json_response(list(req.broker.environment))


def register(router: Router) -> None:
    router.add("GET", "hutch/environment", get_environment, sort=None)
