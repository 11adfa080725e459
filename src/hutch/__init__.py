"""Hutch: a RabbitMQ-compatible AMQP 0-9-1 broker for work queues."""

from typing import TYPE_CHECKING

__version__ = "0.1.0"
# The RabbitMQ release whose behaviour Hutch follows (and that the CI compares it with).
# Clients are told they talk to it: see server/connection.py server_properties().
RABBITMQ_VERSION = "3.10.8"
__all__ = ["Broker", "CtlError", "__version__"]

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ below imports lazily
    from .embedded import Broker, CtlError


def __getattr__(name: str) -> object:
    # ``hutch.Broker`` (the embedded broker) is imported on first use, so that
    # ``hutch ctl`` and friends do not pay for the broker's imports.
    if name in ("Broker", "CtlError"):
        from . import embedded

        return getattr(embedded, name)
    raise AttributeError(f"module 'hutch' has no attribute {name!r}")
