"""AMQP errors raised by the broker layer and turned into Close methods.

``ChannelError`` closes one channel (soft error), ``HardError`` the
whole connection (hard error).  The text is RabbitMQ's convention:
``"<REPLY_NAME> - <detail>"``; the constructor adds the prefix.
"""

from __future__ import annotations

from .protocol.constants import REPLY_NAMES


def truncate_reply(text: str) -> str:
    """Reply texts are short strings (255 bytes); RabbitMQ cuts longer ones to
    252 bytes plus "..." rather than failing to send the error at all."""
    # surrogateescape: a text may quote a name that was not UTF-8 (codec.decode_shortstr).
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) <= 255:
        return text
    return raw[:252].decode("utf-8", "surrogateescape") + "..."


class AMQPError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.text = truncate_reply(f"{REPLY_NAMES.get(code, 'ERROR')} - {detail}")
        # Filled in by the channel with the method that failed.
        self.class_id = 0
        self.method_id = 0
        super().__init__(self.text)


class ChannelError(AMQPError):
    """A soft error: only the channel is closed."""


class HardError(AMQPError):
    """A hard error: the connection is closed."""
