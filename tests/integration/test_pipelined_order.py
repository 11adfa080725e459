"""Pipelined methods are answered in the order they were sent, as RabbitMQ does —
also when one of them is a durable declare whose answer waits for the disk
(server/replies.py): a basic.get-ok, a consume-ok and its first delivery, and a
channel.close-ok all come after the declare-ok sent before them."""

from __future__ import annotations

import pika
from pamqp import commands as cmd
from pamqp import frame as pframe

from tests.integration.rawamqp import RawConnection, cleanup


def _frames(raw: RawConnection, count: int) -> list[str]:
    seen: list[str] = []
    while len(seen) < count:
        seen.append(type(raw.read_frame(5.0)[1]).__name__)
    return seen


def test_replies_and_deliveries_keep_the_order_of_pipelined_methods(broker_url, qname) -> None:
    fresh, old = qname + ".fresh", qname + ".old"
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.queue_declare(old, durable=True)
    for body in (b"got", b"delivered"):
        ch.basic_publish("", old, body, pika.BasicProperties(delivery_mode=2))
    conn.close()
    raw = RawConnection(broker_url).handshake()
    try:
        raw.open_channel(1)
        raw.send_bytes(b"".join(pframe.marshal(m, 1) for m in (
            cmd.Queue.Declare(queue=fresh, durable=True),
            cmd.Basic.Get(queue=old, no_ack=True),
            cmd.Queue.Declare(queue=fresh + "2", durable=True),
            cmd.Basic.Consume(queue=old, consumer_tag="first", no_ack=True),
        )))
        assert _frames(raw, 9) == [
            "DeclareOk", "GetOk", "ContentHeader", "ContentBody",
            "DeclareOk", "ConsumeOk", "Deliver", "ContentHeader", "ContentBody"]
        # Closing: the declare-ok first, then close-ok.
        close = cmd.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0)
        raw.send_bytes(pframe.marshal(cmd.Queue.Declare(queue=fresh + "3", durable=True), 1)
                       + pframe.marshal(close, 1))
        assert _frames(raw, 2) == ["DeclareOk", "CloseOk"]
        raw.close()
    finally:
        raw.close_socket()
        cleanup(broker_url, queues=(fresh, fresh + "2", fresh + "3", old))
