"""Hutch's version, and the RabbitMQ release whose behaviour it follows.

A module of its own (re-exported by ``hutch/__init__.py``) so that every layer can
read them without importing the package root, which exposes the embedded broker.
"""

__version__ = "0.1.0"
# The RabbitMQ release whose behaviour Hutch follows (and that the CI compares it with).
# Clients are told they talk to it: see server/connection.py server_properties().
RABBITMQ_VERSION = "3.10.8"
