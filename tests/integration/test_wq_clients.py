"""Other client libraries over real sockets: aio-pika (robust connection, process(),
patterns), aiormq, kombu (py-amqp transport)."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest
from aio_pika.patterns import RPC, Master, NackMessage


async def wait_for(pred, timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


async def test_connect_robust_durable_queue_roundtrip(broker_url, qname):
    conn = await aio_pika.connect_robust(broker_url)
    async with conn:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=10)
        q = await ch.declare_queue(qname, durable=True)
        try:
            assert q.declaration_result.message_count == 0
            for i in range(5):
                await ch.default_exchange.publish(
                    aio_pika.Message(f"job{i}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=qname)
            seen = []
            async with q.iterator() as it:
                async for msg in it:
                    async with msg.process():
                        seen.append(msg.body)
                        assert msg.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                    if len(seen) == 5:
                        break
            assert seen == [f"job{i}".encode() for i in range(5)]
            # Redeclare (passive) shows an empty queue: everything was acked.
            again = await ch.declare_queue(qname, passive=True)
            assert again.declaration_result.message_count == 0
        finally:
            await q.delete(if_unused=False, if_empty=False)


async def test_process_requeues_on_exception(broker_url, qname):
    conn = await aio_pika.connect_robust(broker_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue(qname, durable=True)
        try:
            await ch.default_exchange.publish(aio_pika.Message(b"flaky"), routing_key=qname)
            attempts: list[tuple[bytes, bool]] = []
            done = asyncio.Event()

            async def handler(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                try:
                    async with msg.process(requeue=True):
                        attempts.append((msg.body, msg.redelivered))
                        if len(attempts) == 1:
                            raise RuntimeError("boom")
                        done.set()
                except RuntimeError:
                    pass

            tag = await q.consume(handler)
            await asyncio.wait_for(done.wait(), 5)
            await q.cancel(tag)
            assert attempts == [(b"flaky", False), (b"flaky", True)]
            res = await ch.declare_queue(qname, passive=True)
            assert res.declaration_result.message_count == 0
        finally:
            await q.delete(if_unused=False, if_empty=False)


async def test_process_reject_on_redelivered_dead_letters(broker_url, qname):
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        dlq = await ch.declare_queue(qname + ".dlq", auto_delete=False)
        q = await ch.declare_queue(qname, arguments={"x-dead-letter-exchange": "",
                                                     "x-dead-letter-routing-key": dlq.name})
        try:
            await ch.default_exchange.publish(aio_pika.Message(b"poison"), routing_key=qname)
            for _ in range(2):
                msg = await q.get(timeout=5)
                try:
                    async with msg.process(requeue=True, reject_on_redelivered=True):
                        raise ValueError("always fails")
                except ValueError:
                    pass
            dead = None
            for _ in range(100):
                dead = await dlq.get(fail=False)
                if dead:
                    break
                await asyncio.sleep(0.02)
            assert dead is not None and dead.body == b"poison"
            assert dead.headers["x-death"][0]["reason"] == "rejected"
            await dead.ack()
        finally:
            await q.delete(if_unused=False, if_empty=False)
            await dlq.delete(if_unused=False, if_empty=False)


async def test_master_worker_round_trip(broker_url, qname):
    conn = await aio_pika.connect_robust(broker_url)
    async with conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.set_qos(prefetch_count=1)
        master = Master(ch)
        results: list[int] = []
        failed_once: set[int] = set()

        async def work(*, n: int) -> None:
            if n == 3 and n not in failed_once:
                failed_once.add(n)
                raise NackMessage(requeue=True)
            results.append(n * n)

        worker = await master.create_worker(qname, work, auto_delete=True)
        try:
            for n in range(6):
                await master.create_task(qname, kwargs={"n": n})
            assert await wait_for(lambda: len(results) == 6)
            assert sorted(results) == [0, 1, 4, 9, 16, 25]
            assert failed_once == {3}
        finally:
            await worker.close()


async def test_rpc_pattern_round_trip(broker_url, qname):
    conn = await aio_pika.connect(broker_url)
    async with conn:
        ch = await conn.channel()
        rpc = await RPC.create(ch)
        try:
            async def mul(*, a: int, b: int) -> int:
                return a * b

            await rpc.register(qname, mul, auto_delete=True)
            assert await rpc.call(qname, kwargs={"a": 6, "b": 7}) == 42
            results = await asyncio.gather(*(rpc.call(qname, kwargs={"a": i, "b": i})
                                             for i in range(10)))
            assert results == [i * i for i in range(10)]
        finally:
            await rpc.close()


async def test_aiormq_basic_usage(broker_url, qname):
    conn = await aiormq.connect(broker_url)
    try:
        ch = await conn.channel()
        ok = await ch.queue_declare(qname, auto_delete=False)
        assert ok.queue == qname and ok.message_count == 0
        assert ch.publisher_confirms  # aiormq channels confirm by default
        conf = await ch.basic_publish(b"raw-1", routing_key=qname,
                                      properties=aiormq.spec.Basic.Properties(message_id="id1"))
        assert isinstance(conf, aiormq.spec.Basic.Ack)  # a nack is not a confirm
        conf = await ch.basic_publish(b"raw-2", routing_key=qname)
        assert isinstance(conf, aiormq.spec.Basic.Ack)
        got = await ch.basic_get(qname)
        assert got.body == b"raw-1" and got.header.properties.message_id == "id1"
        assert got.delivery.message_count == 1
        await ch.basic_ack(got.delivery.delivery_tag)
        received = asyncio.Queue()

        async def on_msg(msg):
            await received.put(msg)

        await ch.basic_qos(prefetch_count=1)
        consume_ok = await ch.basic_consume(qname, on_msg)
        msg = await asyncio.wait_for(received.get(), 5)
        assert msg.body == b"raw-2" and msg.delivery.redelivered is False
        await ch.basic_reject(msg.delivery.delivery_tag, requeue=True)
        msg = await asyncio.wait_for(received.get(), 5)
        assert msg.body == b"raw-2" and msg.delivery.redelivered is True
        await ch.basic_ack(msg.delivery.delivery_tag)
        await ch.basic_cancel(consume_ok.consumer_tag)
        empty = await ch.basic_get(qname)
        assert isinstance(empty.delivery, aiormq.spec.Basic.GetEmpty)
        deleted = await ch.queue_delete(qname)
        assert deleted.message_count == 0
    finally:
        await conn.close()


def test_kombu_simple_queue(broker_url, qname):
    kombu = pytest.importorskip("kombu")
    url = broker_url.replace("amqp://", "pyamqp://", 1)
    with kombu.Connection(url, connect_timeout=5) as conn:
        sq = conn.SimpleQueue(qname)
        try:
            sq.put({"hello": "world", "n": 1})
            sq.put("second")
            m1 = sq.get(block=True, timeout=5)
            assert m1.payload == {"hello": "world", "n": 1}
            m1.ack()
            m2 = sq.get(block=True, timeout=5)
            assert m2.payload == "second"
            m2.requeue()
            m3 = sq.get(block=True, timeout=5)
            assert m3.payload == "second" and m3.delivery_info["redelivered"] is True
            m3.ack()
            with pytest.raises(sq.Empty):
                sq.get(block=True, timeout=0.2)
            assert sq.qsize() == 0
        finally:
            sq.close()
            c = conn.channel()
            c.queue_delete(qname)
            c.close()


def test_kombu_producer_consumer_with_exchange(broker_url, qname):
    kombu = pytest.importorskip("kombu")
    url = broker_url.replace("amqp://", "pyamqp://", 1)
    exchange = kombu.Exchange(qname + ".x", type="topic", auto_delete=True)
    queue = kombu.Queue(qname, exchange, routing_key="task.#", auto_delete=True)
    got = []
    with kombu.Connection(url, connect_timeout=5) as conn:
        with conn.Consumer(queue, callbacks=[lambda body, msg: (got.append(body), msg.ack())],
                           accept=["json"]):
            producer = conn.Producer(serializer="json")
            for i in range(3):
                producer.publish({"i": i}, exchange=exchange, routing_key=f"task.{i}",
                                 declare=[queue], retry=True)
            producer.publish({"i": "no"}, exchange=exchange, routing_key="other", declare=[queue])
            deadline = 50
            while len(got) < 3 and deadline:
                try:
                    conn.drain_events(timeout=0.1)
                except TimeoutError:
                    deadline -= 1
                except OSError:
                    deadline -= 1
    assert got == [{"i": 0}, {"i": 1}, {"i": 2}]
