"""AMQP over TLS with real clients (pika, aio-pika, aiormq), against Hutch or RabbitMQ.

The broker (tests/integration/tlshelp.py) verifies client certificates when they
come (verify_peer, fail_if_no_peer_cert = false) and offers EXTERNAL with
RabbitMQ's default ``ssl_cert_login_from = distinguished_name``.  Certificates:
tests/tlscerts.py.  Tests needing another broker setup are ``hutch_only`` in
test_tls_hutch.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import uuid

import aio_pika
import aiormq
import pika
import pika.credentials
import pika.exceptions
import pytest

from tests.integration.tlshelp import (
    AGAINST_RABBITMQ,
    AMQPS_URL,
    HANDSHAKE_TIMEOUT_MS,
    TlsBroker,
    connection_start,
    probe_closed,
    start_tls_broker,
)
from tests.tlscerts import CLIENT_DN

pytestmark = pytest.mark.skipif(AGAINST_RABBITMQ and not AMQPS_URL,
                                reason="HUTCH_TEST_AMQPS_URL not set (RabbitMQ without TLS)")


@pytest.fixture(scope="module")
def tls() -> TlsBroker:
    broker, proc = start_tls_broker()
    try:
        yield broker
    finally:
        if proc is not None:
            proc.stop()
            # Whatever the clients did, no traceback reached the log.
            assert "Traceback" not in proc.log_text(), proc.log_text()


def _roundtrip(conn: pika.BlockingConnection) -> None:
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"over tls")
    _method, _props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"over tls"


def test_pika_amqps_without_client_certificate(tls):
    conn = pika.BlockingConnection(tls.pika_params(tls.client_context()))
    try:
        _roundtrip(conn)
    finally:
        conn.close()


def test_pika_amqps_with_client_certificate(tls):
    conn = pika.BlockingConnection(tls.pika_params(tls.client_context("client")))
    try:
        _roundtrip(conn)
    finally:
        conn.close()


async def test_aio_pika_amqps(tls, qname):
    conn = await aio_pika.connect(f"amqps://guest:guest@localhost:{tls.tls_port}/",
                                  ssl_context=tls.client_context("client"), timeout=10)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(qname, auto_delete=True)
        await ch.default_exchange.publish(aio_pika.Message(b"aio"), routing_key=qname)
        msg = await q.get(timeout=5)
        await msg.ack()
        assert msg.body == b"aio"
        await q.delete()


async def test_aiormq_amqps(tls, qname):
    conn = await aiormq.connect(f"amqps://guest:guest@localhost:{tls.tls_port}/",
                                context=tls.client_context())
    try:
        ch = await conn.channel()
        await ch.queue_declare(qname, auto_delete=True)
        await ch.basic_publish(b"aiormq", routing_key=qname)
        got = await ch.basic_get(qname, no_ack=True)
        assert got.body == b"aiormq"
        await ch.queue_delete(qname)
    finally:
        await conn.close()


def test_client_refuses_server_certificate_from_another_ca(tls):
    ctx = tls.client_context(ca=tls.certs.other_ca)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)) as info:
        pika.BlockingConnection(tls.pika_params(ctx))
    assert "CERTIFICATE_VERIFY_FAILED" in repr(info.value)


@pytest.mark.parametrize("client", ["other-client", "expired"])
def test_server_refuses_client_certificate(tls, client):
    """A certificate from another CA, or an expired one: the handshake fails (with
    TLS 1.3 the client learns it on its first read) and the broker keeps serving."""
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, ConnectionError)):
        conn = pika.BlockingConnection(tls.pika_params(tls.client_context(client)))
        conn.channel()  # pragma: no cover - only reached if the broker accepted
    if tls.proc is not None:
        reason = ("unable to get local issuer certificate" if client == "other-client"
                  else "certificate has expired")
        assert tls.proc.wait_for_log(reason), tls.proc.log_text()
    conn = pika.BlockingConnection(tls.pika_params(tls.client_context("client")))
    _roundtrip(conn)
    conn.close()


def test_mechanisms_offered(tls):
    """EXTERNAL is offered on TLS connections only (rabbit_auth_mechanism_ssl:should_offer),
    with or without a client certificate; in RabbitMQ's order (auth.py)."""
    assert connection_start(tls.tls_port, tls.client_context("client")) == \
        b"PLAIN EXTERNAL AMQPLAIN"
    assert connection_start(tls.tls_port, tls.client_context()) == b"PLAIN EXTERNAL AMQPLAIN"
    plain = int(os.environ.get("HUTCH_TEST_AMQP_URL", "").rsplit(":", 1)[-1].strip("/") or 0) \
        if AGAINST_RABBITMQ else tls.proc.port
    assert connection_start(plain, None) == b"PLAIN AMQPLAIN"


