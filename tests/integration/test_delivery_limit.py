"""Delivery limit and poison messages: ``x-delivery-limit``, ``x-delivery-count``.

Hutch follows RabbitMQ 4.3's quorum queues (broker/redelivery.py): ``basic.reject``
with requeue and a consumer going away count as failed deliveries, ``basic.nack``
with requeue does not (rabbitmq-server#15387); a failed return beyond the limit
dead-letters the message with reason ``delivery_limit`` (or drops it); quorum queues
have a default limit of 20; classic queues with ``x-delivery-limit`` behave the same
(a Hutch extension).  The count of a persistent message in a durable queue survives
restarts.

Tests that RabbitMQ 3.10 passes too use ``basic.reject`` and an explicit limit on a
quorum queue (3.10 counts every return, has no default limit and no
``x-acquired-count``); the others are marked ``hutch_only`` with the reason.
"""

from __future__ import annotations

import time

import pika
import pytest

from tests.brokerproc import HutchProcess

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def _channel(url: str):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    return conn, conn.channel()


def _quorum(ch, name: str, **args) -> None:
    ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum", **args})


def _get(ch, queue: str, tries: int = 50):
    """basic.get, retried briefly (a quorum queue on RabbitMQ applies returns async)."""
    for _ in range(tries):
        method, props, body = ch.basic_get(queue)
        if method is not None:
            return method, props, body
        time.sleep(0.05)
    return None, None, None


def _counts(props) -> tuple[object, object]:
    headers = props.headers or {}
    return headers.get("x-delivery-count"), headers.get("x-acquired-count")


def _dead_letter_setup(ch, name: str) -> str:
    dlx, dlq = name + ".dlx", name + ".dlq"
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    ch.queue_declare(dlq, exclusive=True)
    ch.queue_bind(dlq, dlx)
    return dlq


def _cleanup(url: str, *queues: str) -> None:
    conn, ch = _channel(url)
    for q in queues:
        ch.queue_delete(q)
    conn.close()


def test_reject_counts_and_limit_dead_letters(broker_url, qname, against_rabbitmq):
    conn, ch = _channel(broker_url)
    try:
        dlq = _dead_letter_setup(ch, qname)
        _quorum(ch, qname, **{"x-delivery-limit": 2, "x-dead-letter-exchange": qname + ".dlx"})
        ch.basic_publish("", qname, b"poison", PERSISTENT)
        seen = []
        for _ in range(3):
            method, props, body = _get(ch, qname)
            assert body == b"poison"
            seen.append((method.redelivered, (props.headers or {}).get("x-delivery-count")))
            ch.basic_reject(method.delivery_tag, requeue=True)
        # Delivered three times: the third reject takes the count to 3 > 2.  The first
        # delivery has no header (RabbitMQ 3.10's basic.get says 0 there; 4.x nothing).
        if seen[0] == (False, 0) and against_rabbitmq:
            seen[0] = (False, None)
        assert seen == [(False, None), (True, 1), (True, 2)]
        method, props, body = _get(ch, dlq)
        assert body == b"poison"
        death = props.headers["x-death"][0]
        assert death["reason"] == "delivery_limit"
        assert death["queue"] == qname
        assert props.headers["x-first-death-reason"] == "delivery_limit"
        assert ch.basic_get(qname)[0] is None
    finally:
        conn.close()
        _cleanup(broker_url, qname)


def test_limit_without_dlx_drops(broker_url, qname):
    conn, ch = _channel(broker_url)
    try:
        _quorum(ch, qname, **{"x-delivery-limit": 0})
        ch.basic_publish("", qname, b"once", PERSISTENT)
        method, _props, _body = _get(ch, qname)
        ch.basic_reject(method.delivery_tag, requeue=True)
        time.sleep(0.2)
        assert ch.basic_get(qname)[0] is None
        assert ch.queue_declare(qname, passive=True).method.message_count == 0
    finally:
        conn.close()
        _cleanup(broker_url, qname)


def test_consumer_channel_closed_counts(broker_url, qname):
    conn, ch = _channel(broker_url)
    try:
        _quorum(ch, qname, **{"x-delivery-limit": 5})
        ch.basic_publish("", qname, b"m", PERSISTENT)
        other = conn.channel()
        method, _props, _body = _get(other, qname)
        assert method is not None
        other.close()  # unacked: returned as a failed delivery
        method, props, _body = _get(ch, qname)
        assert method.redelivered
        assert (props.headers or {}).get("x-delivery-count") == 1
        ch.basic_ack(method.delivery_tag)
    finally:
        conn.close()
        _cleanup(broker_url, qname)


