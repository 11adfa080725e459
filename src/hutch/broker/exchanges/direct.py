"""Direct exchange: exact routing-key match."""

from __future__ import annotations

from typing import Any

from .base import Binding, Exchange


class DirectExchange(Exchange):
    type_name = "direct"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # routing key -> {destination: number of bindings with that key}
        self._index: dict[str, dict[Any, int]] = {}

    def route(self, routing_key, headers):
        dests = self._index.get(routing_key)
        return list(dests) if dests else []

    def _index_add(self, binding: Binding) -> None:
        dests = self._index.setdefault(binding.routing_key, {})
        dests[binding.destination] = dests.get(binding.destination, 0) + 1

    def _index_remove(self, binding: Binding) -> None:
        dests = self._index[binding.routing_key]
        left = dests[binding.destination] - 1
        if left:
            dests[binding.destination] = left
        else:
            del dests[binding.destination]
            if not dests:
                del self._index[binding.routing_key]
