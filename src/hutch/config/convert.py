"""Value types of configuration keys: text in, typed value out, ``ValueError`` with a
message a person can act on otherwise (``load`` adds the file, line and key).

These follow cuttlefish's datatypes as RabbitMQ's schema uses them (``integer``,
``{enum, [true, false]}``, ``ip``, information units), not ``hutch serve``'s flag
syntax: a value copied from a working rabbitmq.conf means the same here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..broker.alarms import parse_information_unit

# RabbitMQ's sizes (kB, MB, GB: powers of 1000; KiB, MiB, GiB: of 1024) have one parser,
# shared with rabbitmqctl-style runtime commands.
information_unit = parse_information_unit


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise ValueError(f"invalid integer {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            if high is None:
                raise ValueError(f"{value} is out of range: must be at least {low}")
            raise ValueError(f"{value} is out of range: must be between {low} and {high}")
        return value

    return convert


port = integer(0, 65535)


def boolean(text: str) -> bool:
    """cuttlefish's ``{enum, [true, false]}``: only the two words."""
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(f"invalid value {text!r}: true or false")


def choice(*allowed: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"invalid value {text!r}: one of {', '.join(allowed)}")
        return text

    return convert


def text(value: str) -> str:
    return value


def ip_address(value: str) -> str:
    """A listen address: an IPv4 or IPv6 literal (``::`` for all) or a host name."""
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.\-]+", value):
            raise ValueError(f"invalid IP address or host name {value!r}") from None
    return value


def argtype(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    """Reuse a ``hutch serve`` flag's ``type=`` function for a key with the same syntax
    (its ``argparse.ArgumentTypeError`` is not a ``ValueError``: re-raised as one)."""

    def convert(value: str) -> Any:
        import argparse

        try:
            return fn(value)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(str(exc)) from None

    return convert
