"""Listening sockets and the server's lifecycle (start, ready, graceful stop)."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from dataclasses import dataclass
from typing import Any

from ..broker.node import Node
from ..protocol import constants as rc
from ..protocol.state import CLOSING, RUNNING
from .auth import AuthSettings
from .connection import Connection
from .tls import TlsContext, create_tls_server

log = logging.getLogger("hutch.server")


@dataclass(frozen=True)
class ListenSpec:
    """One AMQP listener: ``host`` None means every interface (RabbitMQ's
    ``listeners.tcp.default = 5672``), ``localhost`` both loopbacks."""

    host: str | None
    port: int
    tls: bool = False


def parse_listen(text: str, tls: bool = False) -> ListenSpec:
    """``PORT`` (every interface), ``HOST:PORT`` or ``[IPv6]:PORT``, as RabbitMQ's
    ``listeners.tcp.N`` / ``listeners.ssl.N`` values; ValueError otherwise."""
    text = text.strip()
    host: str | None = None
    port_text = text
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            raise ValueError(f"invalid listener {text!r}: expected [IPv6]:PORT")
        host, port_text = text[1:end], text[end + 2:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"invalid listener {text!r}: write an IPv6 address as [ADDR]:PORT")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or (host is not None and not host):
        raise ValueError(f"invalid listener {text!r}: expected PORT, HOST:PORT or [IPv6]:PORT")
    return ListenSpec(host, port, tls)


def resolve_hosts(host: str | None) -> list[str]:
    """``localhost`` means both loopback stacks, like RabbitMQ's default listeners;
    None every interface of both stacks."""
    if host is None:
        return ["0.0.0.0", "::"] if socket.has_ipv6 else ["0.0.0.0"]
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


def check_can_listen(host: str | None, port: int) -> None:
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
                    if h in ("::1", "::") and bound:
                        continue
                    raise ListenError(format_address(str(addr[0]), port), exc) from None
            bound = True


class Server:
    def __init__(self, broker: Node, host: str = "localhost", port: int = 5672, *,
                 listeners: list[ListenSpec] | None = None, tls: TlsContext | None = None,
                 auth: AuthSettings | None = None) -> None:
        self.broker = broker
        self.host = host
        self.port = port  # the first plain listener's (0 if there is none)
        self.tls_port = 0  # the first TLS listener's
        self.listeners = listeners if listeners is not None else [ListenSpec(host, port)]
        self.tls = tls
        # Every context SIGHUP reloads: AMQP's, and the HTTPS listeners' (cli.py adds them).
        self.tls_contexts: list[TlsContext] = [tls] if tls is not None else []
        self.auth = auth
        self.servers: list[Any] = []
        self.tls_servers: list[Any] = []

    async def start(self) -> None:
        self.port = 0
        for spec in self.listeners:
            port = await self._start_listener(spec)
            if spec.tls and not self.tls_port:
                self.tls_port = port
            elif not spec.tls and not self.port:
                self.port = port

    async def _start_listener(self, spec: ListenSpec) -> int:
        loop = self.broker.loop
        port = spec.port
        started: list[Any] = []
        auth = self.auth
        for h in resolve_hosts(spec.host):
            srv: Any
            try:
                if spec.tls:
                    assert self.tls is not None
                    srv = await create_tls_server(loop, lambda: Connection(self.broker, auth),
                                                  self.tls, h, port, what="AMQP")
                else:
                    srv = await loop.create_server(lambda: Connection(self.broker, auth),
                                                   h, port, reuse_address=True, backlog=1024)
            except OSError as exc:
                if h in ("::1", "::") and started:
                    log.warning("not listening on [%s]:%d: %s", h, port, exc)
                    continue
                raise ListenError(format_address(h, port), exc) from None
            started.append(srv)
            if port == 0:
                # Bind the other stack to the same kernel-chosen port.
                port = srv.sockets[0].getsockname()[1]
        (self.tls_servers if spec.tls else self.servers).extend(started)
        return port

    def reload_tls(self) -> bool:
        """Re-read every TLS certificate, key and CA file (SIGHUP).  New connections
        get the new ones; established connections keep theirs.  A context whose
        files fail to load keeps its previous certificates (one error line)."""
        ok = True
        for ctx in self.tls_contexts:
            ok = ctx.reload() and ok
        if not self.tls_contexts:
            log.info("SIGHUP: no TLS listener, no certificate to reload")
        return ok

    @property
    def addresses(self) -> list[str]:
        return self._addresses(self.servers)

    @property
    def tls_addresses(self) -> list[str]:
        return self._addresses(self.tls_servers)

    @staticmethod
    def _addresses(servers: list[Any]) -> list[str]:
        out = []
        for srv in servers:
            for s in srv.sockets:
                addr = s.getsockname()
                out.append(format_address(addr[0], addr[1]))
        return out

    async def stop(self) -> None:
        """Stop accepting, close every connection with 320, requeue what they held."""
        for srv in self.servers + self.tls_servers:
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
        for srv in self.servers + self.tls_servers:
            await srv.wait_closed()
