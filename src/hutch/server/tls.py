"""TLS for every listener: the SSL contexts, their reload, and the TLS accept path.

Settings follow RabbitMQ's ``ssl_options.*`` (and ``management.ssl.*``,
``prometheus.ssl.*``): certfile, keyfile, cacertfile, password, verify
(``verify_none`` | ``verify_peer``), fail_if_no_peer_cert, versions, ciphers,
honor_cipher_order.  Defaults are RabbitMQ 4.x's: TLS 1.2 and 1.3 only,
``verify_none``.

Accepting: a TLS listener (``TlsServer``) accepts sockets itself and hands each
to ``loop.connect_accepted_socket`` with TLS, which makes the real protocol (an
AMQP ``Connection`` or aiohttp's request handler).  Doing that rather than
``create_server(ssl=...)`` gives three things:

* a failed handshake (unknown CA, expired certificate, plain AMQP or garbage on
  the TLS port) is one warning line naming the peer and OpenSSL's reason — asyncio
  would log nothing, or a traceback in debug mode — and the listener keeps going;
* each connection takes the context current *when it is accepted*
  (``TlsContext.current``), so a reload (SIGHUP) changes what new connections see
  and leaves established ones alone;
* a handshake that never completes is dropped after ``ssl_handshake_timeout``
  (RabbitMQ's default: 5 s).

Plain TCP listeners do not come here: they cost nothing more than before.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hutch.tls")

# RabbitMQ's ssl_handshake_timeout default (ms in rabbitmq.conf).
SSL_HANDSHAKE_TIMEOUT = 5.0

_VERSIONS = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}
_REFUSED_VERSIONS = ("tlsv1.1", "tlsv1", "tlsv1.0", "sslv3", "sslv2")
VERIFY_MODES = ("verify_none", "verify_peer")


class TlsConfigError(ValueError):
    """A TLS setting or file that cannot be used: the message names which and why."""


def parse_version(text: str) -> str:
    """``tlsv1.2`` / ``tlsv1.3`` (RabbitMQ's spelling, any case); older ones refused."""
    v = text.strip().lower()
    if v in _VERSIONS:
        return v
    if v in _REFUSED_VERSIONS:
        raise TlsConfigError(f"TLS version {text!r} is not supported: Hutch speaks TLS 1.2 and "
                             f"1.3 only (older versions are insecure and disabled in "
                             f"RabbitMQ 4.x's defaults too)")
    raise TlsConfigError(f"unknown TLS version {text!r} (expected tlsv1.2 or tlsv1.3)")


def parse_verify(text: str) -> str:
    if text not in VERIFY_MODES:
        raise TlsConfigError(f"invalid verify value {text!r} (expected verify_none or verify_peer)")
    return text


@dataclass
class TlsSettings:
    """One listener family's TLS options (``ssl_options.*`` for AMQP)."""

    certfile: str | None = None
    keyfile: str | None = None
    cacertfile: str | None = None
    password: str | None = None
    verify: str = "verify_none"
    fail_if_no_peer_cert: bool = False
    versions: list[str] = field(default_factory=lambda: ["tlsv1.2", "tlsv1.3"])
    ciphers: list[str] = field(default_factory=list)
    honor_cipher_order: bool = False

    @property
    def verify_peer(self) -> bool:
        return self.verify == "verify_peer"


def build_context(s: TlsSettings) -> ssl.SSLContext:
    """A server-side context from ``s``; every file is read now, so a missing or bad
    file fails here with a one-line ``TlsConfigError``."""
    if not s.certfile:
        raise TlsConfigError("TLS needs a certificate: set ssl_options.certfile (--tls-certfile)")
    # Erlang's ssl refuses both combinations, so RabbitMQ's listener does not start; here
    # the first would admit clients without a certificate and the second would admit
    # those without one and refuse every one that comes: either way not what was asked.
    if s.fail_if_no_peer_cert and not s.verify_peer:
        raise TlsConfigError("fail_if_no_peer_cert = true needs verify = verify_peer "
                             "(with verify_none no client certificate is asked for)")
    if s.verify_peer and not s.cacertfile:
        raise TlsConfigError("verify = verify_peer needs cacertfile: the CA bundle that "
                             "client certificates are checked against")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(_VERSIONS[parse_version(v)] for v in (s.versions or ["tlsv1.2", "tlsv1.3"]))
    ctx.minimum_version = versions[0]
    ctx.maximum_version = versions[-1]
    try:
        # A callable, never None: OpenSSL would otherwise ask for the pass phrase of an
        # encrypted key on the terminal, blocking the event loop (at a SIGHUP too).
        password = s.password
        ctx.load_cert_chain(s.certfile, s.keyfile or None, lambda: password or "")
    except FileNotFoundError as exc:
        raise TlsConfigError(f"cannot read TLS certificate/key {exc.filename or s.certfile}: "
                             f"{exc.strerror}") from None
    except (ssl.SSLError, OSError, ValueError) as exc:  # ValueError: password over 1 KiB
        raise TlsConfigError(f"cannot load TLS certificate {s.certfile}"
                             f"{' / key ' + s.keyfile if s.keyfile else ''}: "
                             f"{getattr(exc, 'reason', None) or exc}") from None
    if s.cacertfile:
        try:
            ctx.load_verify_locations(cafile=s.cacertfile)
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(f"cannot load TLS CA bundle {s.cacertfile}: "
                                 f"{getattr(exc, 'reason', None) or exc.strerror or exc}") from None
    if s.verify_peer:
        # Erlang's verify_peer asks for a certificate and checks any that comes;
        # fail_if_no_peer_cert then refuses a client that sends none.
        ctx.verify_mode = ssl.CERT_REQUIRED if s.fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if s.ciphers:
        _set_ciphers(ctx, s)
    if s.honor_cipher_order:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


# TLS 1.3's suites (RFC 8446), as RabbitMQ's ssl.md lists them for `versions = tlsv1.3`.
# Python's ssl cannot choose among them (no SSL_CTX_set_ciphersuites): OpenSSL offers its
# default set, all AEAD.  They are accepted so such a file works, and said so at start.
TLS13_SUITES = frozenset({"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                          "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                          "TLS_AES_128_CCM_8_SHA256"})


def _set_ciphers(ctx: ssl.SSLContext, s: TlsSettings) -> None:
    """``ciphers.N``: each name checked on its own (OpenSSL drops unknown names from a
    list silently; Erlang refuses them, and so does Hutch)."""
    tls12 = [c for c in s.ciphers if c not in TLS13_SUITES]
    for name in tls12:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(name)
        except ssl.SSLError:
            raise TlsConfigError(f"unknown cipher {name!r} (OpenSSL names for TLS 1.2, e.g. "
                                 f"ECDHE-RSA-AES256-GCM-SHA384; TLS 1.3: TLS_AES_256_GCM_SHA384)"
                                 ) from None
    if tls12:
        ctx.set_ciphers(":".join(tls12))
    elif "tlsv1.2" in (s.versions or ["tlsv1.2"]):
        raise TlsConfigError("ciphers lists only TLS 1.3 suites while tlsv1.2 is enabled: add "
                             "TLS 1.2 ciphers or set versions to tlsv1.3 only")
    if len(tls12) < len(s.ciphers):
        log.warning("TLS 1.3 cipher suites (%s) cannot be chosen with Python's ssl: "
                    "OpenSSL's TLS 1.3 defaults are offered",
                    ", ".join(c for c in s.ciphers if c in TLS13_SUITES))


class TlsContext:
    """The context new connections of one listener family get; ``reload`` swaps it."""

    def __init__(self, settings: TlsSettings, name: str,
                 handshake_timeout: float = SSL_HANDSHAKE_TIMEOUT) -> None:
        self.settings = settings
        self.name = name  # "AMQP", "management", "prometheus": for the log
        self.handshake_timeout = handshake_timeout  # ssl_handshake_timeout, seconds
        self.current = build_context(settings)

    def reload(self) -> bool:
        """Read the files again; on failure keep the old context and log one line."""
        try:
            self.current = build_context(self.settings)
        except TlsConfigError as exc:
            log.error("TLS certificate reload for %s failed, keeping the previous "
                      "certificates: %s", self.name, exc)
            return False
        log.info("TLS certificates for %s reloaded", self.name)
        return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, (ConnectionAbortedError, asyncio.TimeoutError, TimeoutError)):
        return "handshake timed out"
    return str(exc) or type(exc).__name__


