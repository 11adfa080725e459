"""Direct reply-to (``amq.rabbitmq.reply-to``), as RabbitMQ 3.10 does it.

rabbit_channel: consume from the pseudo-queue with no-ack only, publish with that
``reply_to`` (rewritten to ``amq.rabbitmq.reply-to.<token>``), and replies published to
the default exchange with that routing key go straight to the consumer.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import aio_pika
import pika
import pika.exceptions
import pytest

from tests.integration.rawamqp import connect

P = "amq.rabbitmq.reply-to"


@pytest.fixture
def rpc_server(broker_url):
    """Tutorial 6's server on its own connection: answers n with n + 1 to reply_to, and
    records the reply_to it saw."""
    queue = f"drt.rpc.{uuid.uuid4().hex[:8]}"
    seen: list[str] = []
    conn = connect(broker_url)
    ch = conn.channel()
    ch.queue_declare(queue, auto_delete=True)

    def on_request(ch_, method, props, body):
        seen.append(props.reply_to)
        ch_.basic_publish("", props.reply_to, str(int(body) + 1).encode(),
                          pika.BasicProperties(correlation_id=props.correlation_id))
        ch_.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_request)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            conn.process_data_events(0.05)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield queue, seen
    stop.set()
    thread.join(5)
    conn.close()


def test_pika_rpc_tutorial(broker_url, rpc_server):
    queue, seen = rpc_server
    conn = connect(broker_url)
    ch = conn.channel()
    answers: dict[str, bytes] = {}
    ch.basic_consume(P, lambda c, m, p, b: answers.__setitem__(p.correlation_id, b),
                     auto_ack=True)
    for n in range(3):
        ch.basic_publish("", queue, str(n).encode(),
                         pika.BasicProperties(reply_to=P, correlation_id=f"c{n}"))
    deadline = time.monotonic() + 10
    while len(answers) < 3 and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    assert answers == {"c0": b"1", "c1": b"2", "c2": b"3"}
    assert len(set(seen)) == 1 and seen[0].startswith(P + ".") and len(seen[0]) > len(P) + 10
    conn.close()


def test_aio_pika_rpc_with_passive_declare(broker_url, rpc_server):
    """FastStream's way: the pseudo-queue is declared passively, then consumed no-ack."""
    queue, _seen = rpc_server

    async def call() -> bytes:
        conn = await aio_pika.connect(broker_url)
        async with conn:
            ch = await conn.channel()
            reply_queue = await ch.declare_queue(P, passive=True)
            got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

            async def on_reply(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                got.set_result(msg.body)

            await reply_queue.consume(on_reply, no_ack=True)
            await ch.default_exchange.publish(
                aio_pika.Message(b"41", reply_to=P, correlation_id="x"), routing_key=queue)
            return await asyncio.wait_for(got, 10)

    assert asyncio.run(call()) == b"42"


def test_pseudo_queue_declares_and_capability(broker_url):
    conn = connect(broker_url)
    try:
        assert conn._impl.server_capabilities.get("direct_reply_to") is True
        ch = conn.channel()
        for passive in (True, False):
            ok = ch.queue_declare(P, passive=passive).method
            assert (ok.queue, ok.message_count, ok.consumer_count) == (P, 0, 1)
    finally:
        conn.close()


@pytest.mark.parametrize("misuse", ["ack", "twice", "publish-without-consumer",
                                    "publish-after-cancel"])
def test_misuse_closes_the_channel_with_rabbitmqs_text(broker_url, misuse):
    texts = {"ack": "reply consumer cannot acknowledge", "twice": "reply consumer already set"}
    conn = connect(broker_url)
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as err:
        if misuse == "ack":
            ch.basic_consume(P, lambda *a: None, auto_ack=False)
        elif misuse == "twice":
            ch.basic_consume(P, lambda *a: None, auto_ack=True)
            ch.basic_consume(P, lambda *a: None, auto_ack=True)
        else:
            if misuse == "publish-after-cancel":
                ch.basic_cancel(ch.basic_consume(P, lambda *a: None, auto_ack=True))
            ch.basic_publish("", "drt.nowhere", b"req", pika.BasicProperties(reply_to=P))
            ch.queue_declare(P, passive=True)  # a round trip: the error comes first
    assert err.value.args == (406, "PRECONDITION_FAILED - " + texts.get(
        misuse, "fast reply consumer does not exist"))
    conn.channel().queue_declare(P, passive=True)  # the connection lives on
    conn.close()


def test_mandatory_reply_is_delivered_and_returned(broker_url, rpc_server):
    """RabbitMQ never counts a reply as routed to a queue: with mandatory it is both
    delivered to the reply consumer and returned NO_ROUTE."""
    conn = connect(broker_url)
    ch = conn.channel()
    got: list[bytes] = []
    ch.basic_consume(P, lambda c, m, p, b: got.append(b), auto_ack=True)
    queue = f"drt.srv.{uuid.uuid4().hex[:8]}"
    ch.queue_declare(queue, auto_delete=True)
    ch.basic_publish("", queue, b"req", pika.BasicProperties(reply_to=P))
    method, props, _ = None, None, None
    for _ in range(100):
        method, props, _ = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            break
        time.sleep(0.02)
    other = connect(broker_url)
    och = other.channel()
    returned: list[int] = []
    och.add_on_return_callback(lambda c, m, p, b: returned.append(m.reply_code))
    och.basic_publish("", props.reply_to, b"answer", mandatory=True)
    deadline = time.monotonic() + 10
    while not (got and returned) and time.monotonic() < deadline:
        conn.process_data_events(0.05)
        other.process_data_events(0.05)
    assert got == [b"answer"] and returned == [312]
    # A reply to a token nobody consumes any more is dropped.
    conn.close()
    och.basic_publish("", props.reply_to, b"late")
    och.queue_declare(P, passive=True)
    other.close()


@pytest.mark.hutch_only
def test_mandatory_reply_to_unknown_token_is_returned(broker_url):
    """RabbitMQ 3.10.8 closes the connection with 541 INTERNAL_ERROR here (it fails to
    decode the token); Hutch returns the message NO_ROUTE (README, Known differences)."""
    conn = connect(broker_url)
    ch = conn.channel()
    returned: list[int] = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append(m.reply_code))
    ch.basic_publish("", P + ".no.such-token", b"lost", mandatory=True)
    ch.queue_declare(P, passive=True)
    conn.process_data_events(0.1)
    assert returned == [312]
    conn.close()


