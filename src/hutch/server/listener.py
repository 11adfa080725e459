"""Listening sockets and the server's lifecycle (start, ready, graceful stop)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from ..broker.node import Node
from ..protocol import constants as rc
from ..protocol.state import CLOSING, RUNNING
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


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListenError(Exception):
    """A listener could not be opened: ``address`` (``host:port``) and the OS error."""

    def __init__(self, address: str, error: OSError) -> None:
        super().__init__(f"cannot listen on {address}: {error.strerror or error}")
        self.address = address
        self.error = error

    @property
    def in_use(self) -> bool:
        return self.error.errno == errno.EADDRINUSE


def check_can_listen(host: str, port: int) -> None:
    """Raise ``ListenError`` if ``host:port`` cannot be bound right now.

    ``hutch serve`` calls this for its AMQP and HTTP ports before it creates or
    locks the data dir, so a port that is taken (typically by a RabbitMQ already
    running on 5672/15672) fails at once and leaves nothing behind.  It binds
    as ``create_server`` will (SO_REUSEADDR), without listening, and closes the
    socket again; a ``[::1]`` failure after ``127.0.0.1`` worked is not fatal,
    as in ``Server.start``.  Port 0 (any free port) cannot be taken.
    """
    if port == 0:
        return
    bound = False
    for h in resolve_hosts(host):
        try:
            infos = socket.getaddrinfo(h, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise ListenError(format_address(h, port), OSError(exc.errno, exc.strerror)) from None
        for family, kind, proto, _name, addr in infos:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s.bind(addr)
                except OSError as exc:
                    if h == "::1" and bound:
                        continue
                    raise ListenError(format_address(str(addr[0]), port), exc) from None
            bound = True


class Server:
    def __init__(self, broker: Node, host: str = "localhost", port: int = 5672) -> None:
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
                raise ListenError(format_address(h, port), exc) from None
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
                out.append(format_address(addr[0], addr[1]))
        return out

    async def stop(self) -> None:
        """Stop accepting, close every connection with 320, requeue what they held."""
        for srv in self.servers:
            srv.close()
        for conn in list(self.broker.connections):
            if conn.state is RUNNING:
                conn.close(rc.CONNECTION_FORCED, "CONNECTION_FORCED - broker forced connection "
                           "closure with reason 'shutdown'")
        # Give clients a moment to answer close-ok, then drop the sockets.
        for _ in range(20):
            if not any(c.state is CLOSING for c in self.broker.connections):
                break
            await asyncio.sleep(0.05)
        for conn in list(self.broker.connections):
            conn.finish_close()
        # Clients that asked to close but have not closed their end yet (closing.py):
        # their sockets would hold wait_closed() (Python 3.12+) for the whole timeout.
        for conn in list(self.broker.lingering):
            if conn.transport is not None:
                conn.transport.close()
        for srv in self.servers:
            await srv.wait_closed()
