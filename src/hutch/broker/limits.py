"""Limits on connections, channels and queues, as RabbitMQ's (4.x; texts checked against 3.10).

* Node-wide (``NodeLimits``, from ``hutch serve`` flags or rabbitmq.conf):
  ``connection_max``, and what connection.tune proposes: ``channel_max``,
  ``frame_max``, ``heartbeat``; ``handshake_timeout``.
* Per vhost (``Vhost.limits``, RabbitMQ's runtime parameter ``vhost-limits`` /
  ``limits``): ``max-connections``, ``max-queues``.
* Per user (``User.limits``): ``max-connections``, ``max-channels``.

A negative value means no limit, 0 means none allowed (rabbit_vhost_limit,
rabbit_auth_backend_internal:is_over_limit).  Everything is checked where RabbitMQ
checks it, at connection.open, channel.open and at the creation of a queue, by
counting what exists then: nothing is counted per frame or per message, and a node
without limits pays one truthiness test per open or new queue.

The refusals (all from rabbit_reader / rabbit_queue_type):

* connection.open: 530 NOT_ALLOWED ``connection refused: node connection limit (N)
  is reached`` / ``access to vhost 'V' refused for user 'U': connection limit (N) is
  reached`` / ``connection refused for user 'U': user connection limit (N) is
  reached``, checked in that order, before the vhost access check;
* channel.open: 530 NOT_ALLOWED (a connection error) ``number of channels opened
  for user 'U' has reached the maximum allowed user limit of (N)``;
* queue.declare of a new queue (exclusive and server-named ones too): 406
  PRECONDITION_FAILED ``cannot declare queue 'Q': queue limit in vhost 'V' (N) is
  reached``; redeclaring an existing queue is always allowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")

# rabbit_reader / the Makefile's defaults (RabbitMQ 3.x and 4.x alike).
CHANNEL_MAX = 2047
FRAME_MAX = 131072
HEARTBEAT = 60
HANDSHAKE_TIMEOUT = 10000  # ms


@dataclass(slots=True)
class NodeLimits:
    """The node's connection settings; ``None`` for connection_max and
    handshake_timeout is RabbitMQ's ``infinity``.  channel_max and frame_max 0:
    no limit, as in RabbitMQ."""

    connection_max: int | None = None
    channel_max: int = CHANNEL_MAX
    frame_max: int = FRAME_MAX
    heartbeat: int = HEARTBEAT
    handshake_timeout: int | None = HANDSHAKE_TIMEOUT


class LimitsError(Exception):
    """A limits document RabbitMQ would refuse; the text is RabbitMQ's."""