# RabbitMQ 3.10 counts a nack's requeue as a delivery too, and has no x-acquired-count.
@pytest.mark.hutch_only
def test_nack_requeue_does_not_count(broker_url, qname):
    conn, ch = _channel(broker_url)
    try:
        _quorum(ch, qname, **{"x-delivery-limit": 1})
        ch.basic_publish("", qname, b"m", PERSISTENT)
        got = []
        for _ in range(4):
            method, props, _body = _get(ch, qname)
            got.append(_counts(props))
            ch.basic_nack(method.delivery_tag, requeue=True)
        assert got == [(None, None), (None, 1), (None, 2), (None, 3)]
        method, props, _body = _get(ch, qname)
        ch.basic_reject(method.delivery_tag, requeue=True)  # delivery count 1: kept
        method, props, _body = _get(ch, qname)
        assert _counts(props) == (1, 5)
        ch.basic_recover(requeue=True)  # not a failure either
        method, props, _body = _get(ch, qname)
        assert _counts(props) == (1, 6)
        ch.basic_reject(method.delivery_tag, requeue=True)  # 2 > 1: dropped
        time.sleep(0.1)
        assert ch.basic_get(qname)[0] is None
    finally:
        conn.close()
        _cleanup(broker_url, qname)


# RabbitMQ 3.10 has no default delivery limit.
@pytest.mark.hutch_only
@pytest.mark.parametrize("arg", [None, "twenty"])
def test_quorum_default_limit_is_20(broker_url, qname, arg):
    conn, ch = _channel(broker_url)
    try:
        # RabbitMQ 4.x does not validate x-delivery-limit: a value that is not an
        # integer means the default.
        _quorum(ch, qname, **({} if arg is None else {"x-delivery-limit": arg}))
        ch.basic_publish("", qname, b"m", PERSISTENT)
        deliveries = 0
        while True:
            method, _props, _body = ch.basic_get(qname)
            if method is None:
                break
            deliveries += 1
            ch.basic_reject(method.delivery_tag, requeue=True)
        assert deliveries == 21
    finally:
        conn.close()
        _cleanup(broker_url, qname)


# RabbitMQ 3.10 has no notion of a negative limit.
@pytest.mark.hutch_only
def test_negative_limit_is_unlimited(broker_url, qname):
    conn, ch = _channel(broker_url)
    try:
        _quorum(ch, qname, **{"x-delivery-limit": -1})
        ch.basic_publish("", qname, b"m", PERSISTENT)
        for i in range(30):
            method, props, _body = ch.basic_get(qname)
            assert method is not None, f"gone after {i} rejects"
            assert (props.headers or {}).get("x-delivery-count") == (i or None)
            ch.basic_reject(method.delivery_tag, requeue=True)
    finally:
        conn.close()
        _cleanup(broker_url, qname)


# A Hutch extension: RabbitMQ (3.10 and 4.x) refuses x-delivery-limit on classic
# queues with 406 "invalid arg 'x-delivery-limit' for queue ... of queue type
# rabbit_classic_queue".
@pytest.mark.hutch_only
@pytest.mark.parametrize("durable", [False, True])
def test_classic_queue_extension(broker_url, qname, durable):
    conn, ch = _channel(broker_url)
    try:
        dlq = _dead_letter_setup(ch, qname)
        ch.queue_declare(qname, durable=durable, arguments={
            "x-delivery-limit": 1, "x-dead-letter-exchange": qname + ".dlx"})
        ch.basic_publish("", qname, b"c", PERSISTENT)
        # A consumer this time (the counts are the same for basic.get).
        got = []
        for _ in range(2):
            method, props, _body = _get(ch, qname)
            got.append((method.redelivered, _counts(props)))
            ch.basic_reject(method.delivery_tag, requeue=True)
        assert got == [(False, (None, None)), (True, (1, 1))]
        method, props, body = _get(ch, dlq)
        assert body == b"c" and props.headers["x-death"][0]["reason"] == "delivery_limit"
    finally:
        conn.close()
        _cleanup(broker_url, qname)


# RabbitMQ adds no header for classic queues; Hutch neither, without a limit.
def test_classic_queue_without_limit_no_header(broker_url, qname):
    conn, ch = _channel(broker_url)
    try:
        ch.queue_declare(qname)
        ch.basic_publish("", qname, b"c", pika.BasicProperties(headers={"a": 1}))
        for _ in range(25):
            method, props, _body = _get(ch, qname)
            assert props.headers == {"a": 1}
            ch.basic_reject(method.delivery_tag, requeue=True)
    finally:
        conn.close()
        _cleanup(broker_url, qname)


