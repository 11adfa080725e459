"""The storage seam between queues and durable storage.

Today every queue lives in memory and ``Broker.store`` is ``None``.  The durable
store (issue #6) plugs in by implementing ``MessageStore``; queues and channels
already call it at the right moments:

* ``Queue.enqueue`` calls ``add`` for a persistent message entering a durable queue;
* ``Queue._settle`` calls ``remove`` when such a message leaves for good (ack,
  drop, expiry, purge, queue deletion);
* ``Channel._route`` asks ``when_durable`` before confirming a publish that
  added anything, so a confirm is only sent once the message is on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class MessageStore(Protocol):
    def add(self, queue: Any, msg: Any) -> None:
        """Record ``msg`` in ``queue``; set ``msg.store_ref`` to the store's handle."""

    def remove(self, queue: Any, msg: Any) -> None:
        """``msg`` (with a ``store_ref``) left ``queue`` for good."""

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the event loop once everything added so far is synced."""
