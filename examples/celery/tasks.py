"""A tiny Celery app on Hutch (see README.md here).

    hutch serve                                  # terminal 1: the broker
    celery -A tasks worker --loglevel=INFO       # terminal 2: the worker
    python tasks.py                              # terminal 3: send work, print results

CELERY_BROKER_URL overrides the broker (default: hutch serve's amqp://localhost:5672).
QUORUM=1 puts the tasks on a quorum queue, with publisher confirms and Celery's native
delayed delivery for countdowns (the broker holds them, not the worker).
"""

import os

from celery import Celery

app = Celery("tasks",
             broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@localhost:5672//"),
             backend="rpc://")
app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1,
                broker_connection_retry_on_startup=True)
if os.environ.get("QUORUM"):
    # A queue's type (and an exchange's) is fixed at declaration, as in RabbitMQ: the
    # quorum setup gets names of its own instead of the classic "celery" queue/exchange.
    app.conf.update(task_default_queue="tasks-quorum", task_default_exchange="tasks-quorum",
                    task_default_routing_key="tasks-quorum",
                    task_default_queue_type="quorum",
                    task_default_exchange_type="topic",  # native delayed delivery needs it
                    broker_transport_options={"confirm_publish": True})


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
def fetch(self, url):
    """Fails twice; Celery retries it after up to 1 s, then up to 2 s (backoff, jitter)."""
    if self.request.retries < 2:
        raise ConnectionError(f"{url} did not answer")
    return f"fetched {url} after {self.request.retries} retries"


if __name__ == "__main__":
    print("add(2, 3) =", add.delay(2, 3).get(timeout=10))
    print("add(4, 5) in 2 s =", add.apply_async((4, 5), countdown=2).get(timeout=10))
    print(fetch.delay("https://example.com").get(timeout=60))
