"""Exchange and binding errors (catalog .ci/RABBITMQ_BEHAVIOUR.md sections 4 and 12)."""

from __future__ import annotations

import pytest

from tests.integration.rawamqp import (
    cleanup,
    connect,
    expect_channel_error,
    expect_connection_error,
    expect_ok,
)

PF = "PRECONDITION_FAILED - "
DEFAULT_REFUSED = "ACCESS_REFUSED - operation not permitted on the default exchange"


@pytest.fixture
def x(qname) -> str:
    return qname + ".x"


@pytest.fixture
def conn(broker_url, qname, x):
    c = connect(broker_url)
    yield c
    if c.is_open:
        c.close()
    cleanup(broker_url, queues=(qname,), exchanges=(x, x + ".ae", x + ".dest"))


def _inequivalent(arg: str, x: str, detail: str) -> str:
    return f"{PF}inequivalent arg '{arg}' for exchange '{x}' in vhost '/': {detail}"


# ---------------------------------------------------------------------------
# 4. exchanges: redeclaration
# ---------------------------------------------------------------------------

REDECLARE = [
    pytest.param(dict(exchange_type="direct"), dict(exchange_type="fanout"), "type",
                 "received 'fanout' but current is 'direct'", id="direct-to-fanout"),
    pytest.param(dict(exchange_type="topic"), dict(exchange_type="headers"), "type",
                 "received 'headers' but current is 'topic'", id="topic-to-headers"),
    pytest.param(dict(durable=False), dict(durable=True), "durable",
                 "received 'true' but current is 'false'", id="durable-false-to-true"),
    pytest.param(dict(durable=True), dict(durable=False), "durable",
                 "received 'false' but current is 'true'", id="durable-true-to-false"),
    pytest.param(dict(auto_delete=False), dict(auto_delete=True), "auto_delete",
                 "received 'true' but current is 'false'", id="auto-delete"),
    pytest.param(dict(internal=False), dict(internal=True), "internal",
                 "received 'true' but current is 'false'", id="internal"),
    pytest.param(dict(arguments={}), dict(arguments={"alternate-exchange": "ae"}), "alternate-exchange",
                 "received the value 'ae' of type 'longstr' but current is none", id="alternate-exchange"),
]


@pytest.mark.parametrize(("first", "second", "arg", "detail"), REDECLARE)
def test_redeclare_exchange_inequivalent(broker_url, conn, x, first, second, arg, detail):
    ch = conn.channel()
    ch.exchange_declare(x, **first)
    second = {"exchange_type": first.get("exchange_type", "direct"), **second}
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_declare(x, **second),
                         406, _inequivalent(arg, x, detail))


def test_redeclare_exchange_unknown_arg_changed_is_ok(broker_url, conn, x):
    ch = conn.channel()
    ch.exchange_declare(x, arguments={"x-foo": 1})
    expect_ok(broker_url, conn, ch, lambda c: c.exchange_declare(x, arguments={"x-foo": 2}))


# ---------------------------------------------------------------------------
# 4. exchanges: types
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("type_", "rabbit_text"), [
    pytest.param("foo", "COMMAND_INVALID - invalid exchange type 'foo'", id="foo"),
    pytest.param("", "COMMAND_INVALID - invalid exchange type ''", id="empty"),
    pytest.param("x-delayed-message", "COMMAND_INVALID - unknown exchange type 'x-delayed-message'",
                 id="x-delayed-message"),
])
def test_unknown_exchange_type(broker_url, against_rabbitmq, conn, x, type_, rabbit_text):
    ch = conn.channel()
    action = lambda c: c.exchange_declare(x, exchange_type=type_)  # noqa: E731
    if against_rabbitmq:
        # RabbitMQ 3.10: a hard error, the whole connection goes.
        expect_connection_error(broker_url, conn, ch, action, 503, rabbit_text)
    elif type_ == "x-delayed-message":
        # Built into Hutch (issue #16): without x-delayed-type, the plugin's 406.
        expect_channel_error(broker_url, conn, ch, action, 406,
                             f"{PF}Invalid argument, 'x-delayed-type' must be an existing "
                             "exchange type")
    else:
        # Deliberate: Hutch answers like RabbitMQ >= 3.13, closing only the channel.
        expect_channel_error(broker_url, conn, ch, action, 406,
                             f"{PF}invalid exchange type '{type_}'")
    # Nothing was created.
    c2 = connect(broker_url)
    try:
        expect_channel_error(broker_url, c2, c2.channel(), lambda c: c.exchange_declare(x, passive=True),
                             404, f"NOT_FOUND - no exchange '{x}' in vhost '/'")
    finally:
        c2.close()


