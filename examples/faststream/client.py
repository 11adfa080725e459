#!/usr/bin/env python
"""Publishes an order and asks for a price (run the app first; see app.py)."""
import asyncio
import os

from faststream.rabbit import RabbitBroker


async def main() -> None:
    async with RabbitBroker(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")) as broker:
        await broker.publish({"id": 1}, queue="orders")
        reply = await broker.request("apple", queue="prices", timeout=5)
        print("price:", await reply.decode(), flush=True)


asyncio.run(main())
