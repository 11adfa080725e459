"""A queue's effective settings: its ``x-`` arguments combined with policies.

Every limit and behaviour switch a queue obeys is read from one ``QueueSettings``,
computed here and nowhere else, so that a policy change (``policies.py``) can
recompute it for a live queue.  Arguments alone today; how policies and operator
policies combine with them follows RabbitMQ 4.x (``rabbit_policy``/
``rabbit_amqqueue``): for limits the lower value wins, for the dead-letter
settings and overflow the argument wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# x-overflow values
DROP_HEAD = "drop-head"
REJECT_PUBLISH = "reject-publish"
REJECT_PUBLISH_DLX = "reject-publish-dlx"

# RabbitMQ 4.0+: a quorum queue without a delivery limit gets this one
# (rabbit_quorum_queue.erl, ?DEFAULT_DELIVERY_LIMIT).
QUORUM_DEFAULT_DELIVERY_LIMIT = 20


@dataclass(slots=True)
class QueueSettings:
    queue_type: str = "classic"
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = DROP_HEAD
    message_ttl: float | None = None  # seconds
    expires: float | None = None  # seconds
    dlx: str | None = None
    dlrk: str | None = None
    # Returns (requeues) a message may take before it is dead-lettered or dropped;
    # None: unlimited.
    delivery_limit: int | None = None
    # Delivery acknowledgement timeout in ms; None: none.
    consumer_timeout: int | None = None
    max_priority: int | None = None
    single_active: bool = False


def queue_settings(args: dict[str, Any]) -> QueueSettings:
    """The settings a queue declared with ``args`` runs with."""
    qtype = args.get("x-queue-type", "classic")
    ttl = args.get("x-message-ttl")
    exp = args.get("x-expires")
    limit = args.get("x-delivery-limit")
    if not isinstance(limit, int) or isinstance(limit, bool):
        # RabbitMQ 4.x does not validate it: a value that is not an integer means
        # the default (rabbit_quorum_queue:get_delivery_limit).
        limit = None
    if limit is None and qtype == "quorum":
        limit = QUORUM_DEFAULT_DELIVERY_LIMIT
    if limit is not None and limit < 0:
        limit = None  # RabbitMQ 4.x: a negative limit means unlimited
    return QueueSettings(
        queue_type=qtype,
        max_length=args.get("x-max-length"),
        max_length_bytes=args.get("x-max-length-bytes"),
        overflow=args.get("x-overflow", DROP_HEAD),
        message_ttl=ttl / 1000.0 if ttl is not None else None,
        expires=exp / 1000.0 if exp is not None else None,
        dlx=args.get("x-dead-letter-exchange"),
        dlrk=args.get("x-dead-letter-routing-key"),
        delivery_limit=limit,
        consumer_timeout=args.get("x-consumer-timeout"),
        max_priority=args.get("x-max-priority"),
        single_active=args.get("x-single-active-consumer") is True,
    )
