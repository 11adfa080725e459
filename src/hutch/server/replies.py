"""Replies that wait for the definitions file, without breaking the channel's order.

``queue.declare-ok`` (and every other answer to a durable change) promises that
the change survives a restart, so it is sent only once the definitions writer
(``store.definitions.DefinitionsWriter``) has it on disk.  That write is grouped
and runs off the loop; meanwhile the channel goes on reading, and every later
reply of the same channel queues up behind the waiting one, because AMQP clients
match replies to requests by their order.

``ChannelReplies`` is a channel's way out for its answers: it notices whether the
method being handled changed durable definitions and holds the answer if so.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..protocol import constants as rc
from ..protocol import methods as m
from ..protocol.state import ENDING


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


class ChannelReplies:
    __slots__ = ("_before", "_conn", "_defs", "_held", "_number")

    def __init__(self, conn: Any, number: int) -> None:
        self._conn = conn
        self._number = number
        store = conn.broker.store
        self._defs = store.definitions if store is not None else None
        self._before: int | None = None  # definitions version when the method began
        self._held = HeldReplies(self._defs, self._failed)

    def handle(self, handler: Callable[[Any], None], method: Any) -> None:
        """Run the handler of ``method``; its replies see whether it changed definitions."""
        if self._defs is None:
            handler(method)
            return
        self._before = self._defs.version
        try:
            handler(method)
        finally:
            self._before = None

    def reply(self, method: m.Method, then: Callable[[], None] | None = None) -> None:
        """Send ``method`` (then run ``then``), after every reply held before it and,
        if the method being handled changed durable definitions, once they are on disk."""
        if not self._conn_open():
            return  # after connection.close (either side's) only close/close-ok may go out
        conn, defs = self._conn, self._defs
        if defs is not None:
            changed = self._before is not None and defs.version != self._before
            if changed or self._held:
                def send() -> None:
                    if conn.state in ENDING:
                        return  # the connection was closed meanwhile: nothing more goes out
                    conn.send_method(self._number, method)
                    if then is not None:
                        then()
                self._held.hold(defs.version if changed else 0, send)
                return
        conn.send_method(self._number, method)
        if then is not None:
            then()

    def in_order(self, action: Callable[[], None]) -> None:
        """Run ``action`` (which writes to the client) after the replies held so far."""
        if self._held:
            def run() -> None:
                if self._conn_open():
                    action()
            self._held.hold(0, run)
        elif self._conn_open():
            action()

    def _conn_open(self) -> bool:
        return self._conn.state not in ENDING

    def _failed(self, error: OSError | None) -> None:
        # Never answer declare-ok for something that would not survive a restart:
        # the connection is closed with 541 instead, as when the disk fails a commit.
        why = (error.strerror or str(error)) if error is not None else "unknown error"
        self._conn.close(rc.INTERNAL_ERROR, f"INTERNAL_ERROR - could not write definitions: {why}")
