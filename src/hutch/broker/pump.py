"""The once-per-loop-turn pump: dispatch dirty queues, then flush dirty connections.

Publishing, acking, consuming and window changes only *mark* queues and
connections dirty.  One ``call_soon`` callback then dispatches each dirty
queue once and writes each connection's pending frames with a single
``writelines`` — batching that keeps per-message cost flat under load.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Pump:
    __slots__ = ("_conns", "_flow", "_queues", "_scheduled", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queues: dict[Any, None] = {}
        self._conns: dict[Any, None] = {}
        # Publishers' flow control (server/flow.py) waiting for their queues to deliver.
        self._flow: dict[Any, None] = {}
        self._scheduled = False

    def queue_dirty(self, queue: Any) -> None:
        self._queues[queue] = None
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.run)

    def conn_dirty(self, conn: Any) -> None:
        self._conns[conn] = None
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.run)

    def flow_paused(self, flow: Any) -> None:
        """``flow`` waits for its queues to deliver; re-check it after each run."""
        self._flow[flow] = None

    def run(self) -> None:
        self._scheduled = False
        # Dispatching can dirty other queues (dead-lettering); bound the rounds so
        # a pathological cycle cannot starve the loop.
        for _ in range(16):
            if not self._queues:
                break
            queues, self._queues = self._queues, {}
            for q in queues:
                q.dispatch()
        conns, self._conns = self._conns, {}
        for c in conns:
            c.flush()
        if self._flow:
            # Publishers held back by flow control go again once their queues caught up.
            waiting, self._flow = self._flow, {}
            for f in waiting:
                if f.recheck():
                    self._flow[f] = None
        if (self._queues or self._conns) and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.run)
