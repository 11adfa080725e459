"""Headers of any type and any depth: never an exception, never a lost message.

Message headers are whatever a client sent.  RabbitMQ 3.10's rules where it reads them
(rabbit_dead_letter:update_x_death_header): an ``x-death`` that is not an array is
reset to one new entry (``x-first-death-*`` untouched); ``x-first-death-*`` are set
only when there was no ``x-death``.  Tables nest to any depth.
"""

from __future__ import annotations

import decimal
import struct
import time
import uuid

import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as cmd

from tests.integration.rawamqp import RawConnection, raw_frame, raw_session
from tests.mgmt import Api

# -- raw field tables (every type Hutch's codec knows, built by hand) -------------------------


def _ss(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def _long(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


_KEYS = st.text("abcdefghijk-_.0123456789", min_size=1, max_size=12).map(lambda k: "k" + k)
_FINITE = {"allow_nan": False, "allow_infinity": False}  # RabbitMQ refuses NaN/inf: 541
_SCALARS = st.one_of(
    st.booleans().map(lambda v: b"t" + bytes([v])),
    st.integers(-128, 127).map(lambda v: b"b" + struct.pack(">b", v)),
    st.integers(0, 255).map(lambda v: b"B" + bytes([v])),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: b"s" + struct.pack(">h", v)),
    st.integers(0, 2**16 - 1).map(lambda v: b"u" + struct.pack(">H", v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: b"I" + struct.pack(">i", v)),
    st.integers(0, 2**32 - 1).map(lambda v: b"i" + struct.pack(">I", v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: b"l" + struct.pack(">q", v)),
    st.floats(width=32, **_FINITE).map(lambda v: b"f" + struct.pack(">f", v)),
    st.floats(**_FINITE).map(lambda v: b"d" + struct.pack(">d", v)),
    st.tuples(st.integers(0, 255), st.integers(-(2**31), 2**31 - 1)).map(
        lambda v: b"D" + bytes([v[0]]) + struct.pack(">i", v[1])),
    st.integers(0, 2**64 - 1).map(lambda v: b"T" + struct.pack(">Q", v)),
    st.binary(max_size=20).map(lambda v: b"S" + _long(v)),  # any bytes, UTF-8 or not
    st.binary(max_size=20).map(lambda v: b"x" + _long(v)),
    st.just(b"V"),
)


def _table(entries: list[tuple[str, bytes]]) -> bytes:
    return _long(b"".join(_ss(k.encode()) + v for k, v in entries))


_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(st.tuples(_KEYS, inner), max_size=4).map(lambda e: b"F" + _table(e)),
        st.lists(inner, max_size=4).map(lambda items: b"A" + _long(b"".join(items))),
    ),
    max_leaves=12,
)
# x-death as RabbitMQ copes with it: absent, an array of tables, or anything that is not
# an array (an array holding something else crashes RabbitMQ's queue: not generated).
_X_DEATH = st.one_of(
    st.none(),
    st.lists(st.lists(st.tuples(_KEYS, _VALUES), max_size=3).map(lambda e: b"F" + _table(e)),
             max_size=3).map(lambda items: b"A" + _long(b"".join(items))),
    _SCALARS,
    st.lists(st.tuples(_KEYS, _VALUES), max_size=3).map(lambda e: b"F" + _table(e)),
)
HEADERS = st.tuples(st.lists(st.tuples(_KEYS, _VALUES), max_size=6), _X_DEATH,
                    st.sampled_from(["x-first-death-reason", "x-first-death-queue", None]))


# -- raw AMQP helpers ----------------------------------------------------------------------------


def _read_raw(conn: RawConnection, timeout: float = 5.0) -> tuple[int, int, bytes]:
    """(frame type, channel, payload), not decoded: pamqp cannot read every table."""
    deadline = time.monotonic() + timeout
    while len(conn.buf) < 7 or len(conn.buf) < 8 + struct.unpack_from(">I", conn.buf, 3)[0]:
        conn._fill(deadline)
    ftype, channel, size = struct.unpack_from(">BHI", conn.buf, 0)
    payload = conn.buf[7:7 + size]
    conn.buf = conn.buf[8 + size:]
    while ftype == 8:  # heartbeat
        return _read_raw(conn, timeout)
    return ftype, channel, payload


def _expect_method(conn: RawConnection, ids: bytes) -> bytes:
    ftype, _ch, payload = _read_raw(conn)
    assert ftype == 1, f"frame type {ftype}"
    assert payload[:4] == ids, f"expected {ids.hex()}, got {payload[:4].hex()} {payload[4:80]!r}"
    return payload


def _publish(conn: RawConnection, exchange: str, routing_key: str, headers: bytes) -> None:
    props = struct.pack(">H", (1 << 13) | (1 << 12)) + headers + b"\x02"
    conn.send(1, cmd.Basic.Publish(exchange=exchange, routing_key=routing_key))
    conn.send_bytes(raw_frame(2, 1, struct.pack(">HHQ", 60, 0, 4) + props))
    conn.send_bytes(raw_frame(3, 1, b"body"))


def _get(conn: RawConnection, queue: str, no_ack: bool, timeout: float = 5.0) -> int | None:
    """basic.get on channel 1 until a message comes (delivery tag) or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        conn.send_bytes(raw_frame(1, 1, struct.pack(">HHH", 60, 70, 0) + _ss(queue.encode())
                                  + bytes([no_ack])))
        ftype, _ch, payload = _read_raw(conn)
        assert ftype == 1 and payload[:3] == b"\x00\x3c\x00", payload[:80]
        if payload[3] == 71:  # get-ok
            tag = struct.unpack_from(">Q", payload, 4)[0]
            assert _read_raw(conn)[0] == 2 and _read_raw(conn)[0] == 3
            return tag
        assert payload[3] == 72, payload[:80]  # get-empty
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


@pytest.fixture
def topology(broker_url):
    """hx (headers) -> q.ttl (TTL 20 ms) and q.rej, both dead-lettering to dlx -> dlq."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"hdr.{k}.{tag}" for k in ("hx", "dlx", "dlq", "ttl", "rej")}
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.exchange_declare(names["hx"], "headers", auto_delete=True)
    ch.exchange_declare(names["dlx"], "fanout", auto_delete=True)
    ch.queue_declare(names["dlq"], arguments={"x-queue-mode": "default"})
    ch.queue_bind(names["dlq"], names["dlx"])
    for kind, extra in (("ttl", {"x-message-ttl": 20}), ("rej", {})):
        ch.queue_declare(names[kind], arguments={"x-dead-letter-exchange": names["dlx"], **extra})
        ch.queue_bind(names[kind], names["hx"], arguments={"x-match": "any", "route": "yes"})
    yield names
    for kind in ("dlq", "ttl", "rej"):
        ch.queue_delete(names[kind])
    conn.close()


def _headers_bytes(entries, x_death, first_death) -> bytes:
    all_entries = [*entries, ("route", b"S" + _long(b"yes"))]
    if x_death is not None:
        all_entries.append(("x-death", x_death))
    if first_death is not None:
        all_entries.append((first_death, b"I\x00\x00\x00\x07"))
    return _table(all_entries)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HEADERS)
