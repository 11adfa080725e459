"""basic.publish's content, put back together: the method, then a content header,
then body frames until the declared size is reached.

The channel checks the method (permissions, exchange) and calls ``begin``; this
checks the header and body frames as they come and hands the whole message to
the channel's ``complete`` callback, after it has forgotten it (a callback that
raises leaves nothing half-assembled behind).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ..errors import ChannelError, HardError
from ..protocol import constants as rc

# What the basic.publish method said: (exchange, routing key, mandatory).
Publish = tuple[str, str, bool]
Complete = Callable[[Publish, bytes, bytes], None]


def _unexpected_content() -> HardError:
    return HardError(rc.UNEXPECTED_FRAME, "expected method frame, got non method frame instead")


class ContentAssembler:
    __slots__ = ("_body_counted", "_body_len", "_body_parts", "_body_size", "_broker",
                 "_complete", "_header", "publish")

    def __init__(self, broker: Any, complete: Complete) -> None:
        self._broker = broker
        self._complete = complete
        # Set from basic.publish until the content is complete: a method frame in
        # between is an error (the channel checks this).
        self.publish: Publish | None = None
        self._header: bytes | None = None
        self._body_size = 0
        self._body_parts: list[bytes] = []
        self._body_len = 0
        # Bytes of a multi-frame body received so far, counted by the memory alarm while
        # they come in (up to max_message_size per channel, so they matter).
        self._body_counted = 0

    def begin(self, publish: Publish) -> None:
        self.publish = publish

    def on_header(self, payload: bytes) -> None:
        if self.publish is None or self._header is not None:
            raise _unexpected_content()
        if len(payload) < 14:
            raise HardError(rc.FRAME_ERROR, "content header frame too short")
        class_id, _weight, body_size = struct.unpack_from(">HHQ", payload, 0)
        if class_id != 60:
            exc = HardError(rc.UNEXPECTED_FRAME, "expected content header for class 60, "
                            f"got one for class {class_id} instead")
            exc.class_id, exc.method_id = 60, 40
            raise exc
        max_size = self._broker.max_message_size
        if body_size > max_size:
            self.reset()
            raise ChannelError(rc.PRECONDITION_FAILED,
                               f"message size {body_size} is larger than configured max size "
                               f"{max_size}")
        self._header = payload
        self._body_size = body_size
        if body_size == 0:
            self._done(b"")

    def on_body(self, payload: bytes) -> None:
        if self._header is None:
            raise _unexpected_content()
        self._body_parts.append(payload)
        self._body_len += len(payload)
        if self._body_len >= self._body_size:
            if self._body_len > self._body_size:
                raise HardError(rc.FRAME_ERROR, "content body larger than declared")
            parts = self._body_parts
            if len(parts) == 1:
                self._done(parts[0])
                return
            # Uncounted only once the queues have counted the whole body, so the total
            # never dips below the watermark in between (which would flap the alarm).
            counted, self._body_counted = self._body_counted, 0
            try:
                self._done(b"".join(parts))
            finally:
                self._broker.account(-counted)
        else:
            self._body_counted += len(payload)
            self._broker.account(len(payload))

    def _done(self, body: bytes) -> None:
        publish, header = self.publish, self._header
        assert publish is not None and header is not None
        self.reset()
        self._complete(publish, header, body)

    def reset(self) -> None:
        """Forget the message being assembled (complete, or the channel closes)."""
        self.publish = None
        self._header = None
        self._body_parts = []
        self._body_len = 0
        if self._body_counted:  # a body abandoned half-way (the channel closes)
            self._broker.account(-self._body_counted)
            self._body_counted = 0
