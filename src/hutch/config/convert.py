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

_UNITS = {
    # RabbitMQ 3.13+ (rabbit_resource_monitor_misc:parse_information_unit): k/M/G/T/P are
    # decimal, the "i" forms binary, as Kubernetes reads them.
    **{u: 1024 for u in ("kiB", "KiB", "KIB", "kib", "ki", "Ki")},
    **{u: 1024**2 for u in ("MiB", "MIB", "mib", "mi", "Mi")},
    **{u: 1024**3 for u in ("GiB", "GIB", "gib", "gi", "Gi")},
    **{u: 1024**4 for u in ("TiB", "TIB", "tib", "ti", "Ti")},
    **{u: 1000 for u in ("k", "K", "KB", "kB", "kb", "Kb")},
    **{u: 1000**2 for u in ("m", "M", "MB", "mB", "mb", "Mb")},
    **{u: 1000**3 for u in ("g", "G", "GB", "gB", "gb", "Gb")},
    **{u: 1000**4 for u in ("t", "T", "TB", "tB", "tb", "Tb")},
}
_INFO = re.compile(r"^([0-9]+)([A-Za-z]*)$")


def information_unit(text: str) -> int:
    """Bytes as RabbitMQ 4.x writes them: ``50000000``, ``50MB`` (10^6), ``2GiB`` (2^30)."""
    m = _INFO.match(text)
    if m is None or (m.group(2) and m.group(2) not in _UNITS):
        raise ValueError(f"invalid amount of bytes {text!r}: a whole number, optionally with a "
                         f"unit such as kB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024)")
    return int(m.group(1)) * _UNITS.get(m.group(2), 1)


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
