"""Values of the connection limits, from ``hutch serve`` flags or ``rabbitmq.conf`` keys.

Each converter takes the text as written (``connection_max = infinity``,
``--frame-max 128k``) and returns the value, or raises ``LimitValueError`` with a
message naming what the setting accepts.  ``LimitValueError`` is both argparse's
``ArgumentTypeError`` (so ``hutch serve`` prints the message, not "invalid value")
and a ``ValueError`` (what the configuration file's key table expects).

The ranges are RabbitMQ's (rabbit.schema, rabbit_reader, 4.x): ``channel_max`` and
``heartbeat`` travel in 16-bit fields of connection.tune, ``frame_max`` in a 32-bit
one and is 0 (no limit) or at least the spec's 4096; ``connection_max`` and
``handshake_timeout`` may be ``infinity``.  A leaf module: no other Hutch import.
"""

from __future__ import annotations

import argparse

from ..argtypes import size

FRAME_MIN_SIZE = 4096  # AMQP 0-9-1: every peer accepts frames this large


class LimitValueError(argparse.ArgumentTypeError, ValueError):
    """A setting's value out of its type or range."""


def _integer(text: str, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise LimitValueError(f"invalid {what} {text!r}: {_WANTS[what]}") from None


_WANTS = {
    "connection_max": "a non-negative integer or 'infinity'",
    "channel_max": "an integer from 0 (no limit) to 65535",
    "frame_max": "0 (no limit) or a number of bytes from 4096 to 4294967295 (e.g. 131072)",
    "heartbeat": "seconds, an integer from 0 (disabled) to 65535",
    "handshake_timeout": "milliseconds, a positive integer or 'infinity'",
}


def connection_max(text: str) -> int | None:
    """Connections the node accepts at once; None: no limit (``infinity``)."""
    if str(text).strip().lower() == "infinity":
        return None
    value = _integer(text, "connection_max")
    if value < 0:
        raise LimitValueError(f"invalid connection_max {text!r}: {_WANTS['connection_max']}")
    return value


def _short(text: str, name: str) -> int:
    """A 16-bit field of connection.tune (0 = no limit / off)."""
    value = _integer(text, name)
    if not 0 <= value <= 65535:
        raise LimitValueError(f"invalid {name} {text!r}: {_WANTS[name]}")
    return value


def channel_max(text: str) -> int:
    return _short(text, "channel_max")


def frame_max(text: str) -> int:
    try:
        value = size(str(text))
    except argparse.ArgumentTypeError:
        raise LimitValueError(f"invalid frame_max {text!r}: {_WANTS['frame_max']}") from None
    if value != 0 and not FRAME_MIN_SIZE <= value <= 0xFFFFFFFF:
        raise LimitValueError(f"invalid frame_max {text!r}: {_WANTS['frame_max']}")
    return value


def heartbeat(text: str) -> int:
    return _short(text, "heartbeat")


def handshake_timeout(text: str) -> int | None:
    """Milliseconds a new connection has to finish its handshake; None: forever."""
    if str(text).strip().lower() == "infinity":
        return None
    value = _integer(text, "handshake_timeout")
    if value <= 0:
        raise LimitValueError(f"invalid handshake_timeout {text!r}: "
                              f"{_WANTS['handshake_timeout']}")
    return value


# -- hutch serve ------------------------------------------------------------------------------
def add_serve_arguments(s: argparse.ArgumentParser) -> None:
    """The flags of ``hutch serve`` for these settings (each also a rabbitmq.conf key)."""
    s.add_argument("--connection-max", type=connection_max, default=None, metavar="N",
                   help="connections the node accepts at once; more are refused at "
                        "connection.open with 530 (RabbitMQ's connection_max; default infinity)")
    s.add_argument("--channel-max", type=channel_max, default=2047, metavar="N",
                   help="channels per connection proposed in connection.tune; the client may "
                        "ask for fewer (channel_max; default 2047, 0 = no limit)")
    s.add_argument("--frame-max", type=frame_max, default=131072, metavar="BYTES",
                   help="largest frame proposed in connection.tune (frame_max; default 131072, "
                        "0 = no limit)")
    s.add_argument("--heartbeat", type=heartbeat, default=60, metavar="SECONDS",
                   help="heartbeat timeout proposed in connection.tune (heartbeat; default 60, "
                        "0 = none unless the client asks)")
    s.add_argument("--handshake-timeout", type=handshake_timeout, default=10000, metavar="MS",
                   help="time a new connection has to complete the AMQP handshake before it is "
                        "closed (handshake_timeout; default 10000, or infinity)")


def apply_serve_arguments(args: argparse.Namespace, node_limits: object) -> None:
    """Copy the parsed flags onto the node's ``NodeLimits`` (broker/limits.py)."""
    for name in ("connection_max", "channel_max", "frame_max", "heartbeat", "handshake_timeout"):
        setattr(node_limits, name, getattr(args, name))


def frame_max_bytesize(text: str) -> int:
    """``frame_max`` as rabbitmq.conf writes it: cuttlefish's ``bytesize``, a number of
    bytes optionally followed by KB, MB or GB (powers of 1024)."""
    t = str(text).strip()
    scale = 1
    for unit, factor in (("KB", 1024), ("MB", 1024**2), ("GB", 1024**3)):
        if t.endswith(unit):
            t, scale = t[: -len(unit)], factor
            break
    if not t.isdigit():
        raise LimitValueError(f"invalid frame_max {text!r}: {_WANTS['frame_max']}")
    return frame_max(str(int(t) * scale))
