"""The effective configuration of a ``hutch serve``: every setting, its value and where
the value came from, for ``hutch ctl environment`` (GET /api/hutch/environment).

Each row is one ``hutch serve`` setting (an argparse dest), named by its
configuration-file key when it has one (the first key of the table in
config/keys.py: ``management.tcp.port`` rather than its 3.x alias), else by its flag.
The source is ``default``, ``PATH:LINE`` of the file, or ``flag --x``: the command line
wins over the file, which wins over the default.  Secret values (``default_pass``, key
passwords) are shown as ``********``, as RabbitMQ's ``environment`` hides them.
"""

from __future__ import annotations

import argparse
from typing import Any

from .keys import KEYS
from .load import SECRET_SHOWN

# Internal dests of `hutch serve` that are not settings.
_NOT_SETTINGS = {"help", "command", "config", "version"}


def _serve_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve: argparse.ArgumentParser = action.choices["serve"]
            return serve
    raise LookupError("no serve command")


def _given(action: argparse.Action, argv: list[str]) -> str | None:
    """The option string used on the command line for ``action``, if any."""
    for token in argv:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if name in action.option_strings:
            return name
    return None


def given_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The settings of ``hutch serve`` given as flags on the command line."""
    return {a.dest for a in _serve_parser(parser)._actions if _given(a, argv) is not None}


def shown(value: Any) -> str:
    """A value as a configuration file would write it; ``(unset)`` for nothing (no log
    file, no consumer timeout), ``none`` for an empty list (no loopback-only user)."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set)):
        return ",".join(shown(v) for v in value) or "none"
    return str(value)


def report(parser: argparse.ArgumentParser, argv: list[str], args: argparse.Namespace,
           config: Any) -> list[dict[str, str]]:
    """[{"key", "value", "source"}, ...] in the parser's option order."""
    keys: dict[str, Any] = {}
    for k in KEYS:
        if k.dest is not None:
            keys.setdefault(k.dest, k)
    origins: dict[str, str] = config.origins if config is not None else {}
    rows = []
    for action in _serve_parser(parser)._actions:
        dest = action.dest
        if dest in _NOT_SETTINGS or not action.option_strings:
            continue
        key = keys.get(dest)
        flag = _given(action, argv)
        if flag is not None:
            source = f"flag {flag}"
        elif dest in origins:
            source = origins[dest]
        else:
            source = "default"
        value = getattr(args, dest, None)
        text = shown(value)
        if key is not None and key.secret and value:
            text = SECRET_SHOWN
        rows.append({"key": key.pattern if key is not None else action.option_strings[-1],
                     "value": text, "source": source})
    # Settings only a file can make (no flag of their own, e.g. loopback_users = none),
    # shown as the file says them.
    if config is not None:
        flagged = {a.dest for a in _serve_parser(parser)._actions}
        for setting in config.settings:
            if setting.dest is not None and setting.dest not in flagged:
                rows.append({"key": setting.key, "value": setting.shown,
                             "source": f"{config.path}:{setting.line}"})
    return rows