def test_random_headers_through_headers_exchange_ttl_and_dlx(broker_url, session_hutch, topology,
                                                            headers):
    """Each message reaches both queues through the headers exchange; one copy expires,
    one is rejected, both end up in the dead-letter queue, and no connection closes."""
    start = len(session_hutch.log_lines) if session_hutch else 0
    conn = raw_session(broker_url)
    try:
        conn.rpc(1, cmd.Confirm.Select(), cmd.Confirm.SelectOk)
        _publish(conn, topology["hx"], "", _headers_bytes(*headers))
        _expect_method(conn, b"\x00\x3c\x00\x50")  # basic.ack: taken (no 541)
        tag = _get(conn, topology["rej"], no_ack=False)
        assert tag is not None, "the headers exchange did not route the message"
        conn.send_bytes(raw_frame(1, 1, struct.pack(">HHQB", 60, 90, tag, 0)))  # reject
        assert _get(conn, topology["dlq"], no_ack=True) is not None, "rejected copy lost"
        assert _get(conn, topology["dlq"], no_ack=True) is not None, "expired copy lost"
        assert _get(conn, topology["ttl"], no_ack=True, timeout=0) is None
        conn.send(1, cmd.Basic.Qos(prefetch_count=0))  # the connection is still fine
        _expect_method(conn, b"\x00\x3c\x00\x0b")
    finally:
        conn.close_socket()
    if session_hutch:
        assert "Traceback" not in "\n".join(session_hutch.log_lines[start:])


@pytest.mark.parametrize("x_death", [5, "not an array", decimal.Decimal("1.5"), {"a": 1}],
                         ids=["int", "string", "decimal", "table"])
