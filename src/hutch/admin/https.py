"""HTTPS listeners for the management API and the Prometheus endpoint.

RabbitMQ's ``management.ssl.*`` / ``prometheus.ssl.*``: a TLS listener next to (or
instead of) the plain one, serving the same aiohttp application.  The TLS part is
``server/tls.py``'s accept path, so a failed handshake is one log line and a
SIGHUP reload reaches these listeners too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from ..server.listener import ListenError, format_address, resolve_hosts
from ..server.tls import TlsContext, TlsServer, create_tls_server


@dataclass
class HttpsConfig:
    tls: TlsContext
    host: str
    port: int


@dataclass
class HttpsListeners:
    servers: list[TlsServer] = field(default_factory=list)
    addresses: list[tuple[str, int]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.addresses[0][1] if self.addresses else 0

    @property
    def url(self) -> str:
        host = self.addresses[0][0] if self.addresses else "127.0.0.1"
        host = "127.0.0.1" if host == "0.0.0.0" else "::1" if host == "::" else host
        host = f"[{host}]" if ":" in host else host
        return f"https://{host}:{self.port}/"

    async def start(self, runner: web.AppRunner, cfg: HttpsConfig, what: str) -> None:
        """Listen on ``cfg.host:cfg.port`` (port 0: any free one, the same on both
        loopbacks); raises ListenError."""
        loop = asyncio.get_running_loop()
        factory = runner.server
        assert factory is not None  # runner.setup() was called
        port = cfg.port
        for host in resolve_hosts(cfg.host):
            try:
                srv = await create_tls_server(loop, factory, cfg.tls, host, port, what=what)
            except OSError as exc:
                if host in ("::1", "::") and self.servers:
                    continue
                await self.stop()
                raise ListenError(format_address(host, port), exc) from None
            self.servers.append(srv)
            port = srv.sockets[0].getsockname()[1]
            self.addresses.append((host, port))

    async def stop(self) -> None:
        # Stop accepting; the runner's cleanup closes the open connections (waiting
        # for them here would wait for every keep-alive client on Python 3.12+).
        for srv in self.servers:
            srv.close()
        self.servers = []
