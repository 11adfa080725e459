"""Fanout exchange: every bound destination, routing key ignored."""

from __future__ import annotations

from typing import Any

from .base import Binding, Exchange


class FanoutExchange(Exchange):
    type_name = "fanout"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dests: dict[Any, int] = {}

    def route(self, routing_key, headers):
        return list(self._dests)

    def _index_add(self, binding: Binding) -> None:
        self._dests[binding.destination] = self._dests.get(binding.destination, 0) + 1

    def _index_remove(self, binding: Binding) -> None:
        left = self._dests[binding.destination] - 1
        if left:
            self._dests[binding.destination] = left
        else:
            del self._dests[binding.destination]
