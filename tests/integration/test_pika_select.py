"""pika's callback-style SelectConnection: declare, confirm-publish, consume, ack."""

from __future__ import annotations

import pika
from pika.adapters.select_connection import SelectConnection


def test_select_connection_work_queue(broker_url: str, qname: str) -> None:
    state: dict = {"received": [], "acked": 0, "error": None}
    n = 20

    def on_open(conn):
        conn.channel(on_open_callback=on_channel)

    def on_channel(ch):
        state["ch"] = ch
        ch.confirm_delivery(on_confirm)
        ch.queue_declare(qname, durable=True, callback=on_declared)

    def on_declared(_frame):
        ch = state["ch"]
        for i in range(n):
            ch.basic_publish("", qname, f"job {i}".encode(),
                             pika.BasicProperties(delivery_mode=2))
        ch.basic_qos(prefetch_count=5, callback=lambda _f: ch.basic_consume(qname, on_message))

    def on_confirm(frame):
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            state["error"] = "nacked"
        state["acked"] = max(state["acked"], method.delivery_tag)
        maybe_finish()

    def on_message(ch, method, _props, body):
        state["received"].append(body.decode())
        ch.basic_ack(method.delivery_tag)
        maybe_finish()

    def maybe_finish():
        # Deliveries may overtake confirms (a confirm waits for the disk): wait for both.
        if len(state["received"]) == n and state["acked"] == n and not state.get("done"):
            state["done"] = True
            state["ch"].queue_delete(qname, callback=lambda _f: state["conn"].close())

    conn = SelectConnection(pika.URLParameters(broker_url), on_open_callback=on_open,
                            on_open_error_callback=lambda c, e: state.update(error=e))
    state["conn"] = conn
    conn.ioloop.call_later(20, conn.ioloop.stop)  # safety net
    conn.add_on_close_callback(lambda c, r: c.ioloop.stop())
    conn.ioloop.start()
    assert state["error"] is None
    assert state["received"] == [f"job {i}" for i in range(n)]
    assert state["acked"] == n
