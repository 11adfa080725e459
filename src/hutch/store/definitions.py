"""The durable definitions file: users, vhosts, permissions, durable exchanges/queues/bindings.

Kept in ``<data-dir>/definitions.json`` in RabbitMQ's definitions format (the
one ``rabbitmqctl export_definitions`` writes), rewritten whole and atomically
(temp file, fsync, rename, directory fsync) after they change.  The rewrite is a
group commit off the event loop (``DefinitionsWriter``): a thousand declares
arriving together share one write, and nobody else waits for it.

The store does not know what the document says: the broker hands the writer a
callable that pictures its state as plain JSON data (``broker/definitions.py``,
which also reads it back at boot).  Failures are ``OSError``; what a client is
told about them is for the channel and the management API to decide.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
from collections.abc import Callable
from typing import Any

log = logging.getLogger("hutch.store")

FILENAME = "definitions.json"

Document = dict[str, Any]


def write(document: Document, data_dir: str, files: Any) -> None:
    """Encode and write ``document`` atomically (through the ``files`` seam)."""
    data = json.dumps(document, indent=1, sort_keys=True).encode()
    files.write_file_atomically(os.path.join(data_dir, FILENAME), data)


def load(data_dir: str) -> Document | None:
    """The document last written, or None if there is none yet."""
    path = os.path.join(data_dir, FILENAME)
    try:
        with open(path, "rb") as f:
            doc: Document = json.loads(f.read())
            return doc
    except FileNotFoundError:
        return None


class DefinitionsWriter:
    """Writes the definitions file after changes, grouped, on a thread of its own.

    Every change bumps ``version``; ``when_synced(v, cb)`` calls ``cb(ok)`` on the
    loop once a write that includes change ``v`` is durable (``ok`` False if that
    write failed).  While one write runs, later changes pile up and go out in the
    next one.  ``snapshot()`` is called on the loop (the broker is not thread-safe)
    and returns plain data; JSON encoding and the disk work run on the thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, files: Any, data_dir: str,
                 snapshot: Callable[[], Document] | None = None) -> None:
        self.loop = loop
        self.files = files
        self.data_dir = data_dir
        self.snapshot = snapshot  # the broker's state as a document (set when it attaches)
        self.version = 0  # bumped by every change
        self.synced = 0  # every change up to this one is on disk
        self.error: OSError | None = None  # the last write's failure, until one succeeds
        self._writing = 0  # the version being written (0: none)
        self._scheduled = False
        self._retry: asyncio.TimerHandle | None = None
        self._waiters: list[tuple[int, Callable[[bool], None]]] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hutch-defs")
        self.writes = 0  # successful writes, for tests and statistics

    def changed(self) -> int:
        self.version += 1
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)
        return self.version

    def when_synced(self, version: int, callback: Callable[[bool], None]) -> None:
        if version <= self.synced:
            callback(True)
            return
        self._waiters.append((version, callback))
        if not self._writing and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def write_now(self) -> None:
        """Synchronously, at boot (before any client is served)."""
        version = self.version
        write(self._take(), self.data_dir, self.files)
        self.writes += 1
        self.synced = version

    def _take(self) -> Document:
        if self.snapshot is None:
            raise RuntimeError("the definitions writer has no snapshot to take")
        return self.snapshot()

    def _flush(self) -> None:
        self._scheduled = False
        if self._writing or self.synced >= self.version:
            return
        version = self.version
        try:
            state = self._take()
        except Exception as exc:  # a bug, not the disk: fail the waiters loudly, once
            log.exception("could not take the definitions")
            self._settle(version, OSError(str(exc)))
            return
        self._writing = version
        fut = self.loop.run_in_executor(self._executor, write, state, self.data_dir, self.files)
        fut.add_done_callback(lambda f: self._done(version, f))

    def _done(self, version: int, fut: asyncio.Future[None]) -> None:
        self._writing = 0
        exc = fut.exception()
        if exc is not None and not isinstance(exc, OSError):
            exc = OSError(str(exc))
        if exc is None:
            self.writes += 1
        self._settle(version, exc)
        if self.synced < self.version:
            # Changes made during the write (nobody may be waiting for them: a nowait
            # declare, an auto-delete) go out now; after a failure, a little later,
            # so a failing disk is not retried in a tight loop.
            if exc is None or any(v > version for v, _cb in self._waiters):
                self._flush()
            elif self._retry is None:
                self._retry = self.loop.call_later(self.files.retry_after, self._retry_flush)

    def _retry_flush(self) -> None:
        self._retry = None
        self._flush()

    def _settle(self, version: int, exc: OSError | None) -> None:
        if exc is None:
            if self.error is not None:
                log.warning("definitions are written again")
            self.error = None
            self.synced = max(self.synced, version)
        else:
            if self.error is None:
                log.error("could not write definitions: %s", exc)
            self.error = exc
        done = [cb for v, cb in self._waiters if v <= version]
        self._waiters = [(v, cb) for v, cb in self._waiters if v > version]
        for cb in done:
            cb(exc is None)

    async def settle(self) -> bool:
        """Write whatever changed so far and wait for it (a clean stop, an answer that
        must not go out before its change is durable); False if that write failed."""
        if self.synced >= self.version:
            return True
        done: asyncio.Future[bool] = self.loop.create_future()

        def settled(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        self.when_synced(self.version, settled)
        return await done

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._executor.shutdown(wait=True)