def test_unknown_type_passive_on_missing_exchange(broker_url, conn, x):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch,
                         lambda c: c.exchange_declare(x, exchange_type="foo", passive=True),
                         404, f"NOT_FOUND - no exchange '{x}' in vhost '/'")


# ---------------------------------------------------------------------------
# 4. exchanges: reserved names, the default exchange, system exchanges
# ---------------------------------------------------------------------------

def test_declare_reserved_amq_prefix(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_declare("amq.foo"),
                         403, "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'")


def test_declare_reserved_amq_prefix_passive(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_declare("amq.foo", passive=True),
                         404, "NOT_FOUND - no exchange 'amq.foo' in vhost '/'")


def test_redeclare_amq_direct_equivalent_is_ok(broker_url, conn):
    ch = conn.channel()
    expect_ok(broker_url, conn, ch,
              lambda c: c.exchange_declare("amq.direct", exchange_type="direct", durable=True))


def test_redeclare_amq_direct_non_durable(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch,
                         lambda c: c.exchange_declare("amq.direct", exchange_type="direct", durable=False),
                         406, _inequivalent("durable", "amq.direct",
                                            "received 'false' but current is 'true'"))


def test_redeclare_amq_direct_as_fanout(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch,
                         lambda c: c.exchange_declare("amq.direct", exchange_type="fanout", durable=True),
                         406, _inequivalent("type", "amq.direct",
                                            "received 'fanout' but current is 'direct'"))


@pytest.mark.parametrize("kwargs", [
    pytest.param(dict(exchange_type="direct"), id="direct"),
    pytest.param(dict(exchange_type="fanout", durable=True), id="fanout"),
    pytest.param(dict(passive=True), id="passive"),
])
def test_declare_default_exchange(broker_url, conn, kwargs):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_declare("", **kwargs),
                         403, DEFAULT_REFUSED)


def test_delete_default_exchange(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_delete(""), 403, DEFAULT_REFUSED)


@pytest.mark.parametrize("op", ["bind", "unbind"])
def test_queue_bind_unbind_default_exchange(broker_url, conn, qname, op):
    ch = conn.channel()
    ch.queue_declare(qname)
    if op == "bind":
        action = lambda c: c.queue_bind(qname, "", routing_key=qname)  # noqa: E731
    else:
        action = lambda c: c.queue_unbind(qname, "", routing_key=qname)  # noqa: E731
    expect_channel_error(broker_url, conn, ch, action, 403, DEFAULT_REFUSED)


@pytest.mark.parametrize("side", ["source", "destination"])
def test_exchange_bind_default_exchange(broker_url, conn, x, side):
    ch = conn.channel()
    ch.exchange_declare(x, exchange_type="fanout")
    if side == "source":
        action = lambda c: c.exchange_bind(destination=x, source="")  # noqa: E731
    else:
        action = lambda c: c.exchange_bind(destination="", source=x)  # noqa: E731
    expect_channel_error(broker_url, conn, ch, action, 403, DEFAULT_REFUSED)


@pytest.mark.parametrize("if_unused", [False, True])
def test_delete_missing_exchange_is_ok(broker_url, conn, x, if_unused):
    ch = conn.channel()
    expect_ok(broker_url, conn, ch, lambda c: c.exchange_delete(x, if_unused=if_unused))


