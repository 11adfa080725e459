"""A transactional channel's pending work (tx.select): publishes and acks, rejects and
nacks held until tx.commit applies them or tx.rollback drops them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..broker.vhost import STORED, PublishResult
from .deliveries import Deliveries, Taken

# (exchange, routing key, mandatory, header, body, persistent, ttl seconds or None)
HeldPublish = tuple[str, str, bool, bytes, bytes, bool, float | None]
# Publishes one message now: (exchange, routing key, mandatory, header, body, persistent,
# expires_at) -> what Vhost.publish did.
Route = Callable[[str, str, bool, bytes, bytes, bool, float | None], PublishResult]


class Transaction:
    __slots__ = ("_acks", "_publishes")

    def __init__(self) -> None:
        self._publishes: list[HeldPublish] = []
        # ("ack" | "reject" | "requeue" | "retry", what the ack/reject/nack took from the
        # unacked); "retry" is basic.reject's requeue, a failed delivery (redelivery.py).
        self._acks: list[tuple[str, Taken]] = []

    @property
    def messages_uncommitted(self) -> int:
        return len(self._publishes)

    @property
    def acks_uncommitted(self) -> int:
        return sum(len(t) for k, t in self._acks if k == "ack")

    def hold_publish(self, publish: HeldPublish) -> None:
        self._publishes.append(publish)

    def hold_settle(self, kind: str, taken: Taken) -> None:
        """An ack ("ack"), reject ("reject") or requeue ("requeue") for commit."""
        self._acks.append((kind, taken))

    def commit(self, route: Route) -> bool:
        """Route the held publishes (message TTLs start now), then apply the held acks;
        True if the store holds a copy of some publish (commit-ok waits for the disk)."""
        publishes, self._publishes = self._publishes, []
        acks, self._acks = self._acks, []
        stored = 0
        for exchange, routing_key, mandatory, header, body, persistent, ttl in publishes:
            expires_at = None if ttl is None else time.monotonic() + ttl
            stored |= route(exchange, routing_key, mandatory, header, body, persistent,
                            expires_at) & STORED
        for kind, taken in acks:
            if kind == "ack":
                Deliveries.ack(taken)
            else:
                Deliveries.settle_negative([msg for _t, msg in taken], kind != "reject",
                                           failed=kind == "retry")
        return bool(stored)

    def rollback(self, deliveries: Deliveries) -> None:
        """Drop the held publishes; the held acks are undone (unacked again)."""
        self._publishes = []
        acks, self._acks = self._acks, []
        deliveries.restore([pair for _kind, taken in acks for pair in taken])

    def release(self) -> None:
        """The channel is going away: what the held acks took goes back to its queues
        (still unsettled when its holder went away: a failed delivery)."""
        for _kind, taken in self._acks:
            Deliveries.settle_negative([msg for _t, msg in taken], requeue=True, failed=True)
        self._acks.clear()
        self._publishes.clear()
