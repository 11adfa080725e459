"""Listening sockets and the server's lifecycle (start, ready, graceful stop)."""

from __future__ import annotations

import asyncio
import logging
import socket

from ..broker.broker import Broker
from ..protocol import constants as rc
from .connection import Connection

log = logging.getLogger("hutch.server")


def resolve_hosts(host: str) -> list[str]:
    """``localhost`` means both loopback stacks, like RabbitMQ's default listeners."""
    if host == "localhost":
        hosts = ["127.0.0.1"]
        if socket.has_ipv6:
            hosts.append("::1")
        return hosts
    return [host]


class Server:
    def __init__(self, broker: Broker, host: str = "localhost", port: int = 5672) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self.servers: list[asyncio.base_events.Server] = []

    async def start(self) -> None:
        loop = self.broker.loop
        port = self.port
        for h in resolve_hosts(self.host):
            try:
                srv = await loop.create_server(lambda: Connection(self.broker),
                                               h, port, reuse_address=True, backlog=1024)
            except OSError as exc:
                if h == "::1" and self.servers:
                    log.warning("not listening on [::1]:%d: %s", port, exc)
                    continue
                raise
            self.servers.append(srv)
            if port == 0:
                # Bind the other loopback stack to the same kernel-chosen port.
                port = srv.sockets[0].getsockname()[1]
        self.port = port

    @property
    def addresses(self) -> list[str]:
        out = []
        for srv in self.servers:
            for s in srv.sockets:
                addr = s.getsockname()
                out.append(f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}")
        return out

    async def stop(self) -> None:
        """Stop accepting, close every connection with 320, requeue what they held."""
        for srv in self.servers:
            srv.close()
        for conn in list(self.broker.connections):
            if conn.state == "running":
                conn.close(rc.CONNECTION_FORCED, "CONNECTION_FORCED - broker forced connection "
                           "closure with reason 'shutdown'")
        # Give clients a moment to answer close-ok, then drop the sockets.
        for _ in range(20):
            if not any(c.state == "closing" for c in self.broker.connections):
                break
            await asyncio.sleep(0.05)
        for conn in list(self.broker.connections):
            conn._finish_close()
        for srv in self.servers:
            await srv.wait_closed()
