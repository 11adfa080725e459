"""Hutch: a RabbitMQ-compatible AMQP 0-9-1 broker for work queues."""

from typing import TYPE_CHECKING

from .version import RABBITMQ_VERSION, __version__

__all__ = ["RABBITMQ_VERSION", "Broker", "CtlError", "__version__"]

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ below imports lazily
    from .embedded import Broker, CtlError


def __getattr__(name: str) -> object:
    # ``hutch.Broker`` (the embedded broker) is imported on first use, so that
    # ``hutch ctl`` and friends do not pay for the broker's imports.
    if name in ("Broker", "CtlError"):
        from . import embedded

        return getattr(embedded, name)
    raise AttributeError(f"module 'hutch' has no attribute {name!r}")
