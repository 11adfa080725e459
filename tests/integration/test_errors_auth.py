"""Authentication and vhost errors (catalog .ci/RABBITMQ_BEHAVIOUR.md section 10)."""

from __future__ import annotations

from urllib.parse import urlparse, urlunparse

import pika
import pika.exceptions
import pytest
from pamqp import commands as cmd

from tests.integration.rawamqp import (
    RawConnection,
    assert_broker_ok,
    close_fields,
    connect,
)


def _refused(mechanism: str) -> str:
    return (f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. "
            "For details see the broker logfile.")


def _with(url: str, user: str | None = None, password: str | None = None, vhost: str | None = None) -> str:
    u = urlparse(url)
    netloc = f"{user or u.username}:{password or u.password}@{u.hostname}:{u.port}"
    path = u.path if vhost is None else "/" + vhost
    return urlunparse(u._replace(netloc=netloc, path=path))


def _raw_login(url: str, mechanism: str, user: str, password: str) -> tuple[int, str, int, int]:
    raw = RawConnection(url)
    try:
        raw.handshake(mechanism=mechanism, user=user, password=password)
        assert raw.last_close is not None, "login was not refused"
        try:
            raw.send(0, cmd.Connection.CloseOk())
        except OSError:
            pass
        raw.wait_socket_closed()
        return close_fields(raw.last_close)
    finally:
        raw.close_socket()


def test_wrong_password_pika(broker_url):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        connect(_with(broker_url, password="wrong"))
    assert "ACCESS_REFUSED" in str(info.value)
    assert "403" in str(info.value)
    assert_broker_ok(broker_url)


@pytest.mark.parametrize(("mechanism", "user", "password"), [
    pytest.param("PLAIN", "guest", "wrong", id="plain-wrong-password"),
    pytest.param("PLAIN", "nobody", "guest", id="plain-unknown-user"),
    pytest.param("AMQPLAIN", "guest", "wrong", id="amqplain-wrong-password"),
    pytest.param("AMQPLAIN", "nobody", "guest", id="amqplain-unknown-user"),
])
def test_login_refused(broker_url, mechanism, user, password):
    # connection.close in reply to start-ok (authentication_failure_close), class/method 0/0.
    assert _raw_login(broker_url, mechanism, user, password) == (403, _refused(mechanism), 0, 0)
    assert_broker_ok(broker_url)


def test_unknown_vhost_pika(broker_url):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        connect(_with(broker_url, vhost="%2Fnope"))
    assert "(530) 'NOT_ALLOWED - vhost /nope not found'" in str(info.value)
    assert_broker_ok(broker_url)


def test_unknown_vhost_raw(broker_url):
    raw = RawConnection(broker_url)
    try:
        raw.handshake(open_connection=False)
        raw.send(0, cmd.Connection.Open(virtual_host="/nope"))
        close = raw.expect_connection_close()
        assert close_fields(close) == (530, "NOT_ALLOWED - vhost /nope not found", 10, 40)
        raw.wait_socket_closed()
    finally:
        raw.close_socket()
    assert_broker_ok(broker_url)


# ---------------------------------------------------------------------------
# Hutch's log mirrors RabbitMQ's error lines
# ---------------------------------------------------------------------------

@pytest.mark.hutch_only
def test_hutch_logs_refused_logins(hutch):
    url = hutch.url
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(_with(url, password="wrong"))
    assert hutch.wait_for_log("PLAIN login refused: user 'guest' - invalid credentials"), hutch.log_text()

    _raw_login(url, "AMQPLAIN", "guest", "wrong")
    assert hutch.wait_for_log("AMQPLAIN login refused: user 'guest' - invalid credentials"), hutch.log_text()

    _raw_login(url, "PLAIN", "nobody", "guest")
    assert hutch.wait_for_log("PLAIN login refused: user 'nobody' - invalid credentials"), hutch.log_text()
    assert_broker_ok(url)


@pytest.mark.hutch_only
def test_hutch_logs_unknown_vhost(hutch):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(_with(hutch.url, vhost="%2Fnope"))
    assert hutch.wait_for_log("vhost /nope not found"), hutch.log_text()
    assert_broker_ok(hutch.url)


def test_plain_with_an_authorization_identity_is_refused(broker_url):
    """PLAIN's response is ``authzid NUL user NUL password``; RabbitMQ takes no authzid
    and refuses a response that does not start with NUL (Hutch logged such a client in
    as the user, ignoring the identity it asked for)."""
    import socket
    import struct

    u = urlparse(broker_url)
    s = socket.create_connection((u.hostname, u.port), timeout=5)
    try:
        s.sendall(b"AMQP\x00\x00\x09\x01")

        def frame() -> tuple[int, bytes]:
            head = b""
            while len(head) < 7:
                chunk = s.recv(7 - len(head))
                if not chunk:
                    raise ConnectionError("closed")
                head += chunk
            ftype, _ch, size = struct.unpack(">BHI", head)
            body = b""
            while len(body) < size + 1:
                chunk = s.recv(size + 1 - len(body))
                if not chunk:
                    raise ConnectionError("closed")
                body += chunk
            return ftype, body[:size]

        frame()  # connection.start
        response = b"someone-else\x00guest\x00guest"
        args = (struct.pack(">I", 0) + b"\x05PLAIN" + struct.pack(">I", len(response)) + response
                + b"\x05en_US")
        payload = struct.pack(">HH", 10, 11) + args
        s.sendall(struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce")
        try:
            _ftype, reply = frame()
        except (ConnectionError, OSError):
            reply = b""  # RabbitMQ closes the socket without a frame
        assert reply[:4] != struct.pack(">HH", 10, 30), "logged in (connection.tune)"
    finally:
        s.close()
    assert_broker_ok(broker_url)