def test_consumer_sees_counts(broker_url, qname):
    """A consumer (not basic.get), rejecting until the limit dead-letters (dropped here)."""
    conn, ch = _channel(broker_url)
    try:
        _quorum(ch, qname, **{"x-delivery-limit": 3})
        ch.basic_publish("", qname, b"m", PERSISTENT)
        counts = []
        for method, props, _body in ch.consume(qname, inactivity_timeout=1.0):
            if method is None:
                break
            counts.append((props.headers or {}).get("x-delivery-count"))
            ch.basic_reject(method.delivery_tag, requeue=True)
        ch.cancel()
        assert counts == [None, 1, 2, 3]
    finally:
        conn.close()
        _cleanup(broker_url, qname)


def _sync(ch) -> None:
    """A confirmed persistent publish: the records written before it are on disk."""
    ch.queue_declare("sync", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", "sync", b"s", PERSISTENT)


@pytest.mark.hutch_only  # a private broker, restarted and killed
@pytest.mark.parametrize("how", ["clean", "kill"])
@pytest.mark.parametrize("qtype", ["quorum", "classic"])
def test_count_survives_restart(how, qtype):
    proc = HutchProcess()
    proc.start()
    try:
        conn, ch = _channel(proc.url)
        args = {"x-delivery-limit": 3}
        if qtype == "quorum":
            args["x-queue-type"] = "quorum"
        ch.queue_declare("poison", durable=True, arguments=args)
        ch.queue_declare("fine", durable=True, arguments=args)
        ch.basic_publish("", "poison", b"p", PERSISTENT)
        ch.basic_publish("", "fine", b"f", PERSISTENT)
        for _ in range(2):
            method, _props, _body = ch.basic_get("poison")
            ch.basic_reject(method.delivery_tag, requeue=True)
        method, _props, _body = ch.basic_get("fine")
        ch.basic_nack(method.delivery_tag, requeue=True)
        _sync(ch)
        conn.close()
        if how == "clean":
            proc.stop()
        else:
            proc.kill()
        for _restart in range(2):  # and once more: the counts are written again
            proc.start()
            conn, ch = _channel(proc.url)
            method, props, body = ch.basic_get("poison")
            assert body == b"p" and method.redelivered
            assert _counts(props) == (2, 2 + _restart)
            ch.basic_recover(requeue=True)  # acquired + 1, seen after the next start
            method, props, body = ch.basic_get("fine")
            assert body == b"f" and _counts(props) == (None, 1 + _restart)
            ch.basic_nack(method.delivery_tag, requeue=True)  # (closing would count)
            _sync(ch)
            conn.close()
            proc.stop() if how == "clean" else proc.kill()
        proc.start()
        conn, ch = _channel(proc.url)
        method, props, _body = ch.basic_get("poison")
        assert _counts(props) == (2, 4)
        ch.basic_reject(method.delivery_tag, requeue=True)  # 3: still within the limit
        method, props, _body = ch.basic_get("poison")
        assert _counts(props) == (3, 5)
        ch.basic_reject(method.delivery_tag, requeue=True)  # 4 > 3: dropped
        time.sleep(0.1)
        assert ch.basic_get("poison")[0] is None
        conn.close()
    finally:
        proc.stop()


def test_kombu_reject_until_dead_lettered(broker_url, qname):
    """kombu's ``message.reject(requeue=True)`` (basic.reject): the poison message
    reaches the dead-letter queue after ``limit + 1`` deliveries."""
    kombu = pytest.importorskip("kombu")
    url = broker_url.replace("amqp://", "pyamqp://", 1)
    dlx = kombu.Exchange(qname + ".dlx", type="fanout", auto_delete=True)
    dlq = kombu.Queue(qname + ".dlq", dlx, auto_delete=True)
    queue = kombu.Queue(qname, durable=True, queue_arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 1,
        "x-dead-letter-exchange": qname + ".dlx"})
    seen: list = []
    with kombu.Connection(url, connect_timeout=5) as conn:
        try:
            dlq(conn.default_channel).declare()
            producer = conn.Producer()
            producer.publish({"task": "poison"}, routing_key=qname, declare=[queue],
                             delivery_mode=2)

            def on_message(body, message):
                seen.append(message.headers.get("x-delivery-count"))
                message.reject(requeue=True)

            with conn.Consumer(queue, callbacks=[on_message]):
                deadline = time.monotonic() + 5
                while len(seen) < 2 and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=0.2)
                    except TimeoutError:
                        pass
            dead = None
            for _ in range(50):
                dead = dlq(conn.default_channel).get(accept=["json"])
                if dead is not None:
                    break
                time.sleep(0.05)
            assert seen == [None, 1]
            assert dead is not None and dead.payload == {"task": "poison"}
            assert dead.headers["x-death"][0]["reason"] == "delivery_limit"
            dead.ack()
        finally:
            conn.default_channel.queue_delete(qname)


