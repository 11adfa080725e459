"""Move messages (RabbitMQ's dynamic shovel, as its UI's "Move messages" creates it) on
Hutch and, with HUTCH_TEST_HTTP_URL, on RabbitMQ with rabbitmq_shovel(_management).

Counts are read with a passive queue.declare (exact at once on both brokers); the
shovel's own parameter goes away when a one-shot move is done."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest
from pamqp import body as pbody
from pamqp import commands as cmd
from pamqp import frame as pframe
from pamqp import header as pheader

from tests.brokerproc import HutchProcess, drain
from tests.integration.rawamqp import RawConnection
from tests.mgmt import Api, seg


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def move_body(name: str, src: str, dest: str, **extra: Any) -> dict[str, Any]:
    """The body RabbitMQ 4.3's queue page sends (shovel.js, put_parameter)."""
    value = {"src-uri": "amqp:///%2F", "src-queue": src, "src-protocol": "amqp091",
             "src-prefetch-count": 1000, "src-delete-after": "queue-length",
             "dest-protocol": "amqp091", "dest-uri": "amqp:///%2F",
             "dest-add-forward-headers": False, "ack-mode": "on-confirm",
             "src-consumer-args": {}, "dest-queue": dest}
    value.update(extra)
    return {"component": "shovel", "vhost": "/", "name": name,
            "value": {k: v for k, v in value.items() if v is not None}}