@pytest.mark.parametrize("name", ["amq.direct", "amq.foo"])
def test_delete_system_exchange(broker_url, conn, name):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_delete(name), 403,
                         f"ACCESS_REFUSED - deletion of system exchange '{name}' in vhost '/' not allowed")
    # amq.direct is still there.
    conn.channel().exchange_declare("amq.direct", passive=True)


def test_delete_exchange_if_unused_with_binding(broker_url, conn, qname, x):
    ch = conn.channel()
    ch.exchange_declare(x)
    ch.queue_declare(qname)
    ch.queue_bind(qname, x, routing_key="k")
    expect_channel_error(broker_url, conn, ch, lambda c: c.exchange_delete(x, if_unused=True),
                         406, f"{PF}exchange '{x}' in vhost '/' in use")
    conn.channel().exchange_declare(x, passive=True)


def test_publish_to_internal_exchange(broker_url, conn, x):
    ch = conn.channel()
    ch.exchange_declare(x, exchange_type="fanout", internal=True)
    expect_channel_error(broker_url, conn, ch, lambda c: c.basic_publish(x, "k", b"body"), 403,
                         f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'")


# ---------------------------------------------------------------------------
# 12. bindings
# ---------------------------------------------------------------------------

def test_bind_to_missing_exchange(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname)
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_bind(qname, "nosuchx"),
                         404, "NOT_FOUND - no exchange 'nosuchx' in vhost '/'")


def test_bind_missing_queue(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_bind("nosuchq", "amq.direct"),
                         404, "NOT_FOUND - no queue 'nosuchq' in vhost '/'")


def test_bind_missing_queue_and_exchange_reports_exchange(broker_url, conn):
    ch = conn.channel()
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_bind("nosuchq", "nosuchx"),
                         404, "NOT_FOUND - no exchange 'nosuchx' in vhost '/'")


def test_bind_to_missing_amq_exchange(broker_url, conn, qname):
    ch = conn.channel()
    ch.queue_declare(qname)
    expect_channel_error(broker_url, conn, ch, lambda c: c.queue_bind(qname, "amq.foo"),
                         404, "NOT_FOUND - no exchange 'amq.foo' in vhost '/'")


@pytest.mark.parametrize("case", ["no-binding", "missing-exchange", "missing-queue"])
def test_queue_unbind_nonexistent_is_ok(broker_url, conn, qname, case):
    ch = conn.channel()
    ch.queue_declare(qname)
    queue, exchange = {"no-binding": (qname, "amq.direct"), "missing-exchange": (qname, "nosuchx"),
                       "missing-queue": ("nosuchq", "amq.direct")}[case]
    expect_ok(broker_url, conn, ch, lambda c: c.queue_unbind(queue, exchange, routing_key="k"))


@pytest.mark.parametrize("side", ["source", "destination"])
def test_exchange_bind_missing(broker_url, conn, x, side):
    ch = conn.channel()
    ch.exchange_declare(x, exchange_type="fanout")
    if side == "source":
        action = lambda c: c.exchange_bind(destination=x, source="nosuchx")  # noqa: E731
    else:
        action = lambda c: c.exchange_bind(destination="nosuchx", source=x)  # noqa: E731
    expect_channel_error(broker_url, conn, ch, action, 404, "NOT_FOUND - no exchange 'nosuchx' in vhost '/'")


@pytest.mark.parametrize("case", ["no-binding", "missing-source"])
def test_exchange_unbind_nonexistent_is_ok(broker_url, conn, x, case):
    ch = conn.channel()
    ch.exchange_declare(x, exchange_type="fanout")
    source = "amq.fanout" if case == "no-binding" else "nosuchx"
    expect_ok(broker_url, conn, ch, lambda c: c.exchange_unbind(destination=x, source=source))
