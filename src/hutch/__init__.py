"""Hutch: a RabbitMQ-compatible AMQP 0-9-1 broker for work queues."""

__version__ = "0.1.0"
