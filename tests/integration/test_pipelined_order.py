"""Pipelined methods are answered in the order they were sent, as RabbitMQ does —
also when one of them is a durable declare whose answer waits for the disk
(server/replies.py): a basic.get-ok, a consume-ok and its first delivery, and a
channel.close-ok all come after the declare-ok sent before them."""

from __future__ import annotations

import pika
from pamqp import body as pbody
from pamqp import commands as cmd
from pamqp import frame as pframe
from pamqp import header as pheader

from tests.integration.rawamqp import RawConnection, SocketClosedError, cleanup


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


def _frames_after(raw: RawConnection, last: type) -> tuple[bool, list[str]]:
    """Read until the socket goes quiet: whether a ``last`` frame came on channel 0, and
    what came after it (nothing may: after connection.close and close-ok only the
    socket's end is left)."""
    seen, after = False, []
    while True:
        try:
            ch, value = raw.read_frame(1.0)
        except (TimeoutError, OSError, SocketClosedError):
            return seen, after
        if ch == 0 and isinstance(value, last):
            seen = True
            if isinstance(value, cmd.Connection.Close):
                try:
                    raw.send(0, cmd.Connection.CloseOk())
                except OSError:
                    return seen, after
        elif seen:
            after.append(type(value).__name__)


def _queue_with_one_message(broker_url: str, qname: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    conn.channel().queue_declare(qname, durable=True)
    conn.channel().basic_publish("", qname, b"m", pika.BasicProperties(delivery_mode=2))
    conn.close()


def test_nothing_follows_close_ok_even_behind_a_held_reply(broker_url, qname) -> None:
    """A client that pipelines a durable declare, a get, a tx.commit and connection.close:
    whatever is answered, nothing comes after close-ok."""
    _queue_with_one_message(broker_url, qname)
    raw = RawConnection(broker_url).handshake()
    try:
        raw.open_channel(1)
        raw.open_channel(2)
        raw.rpc(2, cmd.Tx.Select(), cmd.Tx.SelectOk)
        raw.send_bytes(b"".join([
            pframe.marshal(cmd.Queue.Declare(queue=qname + ".fresh", durable=True), 1),
            pframe.marshal(cmd.Basic.Get(queue=qname), 1),
            pframe.marshal(cmd.Basic.Publish(exchange="", routing_key=qname), 2),
            pframe.marshal(pheader.ContentHeader(0, 1, cmd.Basic.Properties(delivery_mode=2)), 2),
            pframe.marshal(pbody.ContentBody(b"t"), 2),
            pframe.marshal(cmd.Tx.Commit(), 2),
            pframe.marshal(cmd.Connection.Close(reply_code=200, reply_text="bye", class_id=0,
                                                method_id=0), 0),
        ]))
        seen, after = _frames_after(raw, cmd.Connection.CloseOk)
        assert seen and after == [], after
    finally:
        raw.close_socket()
        cleanup(broker_url, queues=(qname, qname + ".fresh"))


def test_nothing_follows_the_brokers_connection_close(broker_url, qname) -> None:
    """The broker closes the connection (a second channel.open: 504) while a get-ok waits
    behind a durable declare-ok: after its connection.close nothing more is sent."""
    _queue_with_one_message(broker_url, qname)
    raw = RawConnection(broker_url).handshake()
    try:
        raw.open_channel(1)
        raw.send_bytes(b"".join([
            pframe.marshal(cmd.Queue.Declare(queue=qname + ".fresh", durable=True), 1),
            pframe.marshal(cmd.Basic.Get(queue=qname), 1),
            pframe.marshal(cmd.Channel.Open(), 1),
        ]))
        seen, after = _frames_after(raw, cmd.Connection.Close)
        assert seen and after == [], after
    finally:
        raw.close_socket()
        cleanup(broker_url, queues=(qname, qname + ".fresh"))
