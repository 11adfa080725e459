"""How policy, operator policy and arguments combine (RabbitMQ 4.3's rules), in
addition to the wire tests in tests/integration/test_policies.py."""

from __future__ import annotations

import pytest

from hutch.broker.policies import PolicyError, best, check_definition, make_policy, merge
from hutch.broker.queue_settings import QUORUM_DEFAULT_DELIVERY_LIMIT, combine


def pol(name: str, definition: dict, priority: int = 0, apply_to: str = "all",
        pattern: str = ".*", operator: bool = False):
    return make_policy("/", name, {"pattern": pattern, "definition": definition,
                                   "priority": priority, "apply-to": apply_to}, operator)


def test_limits_the_lower_wins_dead_lettering_the_argument() -> None:
    s = combine({"x-max-length": 10, "x-message-ttl": 500, "x-dead-letter-exchange": "a"},
                {"max-length": 3, "message-ttl": 1000, "expires": 2000,
                 "dead-letter-exchange": "b", "dead-letter-routing-key": "k",
                 "consumer-timeout": 5000})
    assert (s.max_length, s.message_ttl, s.expires) == (3, 0.5, 2.0)
    assert (s.dlx, s.dlrk, s.consumer_timeout) == ("a", "k", 5000)


def test_overflow_argument_wins_on_classic_policy_on_quorum() -> None:
    args = {"x-overflow": "reject-publish"}
    assert combine(args, {"overflow": "drop-head"}).overflow == "reject-publish"
    quorum = {**args, "x-queue-type": "quorum"}
    assert combine(quorum, {"overflow": "drop-head"}).overflow == "drop-head"
    assert combine({}, {"overflow": "reject-publish-dlx"}).overflow == "reject-publish-dlx"


def test_delivery_limit() -> None:
    q = {"x-queue-type": "quorum"}
    assert combine(q, {"max-length": 1}).delivery_limit == QUORUM_DEFAULT_DELIVERY_LIMIT
    assert combine({**q, "x-delivery-limit": 5}, {"delivery-limit": 3}).delivery_limit == 3
    # One of them unlimited (negative): the limited one.
    assert combine({**q, "x-delivery-limit": -1}, {"delivery-limit": 7}).delivery_limit == 7
    assert combine(q, {"delivery-limit": -1}).delivery_limit is None
    assert combine({}, {"delivery-limit": 4}).delivery_limit == 4


def test_operator_policy_merge() -> None:
    p = pol("p", {"max-length": 10, "overflow": "drop-head", "delivery-limit": -1,
                  "dead-letter-exchange": "x"})
    o = pol("o", {"max-length": 4, "overflow": "reject-publish", "delivery-limit": 9,
                  "expires": 100}, operator=True)
    assert merge(p, o) == {"dead-letter-exchange": "x", "delivery-limit": 9, "expires": 100,
                           "max-length": 4, "overflow": "reject-publish"}
    assert merge(None, o) == o.definition and merge(p, None) == p.definition


def test_best_highest_priority_apply_to_and_pattern() -> None:
    table = {p.name: p for p in (pol("low", {"expires": 1}, 0),
                                 pol("high", {"expires": 1}, 9, "exchanges"),
                                 pol("qq", {"expires": 1}, 5, "quorum_queues"),
                                 pol("tie-b", {"expires": 1}, 1, pattern="^a"),
                                 pol("tie-a", {"expires": 1}, 1, pattern="^a"))}
    assert best(table, "zz", "classic").name == "low"
    assert best(table, "zz", "quorum").name == "qq"
    assert best(table, "zz", None).name == "high"
    assert best(table, "abc", "classic").name == "tie-a"  # equal priority: first name


@pytest.mark.parametrize(("definition", "operator", "text"), [
    ({"message-ttl": 1.5}, False, "1.5 is not a valid message TTL"),
    ({"consumer-timeout": 10}, True,
     '[{<<"consumer-timeout">>,10}] are not recognised policy settings'),
    ({"b": 1, "a": [1, "x"]}, False,
     '[{<<"a">>,[1,<<"x">>]},{<<"b">>,1}] are not recognised policy settings'),
    ({"zz": 1, "max-length": -1}, False, "-1 is not a valid maximum length"),
])
def test_validation_texts(definition: dict, operator: bool, text: str) -> None:
    with pytest.raises(PolicyError) as exc:
        check_definition(definition, operator)
    assert str(exc.value) == text


def test_huge_policy_times_are_clamped() -> None:
    s = combine({}, {"message-ttl": 10**400, "expires": 10**30, "consumer-timeout": 10**30})
    assert s.message_ttl == s.expires == 315_360_000.0
    assert s.consumer_timeout == 315_360_000_000
