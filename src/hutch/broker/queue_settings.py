"""A queue's effective settings: its ``x-`` arguments combined with policies.

Every limit and behaviour switch a queue obeys is read from one ``QueueSettings``,
computed here and nowhere else, so that a policy change (``policies.py``) can
recompute it for a live queue: ``queue_settings`` reads the arguments alone,
``combine`` adds the effective policy definition the way RabbitMQ 4.x does (for
limits the lower value wins, for the dead-letter settings the argument wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.codec import Timestamp

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


def _delivery_limit_arg(args: dict[str, Any]) -> int | None:
    """``x-delivery-limit`` if it is an integer.  RabbitMQ 4.x does not validate it: a
    value that is not an integer means the default (rabbit_quorum_queue:
    get_delivery_limit), and loses to a policy's (Erlang orders numbers before
    anything else, so resolve_delivery_limit's min/2 picks the policy's number)."""
    limit = args.get("x-delivery-limit")
    if not isinstance(limit, int) or isinstance(limit, (bool, Timestamp)):
        return None
    return limit


def queue_settings(args: dict[str, Any]) -> QueueSettings:
    """The settings a queue declared with ``args`` runs with."""
    qtype = args.get("x-queue-type", "classic")
    ttl = args.get("x-message-ttl")
    exp = args.get("x-expires")
    limit = _delivery_limit_arg(args)
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


# expiration.MAX_EXPIRY_MS (rabbit_misc:check_expiry's bound), not imported: expiration.py
# imports the protocol layer for its texts, settings need none of it.
MAX_POLICY_MS = 315_360_000_000
_TIMES = ("message-ttl", "expires", "consumer-timeout")


def _lower(policy: Any, arg: Any) -> Any:
    if policy is None:
        return arg
    if arg is None:
        return policy
    return min(policy, arg)


def _delivery_limit(policy: Any, arg: Any) -> Any:
    """rabbit_quorum_queue:resolve_delivery_limit: the lower, unless one of them is
    negative (unlimited); then the other, limited one."""
    if policy is None or arg is None:
        return arg if policy is None else policy
    return max(policy, arg) if policy < 0 or arg < 0 else min(policy, arg)


def combine(args: dict[str, Any], policy: dict[str, Any]) -> QueueSettings:
    """The settings of a queue declared with ``args`` under the effective policy
    definition ``policy`` (policy and operator policy already merged, policies.merge).

    Per key as RabbitMQ 4.x resolves it (rabbit_queue_type_util:args_policy_lookup
    with rabbit_amqqueue_process:process_args_policy for classic queues,
    rabbit_quorum_queue for quorum ones): the lower value for expires, message-ttl,
    max-length, max-length-bytes and consumer-timeout; the argument for the
    dead-letter exchange and routing key; for overflow the argument on a classic
    queue but the policy on a quorum queue; for delivery-limit the lower unless one
    is negative (quorum's rule, which Hutch's classic-queue delivery limit follows too).
    """
    s = queue_settings(args)
    if not policy:
        return s
    # A policy's times are any non-negative integer (rabbit_policies), 10**400 too, which
    # no float (seconds, timers) can hold; a limit beyond the bound an argument may have
    # (about ten years) is the same as none: clamp.
    policy = {k: min(v, MAX_POLICY_MS) if k in _TIMES and isinstance(v, int) else v
              for k, v in policy.items()}
    get = args.get
    s.max_length = _lower(policy.get("max-length"), get("x-max-length"))
    s.max_length_bytes = _lower(policy.get("max-length-bytes"), get("x-max-length-bytes"))
    overflow = policy.get("overflow")
    if overflow is not None and (s.queue_type == "quorum" or get("x-overflow") is None):
        s.overflow = overflow
    ttl = _lower(policy.get("message-ttl"), get("x-message-ttl"))
    s.message_ttl = ttl / 1000.0 if ttl is not None else None
    exp = _lower(policy.get("expires"), get("x-expires"))
    s.expires = exp / 1000.0 if exp is not None else None
    if get("x-dead-letter-exchange") is None and "dead-letter-exchange" in policy:
        s.dlx = policy["dead-letter-exchange"]
    if get("x-dead-letter-routing-key") is None and "dead-letter-routing-key" in policy:
        s.dlrk = policy["dead-letter-routing-key"]
    limit = _delivery_limit(policy.get("delivery-limit"), _delivery_limit_arg(args))
    if limit is None and s.queue_type == "quorum":
        limit = QUORUM_DEFAULT_DELIVERY_LIMIT
    s.delivery_limit = limit if limit is None or limit >= 0 else None
    s.consumer_timeout = _lower(policy.get("consumer-timeout"), get("x-consumer-timeout"))
    return s