class TlsServer:
    """A listening socket whose accepted connections get a TLS transport (with the
    context current at accept time) and a protocol from ``factory``; the subset of
    ``asyncio.Server`` that listener.py and admin/https.py use.

    Accepting by hand and handing the socket to ``loop.connect_accepted_socket``
    (rather than ``create_server(ssl=...)``) is what lets each connection take the
    current context and lets a failed handshake be logged: that call raises it.
    (``start_tls`` on an accepted transport would do too, but uvloop reads the first
    bytes before a paused transport's protocol can be switched, and the ClientHello
    is lost.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 factory: Callable[[], asyncio.BaseProtocol], tls: TlsContext,
                 what: str) -> None:
        self.loop = loop
        self.sockets = [sock]
        self.factory = factory
        self.tls = tls
        self.what = what
        self._handshakes: set[asyncio.Task[None]] = set()
        self._accepting = loop.create_task(self._accept_forever(sock))

    async def _accept_forever(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = await self.loop.sock_accept(sock)
            except OSError as exc:  # EMFILE and the like: keep the listener, try again
                log.warning("%s TLS listener: accept failed: %s", self.what, exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as create_server does
            task = self.loop.create_task(self._handshake(conn, peer))
            self._handshakes.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket, peer: Any) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn, ssl=self.tls.current,
                                                    ssl_handshake_timeout=self.tls.handshake_timeout)
        except Exception as exc:  # nothing a client sends may take the listener down
            log.warning("%s TLS handshake from %s:%s failed: %s", self.what, peer[0], peer[1],
                        _reason(exc))
            conn.close()

    def close(self) -> None:
        self._accepting.cancel()
        for t in list(self._handshakes):
            t.cancel()
        for s in self.sockets:
            s.close()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._accepting, *self._handshakes, return_exceptions=True)


async def create_tls_server(loop: asyncio.AbstractEventLoop,
                            factory: Callable[[], asyncio.BaseProtocol], tls: TlsContext,
                            host: str, port: int, *, what: str) -> TlsServer:
    """A listening TLS server on ``host:port`` (bound as ``create_server`` binds:
    SO_REUSEADDR, IPv6 only on an IPv6 address); raises OSError."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _name, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return TlsServer(loop, sock, factory, tls, what)


