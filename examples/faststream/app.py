"""A FastStream app on Hutch. The one line that points FastStream at Hutch is the
broker's URL (AMQP_URL overrides it); Hutch answers as RabbitMQ.

    hutch serve                                           # shell 1: the broker
    faststream run app:app --app-dir examples/faststream  # shell 2: the app
    python examples/faststream/client.py                  # shell 3: an order, a request

test_app.py runs the same handlers against the hutch_broker pytest fixture.
"""
import os

from faststream import FastStream
from faststream.rabbit import RabbitBroker, RabbitQueue, RabbitRouter

router = RabbitRouter()


@router.subscriber(RabbitQueue("orders", durable=True))
@router.publisher("shipments")
async def ship(order: dict) -> dict:
    """Each order in 'orders' becomes a shipment in 'shipments'."""
    return {"order_id": order["id"], "status": "shipped"}


@router.subscriber(RabbitQueue("shipments", durable=True))
async def log_shipment(shipment: dict) -> None:
    print(f"shipped order {shipment['order_id']}", flush=True)


@router.subscriber("prices")
async def price(item: str) -> dict:
    """Answers requests (broker.request: RabbitMQ's direct reply-to)."""
    return {"item": item, "price": 3 * len(item)}


def make_broker(url: str) -> RabbitBroker:
    broker = RabbitBroker(url)
    broker.include_router(router)
    return broker


app = FastStream(make_broker(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")))
