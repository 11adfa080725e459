"""Users, vhosts and permissions enforced on the AMQP side, as RabbitMQ does.

Users and permissions are set up through the management API, so these tests
run against RabbitMQ too when ``HUTCH_TEST_HTTP_URL`` is set (the texts below
were recorded from RabbitMQ 3.10).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pika
import pytest

from tests.mgmt import Api, seg


class Setup:
    def __init__(self, api: Api, broker_url: str) -> None:
        self.api = api
        u = urlparse(broker_url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 5672
        tag = uuid.uuid4().hex[:6]
        self.user, self.password, self.vhost = f"bob-{tag}", "secret", f"perm-{tag}"

    def connect(self, vhost: str | None = None, password: str | None = None,
                user: str | None = None) -> pika.BlockingConnection:
        creds = pika.PlainCredentials(user or self.user, password or self.password)
        return pika.BlockingConnection(pika.ConnectionParameters(
            self.host, self.port, self.vhost if vhost is None else vhost, creds,
            connection_attempts=1))


@pytest.fixture
def perm(http_url: str, broker_url: str) -> Iterator[Setup]:
    api = Api(http_url)
    s = Setup(api, broker_url)
    api.add_user(s.user, s.password)
    assert api.put(f"vhosts/{s.vhost}").status_code == 201
    yield s
    api.delete(f"vhosts/{s.vhost}")
    api.delete(f"users/{s.user}")


def refused(s: Setup, what: str, name: str) -> str:
    return f"ACCESS_REFUSED - access to {what} '{name}' in vhost '{s.vhost}' refused for user '{s.user}'"


def expect_403(conn: pika.BlockingConnection, action: Callable[[pika.channel.Channel], object],
               text: str) -> None:
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        action(ch)
    assert (info.value.reply_code, info.value.reply_text) == (403, text)


def test_no_permission_in_vhost_refuses_connection_open(perm: Setup) -> None:
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        perm.connect()
    assert f"NOT_ALLOWED - access to vhost '{perm.vhost}' refused for user '{perm.user}'" \
        in str(info.value)
    perm.api.set_permissions(perm.vhost, perm.user)
    perm.connect().close()


def test_configure_write_read_regexes(perm: Setup) -> None:
    s = perm
    s.api.set_permissions(s.vhost, s.user, configure="^b.*", write="^bx$", read="^b.*")
    conn = s.connect()
    try:
        expect_403(conn, lambda ch: ch.queue_declare("q"), refused(s, "queue", "q"))
        conn.channel().queue_declare("bq")
        # Passive declares need no permission: a missing queue is 404 as usual.
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("q", passive=True)
        assert info.value.reply_code == 404
        expect_403(conn, lambda ch: (ch.confirm_delivery(), ch.basic_publish("", "bq", b"x")),
                   refused(s, "exchange", "amq.default"))
        # Permission is checked before existence.
        expect_403(conn, lambda ch: (ch.confirm_delivery(), ch.basic_publish("nosuch", "k", b"x")),
                   refused(s, "exchange", "nosuch"))
        conn.channel().exchange_declare("bx", "direct")
        expect_403(conn, lambda ch: ch.exchange_declare("x", "direct"),
                   refused(s, "exchange", "x"))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("bx", "k", b"x")
        expect_403(conn, lambda ch: (ch.confirm_delivery(),
                                     ch.basic_publish("amq.direct", "k", b"x")),
                   refused(s, "exchange", "amq.direct"))
        # bind needs write on the queue (bq does not match ^bx$).
        expect_403(conn, lambda ch: ch.queue_bind("bq", "bx", "k"), refused(s, "queue", "bq"))
        ch = conn.channel()
        ch.basic_get("bq")
        ch.basic_consume("bq", lambda *a: None)
        ch.queue_purge("bq")
        expect_403(conn, lambda ch: ch.basic_get("nosuchq"), refused(s, "queue", "nosuchq"))
        expect_403(conn, lambda ch: ch.queue_delete("q"), refused(s, "queue", "q"))
        expect_403(conn, lambda ch: ch.exchange_delete("x"), refused(s, "exchange", "x"))
        expect_403(conn, lambda ch: ch.queue_declare(
            "bdl", arguments={"x-dead-letter-exchange": "amq.fanout"}),
            refused(s, "exchange", "amq.fanout"))
        conn.channel().queue_delete("bq")
    finally:
        if conn.is_open:
            conn.close()


def test_read_only_user(perm: Setup, qname: str) -> None:
    s = perm
    s.api.set_permissions(s.vhost, s.user, configure="", write="", read=".*")
    s.api.ok("PUT", f"queues/{seg(s.vhost)}/{seg(qname)}", {"durable": False})
    s.api.ok("POST", f"exchanges/{seg(s.vhost)}/amq.default/publish",
             {"routing_key": qname, "payload": "hello", "payload_encoding": "string",
              "properties": {}})
    conn = s.connect()
    try:
        _method, _props, body = conn.channel().basic_get(qname, auto_ack=True)
        assert body == b"hello"
        expect_403(conn, lambda ch: ch.queue_declare(qname + "2"), refused(s, "queue", qname + "2"))
        expect_403(conn, lambda ch: ch.basic_publish("", qname, b"x") or ch.queue_declare(
            qname, passive=True), refused(s, "exchange", "amq.default"))
    finally:
        if conn.is_open:
            conn.close()


def test_changed_password_applies_to_new_connections(perm: Setup) -> None:
    s = perm
    s.api.set_permissions(s.vhost, s.user)
    old = s.connect()
    s.api.add_user(s.user, "new-secret")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        s.connect()
    s.connect(password="new-secret").close()
    assert old.is_open  # existing connections are not affected
    old.close()


@pytest.mark.hutch_only
def test_permission_change_applies_to_open_connection(perm: Setup) -> None:
    s = perm
    s.api.set_permissions(s.vhost, s.user)
    conn = s.connect()
    try:
        conn.channel().queue_declare("before")
        s.api.set_permissions(s.vhost, s.user, configure="^$")
        expect_403(conn, lambda ch: ch.queue_declare("after"), refused(s, "queue", "after"))
    finally:
        conn.close()
