"""``hutch serve``'s operations options: logs, the default user, loopback users,
definitions at boot.  Each has a flag here and a ``rabbitmq.conf`` key (config/keys.py,
``# -- ops --``) with the same converter, so a file and a flag accept the same values.

Values are RabbitMQ 4.x's (rabbit.schema): booleans ``true``/``false``, log levels
``debug`` ... ``emergency`` and ``none``, formatters ``plaintext``/``json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..broker.defaults import DefaultData
from ..broker.permissions import validate_regex
from .logs import FORMATTERS, LEVELS, LogSettings


class OptionError(argparse.ArgumentTypeError, ValueError):
    """A bad value: argparse prints the text, the config loader adds file:line."""


def boolean(text: str) -> bool:
    """cuttlefish's boolean datatype: ``true``/``false`` (and ``on``/``off``)."""
    t = text.strip().lower()
    if t in ("true", "on"):
        return True
    if t in ("false", "off"):
        return False
    raise OptionError(f"invalid boolean {text!r}: true or false")


def log_level(text: str) -> str:
    t = text.strip().lower()
    if t not in LEVELS:
        raise OptionError(f"invalid log level {text!r}: one of {', '.join(LEVELS)}")
    return t


def log_formatter(text: str) -> str:
    t = text.strip().lower()
    if t not in FORMATTERS:
        raise OptionError(f"invalid log formatter {text!r}: plaintext or json")
    return t


def log_stdio(text: str) -> str:
    t = text.strip().lower()
    if t not in ("stdout", "stderr"):
        raise OptionError(f"invalid log.console.stdio {text!r}: stdout or stderr")
    return t


def log_file(text: str) -> str | None:
    """A path, or ``false``: no file (RabbitMQ's ``log.file = false``)."""
    t = text.strip()
    if not t:
        raise OptionError("empty log file path (use false for no file)")
    return None if t.lower() == "false" else t