@pytest.mark.parametrize("how", ["rejected", "expired"])
def test_x_death_that_is_not_an_array_is_reset(broker_url, topology, x_death, how):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        props = pika.BasicProperties(headers={"x-death": x_death, "route": "yes"})
        ch.basic_publish(topology["hx"], "", b"m", props)
        source = topology["rej"] if how == "rejected" else topology["ttl"]
        if how == "rejected":
            method, _p, _b = ch.basic_get(topology["rej"])
            assert method is not None
            ch.basic_reject(method.delivery_tag, requeue=False)
        deadline = time.monotonic() + 5
        while (got := ch.basic_get(topology["dlq"], auto_ack=True))[0] is None:
            assert time.monotonic() < deadline, "the message was lost"
            time.sleep(0.02)
        headers = got[1].headers
        (death,) = headers["x-death"]
        assert (death["count"], death["reason"], death["queue"]) == (1, how, source)
        # x-death was there (of another type): no x-first-death-* (RabbitMQ 3.10)
        assert not any(k.startswith("x-first-death") for k in headers)
        assert conn.is_open
    finally:
        if conn.is_open:
            conn.close()
    # The TTL queue still expires what comes next.
    if how == "expired":
        conn = pika.BlockingConnection(pika.URLParameters(broker_url))
        ch = conn.channel()
        ch.basic_publish(topology["hx"], "", b"m2", pika.BasicProperties(headers={"route": "yes"}))
        deadline = time.monotonic() + 5
        while ch.basic_get(topology["dlq"], auto_ack=True)[0] is None:
            assert time.monotonic() < deadline, "expiry stopped for the queue"
            time.sleep(0.02)
        conn.close()


def test_first_death_headers_are_set_when_there_was_no_x_death(broker_url, topology):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.basic_publish(topology["hx"], "", b"m", pika.BasicProperties(
            headers={"route": "yes", "x-first-death-queue": "made up", "x-first-death-reason": 5}))
        method, _p, _b = ch.basic_get(topology["rej"])
        ch.basic_reject(method.delivery_tag, requeue=False)
        _m, props, _b = _wait_get(ch, topology["dlq"])
        # RabbitMQ sets them (replacing what the publisher put there).
        assert props.headers["x-first-death-queue"] == topology["rej"]
        assert props.headers["x-first-death-reason"] == "rejected"
        assert props.headers["x-first-death-exchange"] == topology["hx"]
    finally:
        conn.close()


@pytest.mark.hutch_only
@pytest.mark.parametrize("x_death", [[1, "x"], [{"queue": "Q", "reason": "rejected", "count": "many"}]],
                         ids=["array-of-non-tables", "count-not-a-number"])
def test_x_death_rabbitmq_would_crash_on(broker_url, session_hutch, topology, x_death):
    """Where RabbitMQ's queue process would crash, Hutch keeps the odd elements and
    starts the count again at 1 (README, Known differences)."""
    start = len(session_hutch.log_lines)
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        x_death = [dict(d, queue=topology["rej"]) if isinstance(d, dict) else d for d in x_death]
        ch.basic_publish(topology["hx"], "", b"m", pika.BasicProperties(
            headers={"x-death": x_death, "route": "yes"}))
        method, _p, _b = ch.basic_get(topology["rej"])
        ch.basic_reject(method.delivery_tag, requeue=False)
        _m, props, _b = _wait_get(ch, topology["dlq"])
        first = props.headers["x-death"][0]
        assert (first["count"], first["reason"], first["queue"]) == (1, "rejected", topology["rej"])
        if not isinstance(x_death[0], dict):
            assert props.headers["x-death"][1:] == x_death
    finally:
        conn.close()
    assert "Traceback" not in "\n".join(session_hutch.log_lines[start:])


def _wait_get(ch, queue: str):
    """basic.get until a message comes: dead-lettering is asynchronous in RabbitMQ."""
    deadline = time.monotonic() + 5
    while (got := ch.basic_get(queue, auto_ack=True))[0] is None:
        assert time.monotonic() < deadline, f"nothing arrived in {queue}"
        time.sleep(0.02)
    return got


def _deep_headers(levels: int) -> bytes:
    inner = b""
    for _ in range(levels):
        inner = _ss(b"a") + b"F" + _long(inner)
    return _table([("route", b"S" + _long(b"yes")), ("deep", b"F" + _long(inner))])


def test_deep_headers_route_expire_and_dead_letter(broker_url, topology):
    """10,000 nested tables: RabbitMQ takes them; so must every reader of headers."""
    conn = raw_session(broker_url)
    try:
        conn.rpc(1, cmd.Confirm.Select(), cmd.Confirm.SelectOk)
        _publish(conn, topology["hx"], "", _deep_headers(10_000))
        _expect_method(conn, b"\x00\x3c\x00\x50")
        tag = _get(conn, topology["rej"], no_ack=False)
        assert tag is not None
        conn.send_bytes(raw_frame(1, 1, struct.pack(">HHQB", 60, 90, tag, 0)))
        assert _get(conn, topology["dlq"], no_ack=True) is not None
        assert _get(conn, topology["dlq"], no_ack=True) is not None
    finally:
        conn.close_socket()


