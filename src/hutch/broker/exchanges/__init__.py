"""Exchange types, by the name clients declare them with."""

from .base import Binding, Exchange, args_key
from .delayed import DelayedExchange
from .direct import DirectExchange
from .fanout import FanoutExchange
from .headers import HeadersExchange
from .topic import TopicExchange

EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
    "x-delayed-message": DelayedExchange,
}

__all__ = [
    "EXCHANGE_TYPES",
    "Binding",
    "DelayedExchange",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "args_key",
]