def _external(tls: TlsBroker, client: str | None) -> pika.BlockingConnection:
    return pika.BlockingConnection(tls.pika_params(
        tls.client_context(client), pika.credentials.ExternalCredentials()))


def test_external_login_by_distinguished_name(tls):
    tls.add_user(CLIENT_DN)
    try:
        conn = _external(tls, "client")
        try:
            _roundtrip(conn)
        finally:
            conn.close()
    finally:
        tls.delete_user(CLIENT_DN)


def test_external_refused_without_user(tls):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        _external(tls, "client")
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL" in \
        str(info.value)
    if tls.proc is not None:
        assert tls.proc.wait_for_log(
            f"EXTERNAL login refused: user '{CLIENT_DN}' - invalid credentials")


def test_external_refused_without_client_certificate(tls):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        _external(tls, None)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL" in \
        str(info.value)
    if tls.proc is not None:
        assert tls.proc.wait_for_log("EXTERNAL login refused: connection peer presented no "
                                     "TLS (x.509) certificate")


@pytest.mark.parametrize("payload", [b"AMQP\x00\x00\x09\x01", b"GET / HTTP/1.0\r\n\r\n",
                                     os.urandom(64)], ids=["plain-amqp", "http", "garbage"])
def test_cleartext_on_the_tls_port_is_dropped(tls, payload):
    took = probe_closed(tls.tls_port, payload, timeout=HANDSHAKE_TIMEOUT_MS / 1000 + 8)
    assert took < HANDSHAKE_TIMEOUT_MS / 1000 + 3
    conn = pika.BlockingConnection(tls.pika_params(tls.client_context()))
    _roundtrip(conn)
    conn.close()


def test_silent_handshake_is_dropped_by_the_handshake_timeout(tls):
    took = probe_closed(tls.tls_port, b"", timeout=HANDSHAKE_TIMEOUT_MS / 1000 + 8)
    assert HANDSHAKE_TIMEOUT_MS / 1000 - 0.5 < took < HANDSHAKE_TIMEOUT_MS / 1000 + 3
    if tls.proc is not None:
        assert tls.proc.wait_for_log("failed: handshake timed out")


def test_many_failed_handshakes_leave_the_broker_serving(tls):
    """Handshakes failing by the dozen, concurrently with a working client."""
    conn = pika.BlockingConnection(tls.pika_params(tls.client_context("client")))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(30):
        with socket.create_connection(("127.0.0.1", tls.tls_port), timeout=5) as s:
            s.sendall(uuid.uuid4().bytes * (i + 1))
        ch.basic_publish("", q, str(i).encode())
    time.sleep(0.2)
    assert ch.queue_declare(q, passive=True).method.message_count == 30
    conn.close()


async def test_tls_connections_in_parallel(tls, qname):
    """Concurrent handshakes (the listener accepts while others are in progress)."""
    async def one(i: int) -> bytes:
        conn = await aiormq.connect(f"amqps://guest:guest@localhost:{tls.tls_port}/",
                                    context=tls.client_context("client"))
        try:
            ch = await conn.channel()
            await ch.queue_declare(f"{qname}.{i}", auto_delete=True)
            await ch.basic_publish(str(i).encode(), routing_key=f"{qname}.{i}")
            got = await ch.basic_get(f"{qname}.{i}", no_ack=True)
            await ch.queue_delete(f"{qname}.{i}")
            return got.body
        finally:
            await conn.close()

    bodies = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(10))), 30)
    assert bodies == [str(i).encode() for i in range(10)]