def non_negative(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise OptionError(f"invalid number {text!r}: a non-negative integer")
    return value


def name_list(text: str) -> list[str]:
    """Comma-separated names; ``none`` (RabbitMQ's ``loopback_users = none``): empty."""
    t = text.strip()
    if t.lower() == "none":
        return []
    return [n.strip() for n in t.split(",") if n.strip()]


def regex(text: str) -> str:
    error = validate_regex(text)
    if error:
        raise OptionError(error)
    return text


def non_empty(text: str) -> str:
    if not text:
        raise OptionError("must not be empty")
    return text


def add_ops_arguments(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("logs (RabbitMQ's log.* keys)")
    g.add_argument("--log-level", type=log_level, default="info",
                   help="default level of both outputs: debug, info (default), notice, "
                        "warning, error, critical, alert, emergency, none")
    g.add_argument("--log-file", type=log_file, default=None,
                   help="also write the log to this file (log.file; false: no file)")
    g.add_argument("--log-file-level", type=log_level, default=None,
                   help="level of the file output (log.file.level; default: --log-level)")
    g.add_argument("--log-file-formatter", type=log_formatter, default="plaintext",
                   help="plaintext (default) or json (log.file.formatter)")
    g.add_argument("--log-file-rotation-size", type=non_negative, default=0, metavar="BYTES",
                   help="rotate the file when it would grow past this size "
                        "(log.file.rotation.size; default 0: never)")
    g.add_argument("--log-file-rotation-count", type=non_negative, default=None, metavar="N",
                   help="archives kept, FILE.0 (newest) to FILE.<N-1> "
                        "(log.file.rotation.count; default 0: the full file is emptied)")
    g.add_argument("--log-dir", default=None,
                   help="directory a relative --log-file is in (log.dir)")
    g.add_argument("--log-console", type=boolean, default=True, metavar="true|false",
                   help="log to the console (log.console; default true)")
    g.add_argument("--log-console-level", type=log_level, default=None,
                   help="level of the console output (log.console.level; default: --log-level)")
    g.add_argument("--log-console-formatter", type=log_formatter, default="plaintext",
                   help="plaintext (default) or json (log.console.formatter)")
    g.add_argument("--log-console-stdio", type=log_stdio, default="stderr",
                   help="stderr (default; stdout carries the ready line) or stdout "
                        "(log.console.stdio)")
    g = s.add_argument_group("first start and access (default_user ..., loopback_users, "
                             "load_definitions)")
    g.add_argument("--default-user", type=non_empty, default="guest",
                   help="user created at the first start (default_user; default guest)")
    g.add_argument("--default-pass", type=password, default="guest",
                   help="its password (default_pass; default guest)")
    g.add_argument("--default-vhost", type=non_empty, default="/",
                   help="virtual host created at the first start (default_vhost; default /)")
    for what in ("configure", "write", "read"):
        g.add_argument(f"--default-permissions-{what}", type=regex, default=".*",
                       metavar="REGEX",
                       help=f"the default user's {what} permission (default_permissions.{what}; "
                            "default .*)")
    g.add_argument("--default-user-tags", type=name_list, default=["administrator"],
                   metavar="TAGS", help="comma-separated tags of the default user "
                                        "(default_user_tags.*; default administrator)")
    g.add_argument("--loopback-users", type=name_list, default=["guest"], metavar="USERS",
                   help="comma-separated users who may only connect from loopback, or none "
                        "(loopback_users.USER; default guest)")
    # loopback_users = none in a file: nobody is loopback-only, whatever loopback_users.USER
    # says (a dest of its own: the file's pattern keys are combined after it).  On the
    # command line --loopback-users none says the same; this flag exists for the file.
    g.add_argument("--loopback-users-none", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--load-definitions", default=None, metavar="PATH",
                   help="import this definitions file, or every file of this directory, "
                        "at boot (load_definitions); the default user is then not created")
    g.add_argument("--definitions-skip-if-unchanged", type=boolean, default=False,
                   metavar="true|false",
                   help="import --load-definitions only if it changed since the last import "
                        "(definitions.skip_if_unchanged; default false: at every boot)")


def log_settings(args: Any) -> LogSettings:
    return LogSettings(level=args.log_level, console=args.log_console,
                       console_level=args.log_console_level,
                       console_formatter=args.log_console_formatter,
                       console_stream=args.log_console_stdio,
                       file=args.log_file, file_level=args.log_file_level,
                       file_formatter=args.log_file_formatter,
                       rotation_size=args.log_file_rotation_size,
                       rotation_count=args.log_file_rotation_count, dir=args.log_dir)


def settle(args: Any) -> None:
    """Fill in what one setting takes from another, so ``hutch ctl environment`` shows
    the values in effect: each output's level (``--log-level`` unless its own is
    given), and no loopback-only user after ``loopback_users = none``."""
    args.log_file_level = args.log_file_level or args.log_level
    args.log_console_level = args.log_console_level or args.log_level
    if args.loopback_users_none:
        args.loopback_users = []


def loopback_users(args: Any) -> set[str]:
    return set() if args.loopback_users_none else set(args.loopback_users)


def default_data(args: Any) -> DefaultData | None:
    """What a blank node is seeded with; None when definitions are loaded at boot
    (RabbitMQ then creates neither the default user nor the default vhost)."""
    if args.load_definitions:
        return None
    return DefaultData(user=args.default_user, password=args.default_pass,
                       vhost=args.default_vhost,
                       configure=args.default_permissions_configure,
                       write=args.default_permissions_write,
                       read=args.default_permissions_read,
                       tags=tuple(args.default_user_tags))


def password(text: str) -> str:
    """``default_pass``; RabbitMQ's ``encrypted:`` values need its config_entry_decoder."""
    if text.startswith("encrypted:"):
        raise OptionError("encrypted values are not supported by Hutch: give the password "
                          "itself (and keep the file readable by the broker's user only)")
    return text


def only_none(text: str) -> bool:
    """``loopback_users = none`` (rabbit.schema's only value for the bare key)."""
    if text.strip() != "none":
        raise OptionError(f"invalid value {text!r}: none (or set loopback_users.USER = "
                          "true|false)")
    return True


def local_backend(text: str) -> None:
    """``definitions.import_backend``: Hutch reads local files only."""
    if text not in ("local_filesystem", "local", "rabbit_definitions_import_local_filesystem",
                    "rabbitmq_definitions_import_local_filesystem"):
        raise OptionError(f"definitions.import_backend {text!r} is not supported: Hutch "
                          "imports local files only (local_filesystem)")