@pytest.mark.hutch_only
def test_http_get_renders_deep_and_odd_headers(hutch_http):
    """POST /api/queues/{vhost}/{name}/get answered 500 for a 10,000-deep table and left
    the message unacked for good; every header the AMQP side took must render."""
    api = Api(hutch_http.http_url)
    conn = raw_session(hutch_http.url)
    try:
        conn.rpc(1, cmd.Queue.Declare(queue="odd"), cmd.Queue.DeclareOk)
        conn.rpc(1, cmd.Confirm.Select(), cmd.Confirm.SelectOk)
        _publish(conn, "", "odd", _deep_headers(10_000))
        _publish(conn, "", "odd", _table([("bad", b"S" + _long(b"\xff\xfe")),
                                          ("far", b"T" + struct.pack(">Q", 2**63))]))
        _publish(conn, "", "odd", _table([("k", b"Z")]))  # unknown type: never decoded
        while struct.unpack_from(">Q", _expect_method(conn, b"\x00\x3c\x00\x50"), 4)[0] < 3:
            pass  # acks may cover several publishes (multiple=true)
    finally:
        conn.close_socket()
    for ackmode in ("ack_requeue_true", "ack_requeue_false"):
        resp = api.post("queues/%2F/odd/get", {"count": 3, "ackmode": ackmode, "encoding": "auto"})
        assert resp.status_code == 200, resp.text[:300]
        text = resp.text
        assert text.count('"payload": "body"') == 3
        assert text.count('{"a": ') == 10_000  # the whole depth, as RabbitMQ shows it
        assert '"far": 9223372036854775808' in text
    queue = api.ok("GET", "queues/%2F/odd")
    assert (queue["messages"], queue["messages_unacknowledged"]) == (0, 0)
    assert "Traceback" not in hutch_http.log_text()


X_MATCH = {
    "unknown": (b"S" + _long(b"foo"), "Invalid x-match field value <<\"foo\">>; expected all, any, "
                                      "all-with-x, or any-with-x"),
    "int": (b"I\x00\x00\x00\x05", "Invalid x-match field type signedint (value 5); expected longstr"),
    "bytes": (b"x" + _long(b"any"), "Invalid x-match field type binary (value <<\"any\">>); "
                                    "expected longstr"),
    "void": (b"V", "Invalid x-match field type void (value undefined); expected longstr"),
}


@pytest.mark.parametrize(("value", "text"), X_MATCH.values(), ids=X_MATCH.keys())
def test_bad_x_match_is_refused_at_bind(broker_url, value, text):
    """rabbit_exchange_type_headers:validate_binding (a headers exchange used to treat
    anything but all/all-with-x as any)."""
    conn = raw_session(broker_url)
    try:
        conn.send(1, cmd.Queue.Declare(queue="", exclusive=True))
        queue = conn.expect(1, cmd.Queue.DeclareOk).queue
        args = _table([("x-match", value), ("k", b"S" + _long(b"v"))])
        conn.send_bytes(raw_frame(1, 1, struct.pack(">HHH", 50, 20, 0) + _ss(queue.encode())
                                  + _ss(b"amq.headers") + _ss(b"") + b"\x00" + args))
        close = conn.expect_channel_close(1)
        assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
            406, "PRECONDITION_FAILED - " + text, 50, 20)
    finally:
        conn.close_socket()


def test_x_death_count_is_a_long(broker_url, topology):
    """RabbitMQ writes x-death's count as a long ('l'), whatever size it is."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.basic_publish(topology["hx"], "", b"m", pika.BasicProperties(headers={"route": "yes"}))
        method, _p, _b = ch.basic_get(topology["rej"])
        ch.basic_reject(method.delivery_tag, requeue=False)
        _wait_get(ch, topology["dlq"])
        ch.basic_recover(requeue=True)  # back in the dead-letter queue, for the raw read
    finally:
        conn.close()
    raw = raw_session(broker_url)
    try:
        deadline = time.monotonic() + 5
        while True:
            raw.send_bytes(raw_frame(1, 1, struct.pack(">HHH", 60, 70, 0)
                                     + _ss(topology["dlq"].encode()) + b"\x01"))
            _ftype, _ch, payload = _read_raw(raw)
            if payload[3] == 71:
                break
            assert time.monotonic() < deadline, "the dead letter did not come back"
            time.sleep(0.02)
        _ftype, _ch, header = _read_raw(raw)
        assert b"\x05countl" in header and b"\x05countI" not in header
    finally:
        raw.close()