def erlang_term(value: Any) -> str:
    """A JSON value as Erlang's ``~p`` prints what RabbitMQ decoded from it, for the
    validation texts RabbitMQ writes (``actually was <<"x">>``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'<<"{value}">>'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(erlang_term(v) for v in value) + "]"
    if isinstance(value, dict):
        return "#{" + ",".join(f"{erlang_term(k)} => {erlang_term(v)}"
                               for k, v in value.items()) + "}"
    return json.dumps(value)


def validate(term: Any, kind: str) -> dict[str, int]:
    """A limits object (``{"max-queues": 10}``) checked as rabbit_parameter_validation
    checks it; ``kind`` is ``vhost`` or ``user``.  Raises LimitsError with the text
    RabbitMQ answers (for a vhost it is wrapped in ``Validation failed``)."""
    known = VHOST_LIMITS if kind == "vhost" else USER_LIMITS
    where = "limits" if kind == "vhost" else "user-limits"
    if not isinstance(term, dict):
        raise LimitsError(_wrap(f"{erlang_term(term)} not a list", kind))
    for name in known:
        if name in term:
            value = term[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise LimitsError(_wrap(f"{name} should be a number, actually was "
                                        f"{erlang_term(value)}", kind))
    unknown = [(k, v) for k, v in term.items() if k not in known]
    if unknown:
        terms = ",".join(f"{{{erlang_term(k)},{erlang_term(v)}}}" for k, v in unknown)
        raise LimitsError(_wrap(f"Unrecognised terms [{terms}] in {where}", kind))
    return {k: int(v) for k, v in term.items()}


def _wrap(text: str, kind: str) -> str:
    # rabbit_runtime_parameters (vhost limits are runtime parameters) adds the
    # "Validation failed" frame; user limits are validated by the auth backend.
    return f"Validation failed\n\n{text}\n" if kind == "vhost" else text


def _limit(limits: dict[str, int] | None, name: str) -> int | None:
    """The effective limit, None when there is none (absent or negative)."""
    if not limits:
        return None
    value = limits.get(name)
    if value is None or value < 0:
        return None
    return value


# -- the checks -------------------------------------------------------------------------------
def connection_refusal(node: Any, vhost: Any, user: Any) -> str | None:
    """Why connection.open for ``vhost`` by ``user`` is refused (530), or None.
    ``node.connections`` holds every accepted socket, this one included, as ranch's
    ``active_connections`` does in RabbitMQ 4.x's check."""
    limit = node.limits.connection_max
    if limit is not None and len(node.connections) > limit:
        return f"connection refused: node connection limit ({limit}) is reached"
    limit = _limit(vhost.limits, "max-connections")
    if limit is not None:
        # Counted as RabbitMQ's connection tracking counts: the opened ones.
        if limit == 0 or sum(1 for c in list(node.connections) if c.vhost is vhost) >= limit:
            return (f"access to vhost '{vhost.name}' refused for user '{user.name}': "
                    f"connection limit ({limit}) is reached")
    limit = _limit(user.limits, "max-connections")
    if limit is not None:
        if limit == 0 or sum(1 for c in list(node.connections)
                             if c.vhost is not None and c.user is not None
                             and c.user.name == user.name) >= limit:
            return (f"connection refused for user '{user.name}': user connection limit "
                    f"({limit}) is reached")
    return None


def channel_refusal(node: Any, user: Any) -> str | None:
    """Why channel.open is refused by ``user``'s max-channels (530), or None."""
    current = node.users.users.get(user.name, user)  # the limits as set now
    limit = _limit(current.limits, "max-channels")
    if limit is None:
        return None
    if limit == 0 or sum(len(c.channels) for c in list(node.connections)
                         if c.user is not None and c.user.name == user.name) >= limit:
        # RabbitMQ 4.x formats this text with the node's name where the user's goes
        # (rabbit_reader:create_channel); 3.10's, with the user, is what it means.
        return (f"number of channels opened for user '{user.name}' has reached the "
                f"maximum allowed user limit of ({limit})")
    return None


def queue_refusal(vhost: Any, name: str) -> str | None:
    """Why a new queue ``name`` may not be created in ``vhost`` (406), or None."""
    limit = _limit(vhost.limits, "max-queues")
    if limit is None:
        return None
    if limit == 0 or len(vhost.queues) + 1 > limit:
        return f"cannot declare queue '{name}': queue limit in vhost '{vhost.name}' ({limit}) is reached"
    return None


# -- the definitions' shapes -----------------------------------------------------------------
def vhost_parameters(node: Any) -> list[dict[str, Any]]:
    """Vhost limits as ``rabbitmqctl export_definitions`` writes them (3.x and 4.x):
    runtime parameters of component ``vhost-limits``, name ``limits``."""
    return [{"value": dict(v.limits), "vhost": name, "component": "vhost-limits",
             "name": "limits"}
            for name, v in list(node.vhosts.items()) if v.limits is not None]


def parameter_limits(param: dict[str, Any]) -> Any:
    """The limits a definitions ``parameters`` entry sets, or None if it is another kind."""
    if param.get("component") == "vhost-limits" and param.get("name", "limits") == "limits":
        return param.get("value")
    return None
