"""Routing logic of the exchange types, without sockets (pure functions and objects)."""

from __future__ import annotations

import pytest

from hutch.broker.exchanges import TopicExchange
from hutch.broker.exchanges.headers import matches


class Dest:
    is_exchange = False

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*", "a.", True),  # an empty word is still a word
    ("*", "", False),  # an empty key is zero words
    ("", "", True),
    ("#", "", True),
    ("#", "a.b.c", True),
    ("a.#", "a", True),
    ("a.#", "a.b.c", True),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.b.c", True),
    ("a.#.c", "a.b.b.d", False),
    ("#.c", "c", True),
    ("#.c", "x.y.c", True),
    ("*.#", "", False),
    ("*.*", "a", False),
    ("#.#", "a.b", True),
    ("a.#.#.b", "a.b", True),
    ("*.stock.#", "usd.stock", True),
    ("*.stock.#", "eur.stock.db", True),
    ("*.stock.#", "stock.nasdaq", False),
])
def test_topic_patterns(pattern: str, key: str, expected: bool) -> None:
    ex = TopicExchange(None, "t")
    d = Dest("q")
    ex.bind(d, pattern, {})
    assert (ex.route(key, lambda: None) == [d]) is expected


def test_topic_unbind_prunes_and_invalidates_cache() -> None:
    ex = TopicExchange(None, "t")
    a, b = Dest("a"), Dest("b")
    ex.bind(a, "x.*", {})
    ex.bind(b, "x.#", {})
    assert set(map(repr, ex.route("x.y", lambda: None))) == {"a", "b"}
    ex.unbind(a, "x.*", {})
    assert ex.route("x.y", lambda: None) == [b]
    ex.unbind(b, "x.#", {})
    assert ex.route("x.y", lambda: None) == []
    assert ex._root.children == {}


def test_topic_binding_twice_is_one_binding() -> None:
    ex = TopicExchange(None, "t")
    a = Dest("a")
    assert ex.bind(a, "k", {})
    assert not ex.bind(a, "k", {})
    assert ex.unbind(a, "k", {})
    assert ex.route("k", lambda: None) == []


@pytest.mark.parametrize(("args", "headers", "expected"), [
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1, "b": "x", "c": 3}, True),
    ({"x-match": "all", "a": 1, "b": "x"}, {"a": 1}, False),
    ({"a": 1}, {"a": 1}, True),  # all is the default
    ({"x-match": "any", "a": 1, "b": "x"}, {"b": "x"}, True),
    ({"x-match": "any", "a": 1, "b": "x"}, {"a": 2}, False),
    ({"x-match": "any"}, {"a": 1}, False),
    ({"x-match": "all"}, {}, True),
    ({"x-match": "all", "a": None}, {"a": "anything"}, True),  # void: presence only
    ({"x-match": "all", "x-foo": 1}, {}, True),  # x- keys ignored by all/any
    ({"x-match": "all-with-x", "x-foo": 1}, {}, False),
    ({"x-match": "any-with-x", "x-foo": 1}, {"x-foo": 1}, True),
])
def test_headers_matching(args: dict, headers: dict, expected: bool) -> None:
    assert matches(args, headers) is expected
