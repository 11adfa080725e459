"""Testing the handlers of app.py against a real broker: the hutch_broker pytest
fixture (installed with hutch) starts a Hutch for the test, and FastStream's test
client runs the handlers on it (with_real=True).

    python -m pytest examples/faststream/test_app.py     # needs pytest-asyncio
"""
import pytest
from app import log_shipment, make_broker, ship
from faststream.rabbit import TestRabbitBroker


@pytest.mark.asyncio
async def test_an_order_is_shipped(hutch_broker):
    async with TestRabbitBroker(make_broker(hutch_broker.url), with_real=True) as broker:
        await broker.publish({"id": 42}, queue="orders")
        await ship.wait_call(timeout=5)
        await log_shipment.wait_call(timeout=5)
        log_shipment.mock.assert_called_once_with({"order_id": 42, "status": "shipped"})


@pytest.mark.asyncio
async def test_price_request(hutch_broker):
    async with TestRabbitBroker(make_broker(hutch_broker.url), with_real=True) as broker:
        reply = await broker.request("pear", queue="prices", timeout=5)
        assert await reply.decode() == {"item": "pear", "price": 12}