def _until(what: str, fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def channel(broker_url: str):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        yield conn.channel()
    finally:
        conn.close()


def _count(ch: Any, queue: str) -> int:
    return ch.queue_declare(queue, passive=True).method.message_count


def _fill(ch: Any, queue: str, n: int, durable: bool = True) -> None:
    ch.queue_declare(queue, durable=durable)
    for i in range(n):
        death = [{"count": 1, "reason": "rejected", "queue": "work", "exchange": "",
                  "routing-keys": ["work"]}]
        ch.basic_publish("", queue, f"m{i}".encode(), pika.BasicProperties(
            delivery_mode=2, message_id=f"id{i}", content_type="text/plain",
            headers={"x-death": death, "n": i}))


def _param_gone(api: Api, name: str) -> bool:
    return api.get(f"parameters/shovel/%2F/{seg(name)}").status_code == 404


def test_move_dead_letters_back_in_order(api: Api, channel: Any) -> None:
    dlq, work, name = _uid("dlq"), _uid("work"), _uid("Move from dlq")
    _fill(channel, dlq, 50)
    channel.queue_declare(work, durable=True)
    r = api.put(f"parameters/shovel/%2F/{seg(name)}", move_body(name, dlq, work))
    assert r.status_code == 201, r.text
    _until("the move", lambda: _count(channel, work) == 50 and _count(channel, dlq) == 0)
    _until("the parameter to delete itself", lambda: _param_gone(api, name))
    assert all(s["name"] != name for s in api.ok("GET", "shovels"))
    for i in range(50):
        method, props, body = channel.basic_get(work, auto_ack=True)
        assert body == f"m{i}".encode()
        assert method.routing_key == work and method.exchange == ""
        assert not method.redelivered
        assert props.message_id == f"id{i}" and props.delivery_mode == 2
        assert props.content_type == "text/plain"
        assert props.headers["n"] == i
        assert props.headers["x-death"][0]["queue"] == "work"
        assert props.headers["x-death"][0]["count"] == 1
    for q in (dlq, work):
        channel.queue_delete(q)


def test_move_to_a_missing_queue_declares_it_durable(api: Api, channel: Any) -> None:
    dlq, dest, name = _uid("dlq"), _uid("new"), _uid("mv")
    _fill(channel, dlq, 5)
    r = api.put(f"parameters/shovel/%2F/{seg(name)}", move_body(name, dlq, dest))
    assert r.status_code == 201, r.text
    _until("the move", lambda: api.get(f"queues/%2F/{seg(dest)}").status_code == 200
           and _count(channel, dest) == 5)
    assert api.ok("GET", f"queues/%2F/{seg(dest)}")["durable"] is True
    assert _count(channel, dlq) == 0
    for q in (dlq, dest):
        channel.queue_delete(q)


def test_a_number_of_messages_and_the_status_while_running(api: Api, channel: Any) -> None:
    src, dest, name = _uid("src"), _uid("dst"), _uid("mv")
    _fill(channel, src, 3)
    channel.queue_declare(dest, durable=True)
    # 5 asked, 3 there: the shovel moves 3 and waits for 2 more, "running".
    r = api.put(f"parameters/shovel/%2F/{seg(name)}",
                move_body(name, src, dest, **{"src-delete-after": 5}))
    assert r.status_code == 201, r.text
    _until("3 moved", lambda: _count(channel, dest) == 3)

    def running() -> Any:
        return [s for s in api.ok("GET", "shovels/%2F") if s["name"] == name
                and s.get("state") == "running"]
    status = _until("a running shovel", running)[0]
    assert status["vhost"] == "/" and status["type"] == "dynamic"
    assert status["src_queue"] == src and status["dest_queue"] == dest
    assert status["src_uri"] == "amqp:///%2F" and status["dest_uri"] == "amqp:///%2F"
    param = api.ok("GET", f"parameters/shovel/%2F/{seg(name)}")
    assert param["component"] == "shovel" and param["name"] == name and param["vhost"] == "/"
    assert param["value"]["src-queue"] == src and param["value"]["src-delete-after"] == 5
    assert any(p["name"] == name for p in api.ok("GET", "parameters/shovel"))
    # Two more arrive: moved, and the shovel is done.
    for i in range(2):
        channel.basic_publish("", src, f"late{i}".encode())
    _until("5 moved", lambda: _count(channel, dest) == 5)
    _until("the parameter to delete itself", lambda: _param_gone(api, name))
    assert [b for b, _r in drain(channel, dest)] == [b"m0", b"m1", b"m2", b"late0", b"late1"]
    for q in (src, dest):
        channel.queue_delete(q)


def test_deleting_a_running_shovel_stops_it(api: Api, channel: Any) -> None:
    src, dest, name = _uid("src"), _uid("dst"), _uid("mv")
    channel.queue_declare(src, durable=True)
    channel.queue_declare(dest, durable=True)
    r = api.put(f"parameters/shovel/%2F/{seg(name)}",
                move_body(name, src, dest, **{"src-delete-after": 10}))
    assert r.status_code == 201, r.text
    _until("it to run", lambda: any(s["name"] == name for s in api.ok("GET", "shovels")))
    assert api.delete(f"parameters/shovel/%2F/{seg(name)}").status_code == 204
    _until("it to go", lambda: all(s["name"] != name for s in api.ok("GET", "shovels")))
    channel.basic_publish("", src, b"stays")
    time.sleep(0.5)  # nothing moves it any more (a stopped shovel has nothing to show)
    assert _count(channel, src) == 1 and _count(channel, dest) == 0
    assert api.delete(f"parameters/shovel/%2F/{seg(name)}").status_code == 404
    for q in (src, dest):
        channel.queue_delete(q)


def test_dest_exchange_with_key(api: Api, channel: Any) -> None:
    src, dest, name = _uid("src"), _uid("dst"), _uid("mv")
    _fill(channel, src, 4)
    channel.queue_declare(dest, durable=True)
    channel.queue_bind(dest, "amq.direct", routing_key=dest)
    body = move_body(name, src, None, **{"dest-exchange": "amq.direct",
                                         "dest-exchange-key": dest})
    r = api.put(f"parameters/shovel/%2F/{seg(name)}", body)
    assert r.status_code == 201, r.text
    _until("the move", lambda: _count(channel, dest) == 4)
    method, _props, body_ = channel.basic_get(dest, auto_ack=True)
    assert method.exchange == "amq.direct" and method.routing_key == dest and body_ == b"m0"
    for q in (src, dest):
        channel.queue_delete(q)


@pytest.mark.parametrize("change, words", [
    ({"src-uri": None}, 'Key \\"src-uri\\" not found'),
    ({"dest-uri": None}, 'Key \\"dest-uri\\" not found'),
    ({"src-queue": None}, "Must specify 'src-exchange' or 'src-queue'"),
    ({"ack-mode": "sometimes"}, "ack-mode should be one of"),
    ({"src-delete-after": "later"}, "src-delete-after should be a number greater than"),
    ({"src-prefetch-count": "many"}, "src-prefetch-count should be a number"),
    ({"no-such-key": 1}, "Unrecognised terms"),
    ({"src-uri": "http://example.com"}, "not a valid URI"),
])
def test_validation_as_rabbitmq(api: Api, change: dict[str, Any], words: str) -> None:
    name = _uid("bad")
    body = move_body(name, "anything", "elsewhere")
    for k, v in change.items():
        if v is None:
            del body["value"][k]
        else:
            body["value"][k] = v
    r = api.put(f"parameters/shovel/%2F/{seg(name)}", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request"
    assert r.text.count("Validation failed") == 1 and words in r.text, r.text
    assert _param_gone(api, name)


def test_needs_a_policymaker(api: Api, channel: Any) -> None:
    user, name = _uid("mover"), _uid("mv")
    api.add_user(user, "pw", "management")
    api.set_permissions("/", user)
    try:
        r = api.as_user(user, "pw").put(f"parameters/shovel/%2F/{seg(name)}",
                                        move_body(name, "a", "b"))
        assert r.status_code == 401, r.text
        assert api.as_user(user, "pw").get("parameters/shovel").status_code == 401
        assert api.as_user(user, "pw").get("shovels").status_code == 401
    finally:
        api.delete(f"users/{seg(user)}")


# -- Hutch's limits and guarantees --------------------------------------------------------------
@pytest.mark.hutch_only
@pytest.mark.parametrize("change, words", [
    ({"src-delete-after": "never"}, "Hutch runs one-shot local shovels only (src-delete-after "
                                     "queue-length or a number)"),
    ({"dest-uri": "amqp://other-host/%2F"}, "within this broker only"),
    ({"src-uri": ["amqp:///%2F", "amqp:///%2F"]}, "give one local URI"),
    ({"src-protocol": "amqp10"}, "AMQP 0-9-1 only"),
    ({"dest-add-forward-headers": True}, "does not support dest-add-forward-headers"),
    ({"src-queue": None, "src-exchange": "amq.direct"}, "from a queue only"),
    ({"dest-queue": "q" * 256}, "at most 255 bytes"),
])
def test_what_hutch_does_not_do_is_refused(api: Api, change: dict[str, Any], words: str) -> None:
    name = _uid("no")
    body = move_body(name, "anything", "elsewhere")
    for k, v in change.items():
        if v is None:
            del body["value"][k]
        else:
            body["value"][k] = v
    r = api.put(f"parameters/shovel/%2F/{seg(name)}", body)
    assert r.status_code == 400 and words in r.json()["reason"], r.text


@pytest.mark.hutch_only
def test_mover_needs_read_on_source_and_write_on_destination(api: Api, channel: Any) -> None:
    user, src, dest, name = _uid("pm"), _uid("src"), _uid("dst"), _uid("mv")
    _fill(channel, src, 2)
    channel.queue_declare(dest, durable=True)
    api.add_user(user, "pw", "policymaker")
    try:
        pm = api.as_user(user, "pw")
        api.set_permissions("/", user, configure="", write=".*", read="^nothing$")
        r = pm.put(f"parameters/shovel/%2F/{seg(name)}", move_body(name, src, dest))
        assert r.status_code == 401, r.text
        api.set_permissions("/", user, configure="", write="^nothing$", read=".*")
        r = pm.put(f"parameters/shovel/%2F/{seg(name)}", move_body(name, src, dest))
        assert r.status_code == 401, r.text
        assert _count(channel, src) == 2
        api.set_permissions("/", user, configure="", write=".*", read=".*")
        r = pm.put(f"parameters/shovel/%2F/{seg(name)}", move_body(name, src, dest))
        assert r.status_code == 201, r.text
        _until("the move", lambda: _count(channel, dest) == 2)
    finally:
        api.delete(f"users/{seg(user)}")
        for q in (src, dest):
            channel.queue_delete(q)


N_BIG = 50_000


def _publish_many(url: str, queue: str, n: int) -> None:
    """n persistent messages (bodies "0", "1", ...) pipelined in one write, then a
    confirmed one: all on disk when this returns (the store writes in order)."""
    props = cmd.Basic.Properties(delivery_mode=2)
    with RawConnection(url, timeout=60).handshake() as raw:
        raw.open_channel(1)
        raw.send(1, cmd.Queue.Declare(queue=queue, durable=True))
        raw.expect(1, cmd.Queue.DeclareOk)
        raw.send_bytes(b"".join(
            pframe.marshal(cmd.Basic.Publish(exchange="", routing_key=queue), 1)
            + pframe.marshal(pheader.ContentHeader(0, len(str(i)), props), 1)
            + pframe.marshal(pbody.ContentBody(str(i).encode()), 1) for i in range(n - 1)))
        raw.send(1, cmd.Confirm.Select())
        raw.expect(1, cmd.Confirm.SelectOk)
        raw.send(1, cmd.Basic.Publish(exchange="", routing_key=queue))
        raw.send_content(1, str(n - 1).encode(), props)
        raw.expect(1, cmd.Basic.Ack, timeout=60)


def _drain_bodies(url: str, queue: str) -> list[int]:
    """Every body of ``queue`` (as ints, in order), consumed with a big prefetch."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=5000)
    n = _count(ch, queue)
    out: list[int] = []
    for _method, _props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=5):
        if body is None:
            break
        out.append(int(body))
        if len(out) == n:
            break
    conn.close()
    assert len(out) == n
    return out


@pytest.mark.hutch_only
def test_kill_9_mid_move_loses_nothing(tmp_path) -> None:
    proc = HutchProcess(http=True)
    proc.start()
    try:
        _publish_many(proc.url, "dlq", N_BIG)
        api = Api(proc.http_url)
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("work", durable=True)
        body = move_body("mv", "dlq", "work", **{"src-prefetch-count": 100})
        assert api.put("parameters/shovel/%2F/mv", body).status_code == 201
        # A batch is acked on the source (ready + unacked drops) once the destination
        # has it on disk: then kill.
        _until("part of the move",
               lambda: api.ok("GET", "queues/%2F/dlq")["messages"] < N_BIG, timeout=30)
        proc.kill()
        proc.start()
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        assert api.ok("GET", "parameters/shovel") == []  # moves are not kept across restarts
        src, dest = _drain_bodies(proc.url, "dlq"), _drain_bodies(proc.url, "work")
        assert 0 < len(dest) and 0 < len(src) and len(src) + len(dest) >= N_BIG, \
            (len(src), len(dest))  # killed in the middle, else the test proves nothing
        assert set(src) | set(dest) == set(range(N_BIG))  # at least once: no loss
        for side in (src, dest):  # order is kept on each side
            assert side == sorted(side)
        conn.close()
    finally:
        proc.stop()


@pytest.mark.hutch_only
def test_a_big_move_does_not_freeze_the_broker(tmp_path) -> None:
    proc = HutchProcess("--in-memory", http=True)
    proc.start()
    try:
        _publish_many(proc.url, "big", N_BIG * 2)
        api = Api(proc.http_url)
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        ch = conn.channel()
        ch.queue_declare("big-dest", durable=True)
        latencies: list[float] = []
        stop = threading.Event()

        def bystander() -> None:
            c = pika.BlockingConnection(pika.URLParameters(proc.url))
            b = c.channel()
            b.queue_declare("bystander")
            while not stop.is_set():
                t = time.monotonic()
                b.queue_declare("bystander", passive=True)
                latencies.append(time.monotonic() - t)
            c.close()

        t = threading.Thread(target=bystander)
        t.start()
        try:
            r = api.put("parameters/shovel/%2F/big", move_body("big", "big", "big-dest"))
            assert r.status_code == 201
            _until("the move", lambda: _count(ch, "big-dest") == N_BIG * 2, timeout=60)
        finally:
            stop.set()
            t.join()
        assert latencies and max(latencies) < 1.0, max(latencies)
        conn.close()
    finally:
        proc.stop()


def test_another_connections_exclusive_queue_is_not_moved(api: Api, channel: Any,
                                                          broker_url: str) -> None:
    """The shovel cannot consume a queue another connection holds exclusively
    (RESOURCE_LOCKED): it moves nothing, on both brokers."""
    owner = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        och = owner.channel()
        src = och.queue_declare("", exclusive=True).method.queue
        for i in range(3):
            och.basic_publish("", src, f"secret {i}".encode())
        loot, name = _uid("loot"), _uid("Move from excl")
        channel.queue_declare(loot, durable=True)
        api.put(f"parameters/shovel/%2F/{seg(name)}", move_body(name, src, loot))
        time.sleep(2)
        assert _count(channel, loot) == 0
        assert och.queue_declare(src, passive=True).method.message_count == 3
        api.delete(f"parameters/shovel/%2F/{seg(name)}")
        channel.queue_delete(loot)
    finally:
        owner.close()


def test_one_shovels_status_and_404(api: Api) -> None:
    r = api.get("shovels/vhost/%2F/no-such-shovel")
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "Object Not Found", "reason": "Not Found"}
