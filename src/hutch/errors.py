"""AMQP errors raised by the broker layer and turned into Close methods.

``ChannelError`` closes one channel (soft error), ``HardError`` the
whole connection (hard error).  The text is RabbitMQ's convention:
``"<REPLY_NAME> - <detail>"``; the constructor adds the prefix.
"""

from __future__ import annotations

from .protocol.constants import REPLY_NAMES


class AMQPError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.text = f"{REPLY_NAMES.get(code, 'ERROR')} - {detail}"
        # Filled in by the channel with the method that failed.
        self.class_id = 0
        self.method_id = 0
        super().__init__(self.text)


class ChannelError(AMQPError):
    """A soft error: only the channel is closed."""


class HardError(AMQPError):
    """A hard error: the connection is closed."""