@pytest.mark.hutch_only  # RabbitMQ 3.10 counts every requeue; the 4.3 rule is what is tested
@pytest.mark.parametrize("ackmode", ["reject_requeue_true", "ack_requeue_true"])
def test_management_get_with_requeue_is_a_failed_delivery(hutch_http, ackmode):
    """rabbit_mgmt_wm_queue_get: reject_requeue_true is a basic.reject with requeue,
    ack_requeue_true closes the channel that holds the messages: failed deliveries."""
    from tests.mgmt import Api

    api = Api(hutch_http.http_url)
    _conn, ch = _channel(hutch_http.url)
    _quorum(ch, "mg", **{"x-delivery-limit": 2})
    ch.basic_publish("", "mg", b"m", pika.BasicProperties(delivery_mode=2))
    for _ in range(3):
        r = api.post("queues/%2F/mg/get", json={"count": 1, "ackmode": ackmode, "encoding": "auto"})
        assert r.status_code == 200, r.text
    m, props, _body = ch.basic_get("mg", auto_ack=True)
    assert m is None, props.headers  # three failures > limit 2: dropped (no DLX)


@pytest.mark.hutch_only  # needs the broker's log (no traceback) and its policy API
def test_policy_limit_over_a_non_integer_argument(hutch_http):
    """RabbitMQ does not validate x-delivery-limit; a policy's limit then applies
    (rabbit_quorum_queue:resolve_delivery_limit: a number orders before a binary)."""
    from tests.mgmt import Api

    api = Api(hutch_http.http_url)
    _conn, ch = _channel(hutch_http.url)
    _quorum(ch, "pl", **{"x-delivery-limit": "abc"})
    r = api.put("policies/%2F/pl", json={"pattern": "^pl$", "definition": {"delivery-limit": 1},
                                        "apply-to": "queues"})
    assert r.status_code in (201, 204), r.text
    _quorum(ch, "pl", **{"x-delivery-limit": "abc"})  # a redeclare under the policy
    ch.basic_publish("", "pl", b"m", pika.BasicProperties(delivery_mode=2))
    for _ in range(2):
        m, _p, _b = _get(ch, "pl")
        ch.basic_reject(m.delivery_tag, requeue=True)
    ch.queue_declare("pl", passive=True)  # a round trip: the rejects are handled
    assert ch.basic_get("pl", auto_ack=True)[0] is None  # 2 failures > the policy's 1
    assert "Traceback" not in hutch_http.log_text()


@pytest.mark.hutch_only  # a private broker, killed while a consumer holds the message
@pytest.mark.parametrize("qtype", ["quorum", "classic-priority"])
def test_a_holder_lost_in_a_crash_counts(tmp_path, qtype):
    """RabbitMQ 4.3's quorum queues count a consumer that is down after a restart as a
    failed delivery (rabbit_fifo: {down, Pid, noproc} -> return_all with reason down), so
    a poison message that takes the broker down with it is dead-lettered in the end."""
    proc = HutchProcess(data_dir=str(tmp_path / "d"))
    proc.start()
    try:
        conn, ch = _channel(proc.url)
        args = {"x-delivery-limit": 2}
        args.update({"x-queue-type": "quorum"} if qtype == "quorum" else {"x-max-priority": 3})
        ch.queue_declare("q", durable=True, arguments=args)
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"poison", pika.BasicProperties(delivery_mode=2, priority=1))
        conn.close()
        seen: list[object] = []
        for _ in range(4):
            conn, ch = _channel(proc.url)
            m, props, _body = ch.basic_get("q")
            if m is None:
                seen.append("gone")
                break
            seen.append(_counts(props)[0])
            _sync(ch)  # a confirmed publish after it: the delivery's record is on disk
            proc.kill()
            proc.start()
        # three failed deliveries (> limit 2): dropped (no DLX) before the fourth
        assert seen == [None, 1, 2, "gone"]
    finally:
        proc.stop()