# -- the client certificate's name (rabbitmq_auth_mechanism_ssl) --------------------
# OpenSSL's long names (ssl.getpeercert()) -> the short names RabbitMQ prints
# (rabbit_cert_info:format_rdn).
_RDN_NAMES = {
    "surname": "SN", "givenName": "GIVENNAME", "initials": "INITIALS",
    "generationQualifier": "GENERATIONQUALIFIER", "commonName": "CN", "localityName": "L",
    "stateOrProvinceName": "ST", "organizationName": "O", "organizationalUnitName": "OU",
    "title": "TITLE", "countryName": "C", "serialNumber": "SERIALNUMBER",
    "pseudonym": "PSEUDONYM", "domainComponent": "DC", "emailAddress": "EMAILADDRESS",
    "userId": "UID",
}


def _rdn_type(name: str) -> str:
    """RabbitMQ's short name, or for an attribute outside its table the dotted OID it
    prints (``businessCategory`` -> ``2.5.4.15``; so is ``streetAddress``, whose entry in
    RabbitMQ's table never matches)."""
    if name in _RDN_NAMES:
        return _RDN_NAMES[name]
    try:
        return str(ssl._txt2obj(name, name=True)[3])  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return name


def _escape_rdn_value(value: str) -> str:
    """RabbitMQ's escaping (RFC 4514 plus: bytes < 32 or >= 126 of the UTF-8 form
    as ``\\XX``)."""
    raw = value.encode("utf-8")
    out = []
    for i, b in enumerate(raw):
        c = chr(b)
        if i == 0 and c in " #":
            out.append("\\" + c)
        elif i == len(raw) - 1 and c == " ":
            out.append("\\ ")
        elif c in '"+,;<>\\':
            out.append("\\" + c)
        elif b < 32 or b >= 126:
            out.append(f"\\{b:02X}")
        else:
            out.append(c)
    return "".join(out)


def distinguished_name(peercert: dict[str, Any]) -> str:
    """The subject as RabbitMQ prints it: RDNs last-first, joined by ``,``; several
    values of one RDN joined by ``+`` (e.g. ``CN=alice,O=Hutch,C=SE``)."""
    rdns = []
    for rdn in reversed(peercert.get("subject", ())):
        rdns.append("+".join(f"{_rdn_type(k)}={_escape_rdn_value(v)}" for k, v in rdn))
    return ",".join(rdns)


def common_names(peercert: dict[str, Any]) -> list[str]:
    return [v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"]
