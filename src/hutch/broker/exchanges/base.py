"""Exchange base class: durable attributes plus the binding set.

A binding is identified, as in RabbitMQ, by (destination, routing key,
arguments); binding twice is a no-op.  Subclasses keep whatever index makes
their ``route`` fast and update it in ``_index_add`` / ``_index_remove``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def args_key(arguments: dict[str, Any]) -> str:
    """A hashable, order-independent identity for a binding's argument table."""
    return repr(sorted(arguments.items())) if arguments else ""


class Binding:
    __slots__ = ("arguments", "destination", "routing_key", "source")

    def __init__(self, source: Exchange, destination: Any, routing_key: str,
                 arguments: dict[str, Any]) -> None:
        self.source = source
        self.destination = destination  # a Queue or an Exchange
        self.routing_key = routing_key
        self.arguments = arguments


class Exchange:
    type_name = "base"
    is_exchange = True
    delays = False  # an x-delayed-message exchange (delayed.py): Vhost.route asks it first
    store: Any = None  # a delayed exchange's DelayStore (broker/delayed_store.py)

    def __init__(self, vhost: Any, name: str, durable: bool = True, auto_delete: bool = False,
                 internal: bool = False, arguments: dict[str, Any] | None = None) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = arguments or {}
        # The argument's, else the policy's (policies.apply_to_exchange).
        self.alternate_exchange: str | None = self.arguments.get("alternate-exchange")
        self.policy: Any = None
        self.operator_policy: Any = None
        self.bindings: dict[tuple[int, str, str], Binding] = {}
        # Set by Vhost when the exchange is deleted, so stale references route nowhere.
        self.deleted = False
        # RabbitMQ's exchange message_stats: messages clients published to this exchange
        # (publish_in) and the copies it routed to queues (publish_out); counted by
        # Vhost.publish, not for dead-lettered or delayed messages (RabbitMQ counts
        # channel publishes only).
        self.publish_in = 0
        self.publish_out = 0

    # -- bindings ----------------------------------------------------------
    def bind(self, destination: Any, routing_key: str, arguments: dict[str, Any]) -> bool:
        key = (id(destination), routing_key, args_key(arguments))
        if key in self.bindings:
            return False
        binding = Binding(self, destination, routing_key, arguments)
        self.bindings[key] = binding
        self._index_add(binding)
        return True

    def unbind(self, destination: Any, routing_key: str, arguments: dict[str, Any]) -> bool:
        binding = self.bindings.pop((id(destination), routing_key, args_key(arguments)), None)
        if binding is None:
            return False
        self._index_remove(binding)
        return True

    def has_binding(self, destination: Any, routing_key: str, arguments: dict[str, Any]) -> bool:
        return (id(destination), routing_key, args_key(arguments)) in self.bindings

    def unbind_destination(self, destination: Any) -> int:
        """Drop every binding to ``destination`` (it is being deleted)."""
        doomed = [k for k, b in self.bindings.items() if b.destination is destination]
        for key in doomed:
            self._index_remove(self.bindings.pop(key))
        return len(doomed)

    # -- routing -----------------------------------------------------------
    def route(self, routing_key: str, headers: Callable[[], dict[str, Any] | None]) -> list[Any]:
        """Destinations (queues or exchanges) for one message.

        ``headers`` is a thunk: only the headers exchange pays for decoding
        the message properties.
        """
        raise NotImplementedError

    def _index_add(self, binding: Binding) -> None:
        raise NotImplementedError

    def _index_remove(self, binding: Binding) -> None:
        raise NotImplementedError
