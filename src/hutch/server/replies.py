"""Replies that wait for the definitions file, without breaking the channel's order.

``queue.declare-ok`` (and every other answer to a durable change) promises that
the change survives a restart, so it is sent only once the definitions writer
(``store.definitions.DefinitionsWriter``) has it on disk.  That write is grouped
and runs off the loop; meanwhile the channel goes on reading, and every later
reply of the same channel queues up behind the waiting one, because AMQP clients
match replies to requests by their order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any


class HeldReplies:
    __slots__ = ("_fail", "_queue", "_waiting", "_writer")

    def __init__(self, writer: Any, fail: Callable[[OSError | None], None]) -> None:
        self._writer = writer
        self._fail = fail  # the promise cannot be kept: the channel closes the connection
        self._queue: deque[tuple[int, Callable[[], None]]] = deque()
        self._waiting = False

    def __bool__(self) -> bool:
        return bool(self._queue)

    def hold(self, version: int, send: Callable[[], None]) -> None:
        """``send`` runs once definitions ``version`` is durable and every reply held
        before it has been sent (``version`` 0: only the latter)."""
        self._queue.append((version, send))
        if not self._waiting:
            self._release(True)

    def clear(self) -> None:
        self._queue.clear()

    def _release(self, ok: bool) -> None:
        self._waiting = False
        if not ok:
            self._queue.clear()
            self._fail(self._writer.error)
            return
        queue, writer = self._queue, self._writer
        while queue:
            version, send = queue[0]
            if version > writer.synced:
                self._waiting = True
                writer.when_synced(version, self._release)
                return
            queue.popleft()
            send()
