"""Shared by the TLS tests: the broker under test over amqps, client contexts, raw probes.

Against Hutch the module-scoped ``TlsBroker`` is a private ``hutch serve`` with an
AMQPS listener set as ``.ci/rabbitmq.sh`` sets RabbitMQ's (verify_peer,
fail_if_no_peer_cert = false, PLAIN AMQPLAIN EXTERNAL, DN login,
ssl_handshake_timeout 2 s).  With ``HUTCH_TEST_AMQPS_URL`` and
``HUTCH_TEST_TLS_DIR`` set (``.ci/run``), the same tests talk to RabbitMQ with the
certificates of that dir.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import tempfile
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from urllib.parse import quote, urlparse

import pika

from tests.brokerproc import HutchProcess
from tests.tlscerts import Certs, make_certs

AMQPS_URL = os.environ.get("HUTCH_TEST_AMQPS_URL")
TLS_DIR = os.environ.get("HUTCH_TEST_TLS_DIR")
AGAINST_RABBITMQ = bool(os.environ.get("HUTCH_TEST_AMQP_URL"))
HANDSHAKE_TIMEOUT_MS = 2000


def hutch_tls_args(certs: Certs, *extra: str) -> list[str]:
    cert, key = certs.pair("server")
    return ["--tls-port", "0", "--tls-certfile", cert, "--tls-keyfile", key,
            "--tls-cacertfile", certs.ca, "--tls-verify", "verify_peer",
            "--ssl-handshake-timeout", str(HANDSHAKE_TIMEOUT_MS), *extra]


@dataclass
class TlsBroker:
    certs: Certs
    tls_port: int
    http_url: str
    proc: HutchProcess | None = None

    def client_context(self, client: str | None = None, ca: str | None = None) -> ssl.SSLContext:
        """A client context trusting ``ca`` (default: the test CA), presenting the
        ``client`` pair (``client``, ``expired``, ``other-client``) if given."""
        ctx = ssl.create_default_context(cafile=ca or self.certs.ca)
        if client:
            ctx.load_cert_chain(*self.certs.pair(client))
        return ctx

    def pika_params(self, ctx: ssl.SSLContext, credentials: object = None,
                    port: int | None = None) -> pika.ConnectionParameters:
        creds = credentials or pika.PlainCredentials("guest", "guest")
        return pika.ConnectionParameters(
            "localhost", port or self.tls_port, credentials=creds,
            ssl_options=pika.SSLOptions(ctx, "localhost"), connection_attempts=1,
            socket_timeout=5, blocked_connection_timeout=5)

    def api(self, method: str, path: str, body: object = None) -> int:
        req = urllib.request.Request(self.http_url + "api/" + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Authorization", "Basic " + b64encode(b"guest:guest").decode())
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def add_user(self, name: str) -> None:
        assert self.api("PUT", f"users/{quote(name, safe='')}", {"password": "", "tags": ""}) \
            in (201, 204)
        assert self.api("PUT", f"permissions/%2F/{quote(name, safe='')}",
                        {"configure": ".*", "write": ".*", "read": ".*"}) in (201, 204)

    def delete_user(self, name: str) -> None:
        self.api("DELETE", f"users/{quote(name, safe='')}")


def start_tls_broker() -> tuple[TlsBroker, HutchProcess | None]:
    if AMQPS_URL:
        assert TLS_DIR, "HUTCH_TEST_AMQPS_URL needs HUTCH_TEST_TLS_DIR (the certificates)"
        http = os.environ.get("HUTCH_TEST_HTTP_URL", "").rstrip("/") + "/"
        return TlsBroker(Certs(TLS_DIR), urlparse(AMQPS_URL).port or 5671, http), None
    certs = make_certs(tempfile.mkdtemp(prefix="hutch-tls-"))
    proc = HutchProcess(*hutch_tls_args(certs, "--auth-mechanisms", "PLAIN,AMQPLAIN,EXTERNAL"),
                        http=True)
    proc.start()
    return TlsBroker(certs, proc.tls_port, proc.http_url, proc), proc


def connection_start(port: int, ctx: ssl.SSLContext | None) -> bytes:
    """The mechanisms field of the connection.start the broker sends (TLS if ``ctx``)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
    try:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        buf = b""
        while len(buf) < 7 or len(buf) < 8 + struct.unpack(">I", buf[3:7])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        sock.close()
    from pamqp import frame as pframe

    _n, _ch, method = pframe.unmarshal(buf)
    return method.mechanisms.encode() if isinstance(method.mechanisms, str) else method.mechanisms


def probe_closed(port: int, payload: bytes, timeout: float) -> float:
    """Send ``payload`` in clear to ``port`` and return how long until the broker
    closed the connection (raises socket.timeout after ``timeout``)."""
    import time

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    start = time.monotonic()
    try:
        if payload:
            sock.sendall(payload)
        while True:
            try:
                if not sock.recv(4096):
                    break
            except ConnectionResetError:
                break
    finally:
        sock.close()
    return time.monotonic() - start
