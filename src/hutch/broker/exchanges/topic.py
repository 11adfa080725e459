"""Topic exchange: dot-separated words, ``*`` matches one word, ``#`` zero or more.

Bindings live in a trie keyed by word, so routing costs the length of the
routing key, not the number of bindings.  Results are cached per routing key
until the bindings change (work queues reuse a handful of keys).
"""

from __future__ import annotations

from typing import Any

from .base import Binding, Exchange


class _Node:
    __slots__ = ("children", "dests")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.dests: dict[Any, int] = {}


class TopicExchange(Exchange):
    type_name = "topic"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._root = _Node()
        self._cache: dict[str, list[Any]] = {}

    def route(self, routing_key, headers):
        cached = self._cache.get(routing_key)
        if cached is not None:
            return cached
        found: dict[Any, None] = {}
        _match(self._root, _words(routing_key), 0, found)
        result = list(found)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[routing_key] = result
        return result

    def _index_add(self, binding: Binding) -> None:
        node = self._root
        for word in _words(binding.routing_key):
            node = node.children.setdefault(word, _Node())
        node.dests[binding.destination] = node.dests.get(binding.destination, 0) + 1
        self._cache.clear()

    def _index_remove(self, binding: Binding) -> None:
        path = [self._root]
        words = _words(binding.routing_key)
        for word in words:
            path.append(path[-1].children[word])
        node = path[-1]
        left = node.dests[binding.destination] - 1
        if left:
            node.dests[binding.destination] = left
        else:
            del node.dests[binding.destination]
        # Prune empty branches so the trie does not grow forever.
        for depth in range(len(words), 0, -1):
            child = path[depth]
            if child.dests or child.children:
                break
            del path[depth - 1].children[words[depth - 1]]
        self._cache.clear()


def _words(key: str) -> list[str]:
    # An empty key is zero words (RabbitMQ): "" matches "#" and "", not "*".
    return key.split(".") if key else []


def _match(node: _Node, words: list[str], i: int, found: dict[Any, None]) -> None:
    hash_node = node.children.get("#")
    if hash_node is not None:
        # '#' swallows zero or more words.
        for j in range(i, len(words) + 1):
            _match(hash_node, words, j, found)
    if i == len(words):
        for dest in node.dests:
            found[dest] = None
        return
    child = node.children.get(words[i])
    if child is not None:
        _match(child, words, i + 1, found)
    star = node.children.get("*")
    if star is not None:
        _match(star, words, i + 1, found)
