"""Argument types shared by ``hutch serve`` and ``hutch perf``.

argparse names a failing ``type=`` function in its message (``invalid
_parse_size value: 'x'``) unless the function raises ``ArgumentTypeError``:
these always do, so a user reads what the option wants, never an internal name.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def size(text: str) -> int:
    """A byte count: ``1000``, ``64k``, ``128m``, ``1g`` (binary units; ``64MiB``,
    ``64mb`` too)."""
    t = text.strip().lower()
    for suffix in ("ib", "b"):
        if t.endswith(suffix):
            t = t[: -len(suffix)]
            break
    scale = 1
    if t and t[-1] in UNITS:
        t, scale = t[:-1], UNITS[t[-1]]
    try:
        value = float(t) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: use a whole number of bytes, optionally with k, m or g "
            "(e.g. 4096, 64k, 128m)")
    return int(value)


def json_object(text: str) -> dict[str, Any]:
    """A JSON object, e.g. ``{"x-max-length": 1000}``."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON {text!r}: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like "
                                         f'\'{{"x-max-length": 1000}}\', got {text!r}')
    return value


def from_value_error(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type=`` from a parser that raises ValueError with its own message
    (the converters config/keys.py shares with the flags)."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


def directory(text: str) -> str:
    """A path to a directory (an empty one would mean the current directory by accident)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a directory path may not be empty")
    return text


def consumer_timeout(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid consumer timeout {text!r}: "
                                         f"milliseconds, a non-negative integer")
    return value


def segment_size(text: str) -> int:
    value = size(text)
    # Offsets inside a segment are 32-bit and one batch may run past the size.
    if not 4096 <= value <= 1024**3:
        raise argparse.ArgumentTypeError(f"invalid segment size {text!r}: must be between 4k and 1g")
    return value