@pytest.mark.hutch_only
def test_reply_waits_for_a_consume_ok_held_behind_a_declare() -> None:
    """A client pipelines a durable declare (its declare-ok waits for the definitions
    write), a consume of the reply pseudo-queue and a request; the responder answers at
    once.  The reply must not reach the client before the consume-ok that names its tag."""
    from pamqp import body as pbody
    from pamqp import commands as cmd
    from pamqp import frame as pframe
    from pamqp import header as pheader

    from tests.brokerproc import HutchProcess
    from tests.integration.rawamqp import raw_session

    proc = HutchProcess(env={"HUTCH_STORE_FILES": "tests.crash.seams:SlowDefinitionsFiles"})
    proc.start()
    try:
        responder = raw_session(proc.url)
        responder.rpc(1, cmd.Queue.Declare(queue="svc"), cmd.Queue.DeclareOk)
        client = raw_session(proc.url)
        client.send_bytes(b"".join([
            pframe.marshal(cmd.Queue.Declare(queue="fresh", durable=True), 1),
            pframe.marshal(cmd.Basic.Consume(queue="amq.rabbitmq.reply-to", consumer_tag="rt",
                                             no_ack=True), 1),
            pframe.marshal(cmd.Basic.Publish(exchange="", routing_key="svc"), 1),
            pframe.marshal(pheader.ContentHeader(0, 3, cmd.Basic.Properties(
                reply_to="amq.rabbitmq.reply-to")), 1),
            pframe.marshal(pbody.ContentBody(b"req"), 1),
        ]))
        deadline = time.monotonic() + 5
        while True:  # the request arrives while the declare-ok is still held
            responder.send(1, cmd.Basic.Get(queue="svc", no_ack=True))
            _ch, got = responder.read_frame(5)
            if isinstance(got, cmd.Basic.GetOk):
                break
            assert time.monotonic() < deadline, "the request never arrived"
        _ch, header = responder.read_frame(5)
        responder.read_frame(5)
        responder.publish(1, "", header.properties.reply_to, b"rep")
        order = [type(client.read_frame(5)[1]).__name__ for _ in range(5)]
        assert order == ["DeclareOk", "ConsumeOk", "Deliver", "ContentHeader", "ContentBody"]
        client.close_socket()
        responder.close_socket()
    finally:
        proc.stop()
