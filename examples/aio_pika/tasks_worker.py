#!/usr/bin/env python
"""The seeds' aio-pika tasks_worker.py. AMQP_URL overrides the broker."""
import asyncio
import os

from aio_pika import connect
from aio_pika.abc import AbstractIncomingMessage


async def on_message(message: AbstractIncomingMessage) -> None:
    async with message.process():
        print(f" [x] Received message {message!r}", flush=True)
        await asyncio.sleep(message.body.count(b"."))
        print(f"     Message body is: {message.body!r}", flush=True)


async def main() -> None:
    # Perform connection
    connection = await connect(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost/"))

    async with connection:
        # Creating a channel
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)

        # Declaring queue
        queue = await channel.declare_queue("task_queue", durable=True)

        # Start listening the queue with name 'task_queue'
        await queue.consume(on_message)

        print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
