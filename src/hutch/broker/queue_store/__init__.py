"""A queue's message store: where its ready messages live, in order.

``Queue`` (consumers, dispatch, limits, TTL, dead-lettering) keeps its ready
messages in one ``QueueStore`` and never looks inside.  Two implementations:

* ``MemoryStore`` (``memory.py``): a deque; transient queues, and every queue of a
  broker run ``--in-memory``.
* ``PagedStore`` (``paged.py``): a durable queue over the shared segment log
  (``store.log.MessageLog``): an in-memory window at the head, persistent messages
  recorded in the log, the rest paged out to it and read back as the head drains.

The interface is what one FIFO of ready messages needs, so that other stores can be
built from stores: ``PriorityStore`` (``priority.py``) is one store per priority level.

Ownership of a message's body bytes in the broker's memory alarm
(``Node.account``): the store counts them on ``push`` and uncounts them on
``settle`` (the message left the queue for good, from ready or from unacked), and
in between whenever it pages a body out or reads it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..message import Message

__all__ = ["QueueStore"]


class QueueStore(Protocol):
    @property
    def paged(self) -> int:
        """Ready messages whose body is only on disk."""

    @property
    def paged_bytes(self) -> int:
        """Their body bytes."""

    def __len__(self) -> int:
        """Ready messages, in memory or paged out."""

    @property
    def bytes(self) -> int:
        """Body bytes of every ready message, in memory or paged out."""

    def push(self, msg: Message) -> bool:
        """Append a new message (recording it durably if the store does that and
        ``msg`` is persistent).  True if it joined the in-memory head (then ``head``
        may be it and the queue should dispatch); False if it waits behind a backlog."""

    def shift(self, block: bool = True) -> Message | None:
        """Take the next ready message, body in memory; None if there is none, or
        none can be read right now (the store calls ``Queue.wake`` when it can).
        ``block=False``: rather than read from disk on the event loop, start reading
        and return None (consumer dispatch, which the wake resumes)."""

    def head(self) -> Message | None:
        """The next ready message if it is in memory (no I/O), without taking it."""

    def requeue(self, msgs: list[Message]) -> None:
        """Put taken messages back at their original positions, redelivered."""

    def mark_delivered(self, msg: Message) -> None:
        """``msg`` (with a ``msg_id``) was handed out for the first time: after a
        restart it comes back redelivered."""

    def settle(self, msg: Message) -> None:
        """A taken message left the queue for good (acked, dropped, dead-lettered)."""

    def purge(self) -> int:
        """Drop every ready message for good; how many there were."""

    def restore(self, entries: list[int], size: int, delivered: set[int]) -> None:
        """Recovered messages (log entries in queue order, ``size`` body bytes; ids
        in ``delivered`` were delivered before) become the store's ready messages."""

    def snapshot(self, delivered: set[int]) -> tuple[list[int], int] | None:
        """The durable messages as log entries in queue order with their body bytes,
        for the clean-shutdown snapshot; ids of those delivered before go into
        ``delivered``.  None if one of them is not written yet."""

    def close(self) -> None:
        """The queue is gone (after ``purge``): stop timers and pending reads."""
