"""The storage seam between queues and durable storage.

``Node.store`` is ``None`` with ``hutch serve --in-memory`` (every queue lives in
memory) and a ``store.log.MessageLog`` otherwise.  Queues and channels call it at
the right moments:

* a durable queue's message store (``broker/queue_store/paged.py``) calls ``add``
  for a persistent message entering it, ``remove`` when such a message leaves for
  good (ack, drop, expiry, purge, queue deletion) and ``delivered`` on its first
  delivery;
* the channel's confirms (``server/confirms.py``) ask ``when_durable`` before confirming a publish that
  added anything, so a confirm is only sent once the message is on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class MessageStore(Protocol):
    def add(self, queue: Any, msg: Any) -> None:
        """Record ``msg`` in ``queue``; set ``msg.msg_id`` to the store's id for it (and
        ``msg.store_pos`` to its record's offset once written)."""

    def remove(self, queue: Any, msg: Any) -> None:
        """``msg`` (with a ``msg_id``) left ``queue`` for good."""

    def delivered(self, queue: Any, msg: Any) -> None:
        """``msg`` was handed to a consumer for the first time (redelivered after a restart)."""

    def when_durable(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(ok)`` on the event loop once everything added so far is synced
        (``ok`` is False when the write failed: confirms become nacks)."""

    def definitions_changed(self) -> int:
        """Durable definitions changed: persist them atomically, soon (grouped, off the
        loop); returns the change's version for ``definitions.when_synced``."""
