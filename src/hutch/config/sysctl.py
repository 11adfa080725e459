"""The rabbitmq.conf ("sysctl", cuttlefish) file format: ``key = value`` lines.

What RabbitMQ's cuttlefish accepts, and so what this parser accepts:

* ``key = value`` with optional blanks around ``=``; a key is dot-separated segments
  of letters, digits, ``_`` and ``-`` (``log.file.rotation.size``, ``listeners.tcp.1``,
  ``loopback_users.my-user``); ``\\.`` puts a literal dot into a segment.
* ``#`` starts a comment, on a line of its own or after a value; a value that must
  contain ``#`` (a password) is written in single quotes: ``default_pass = 'a#b'``.
* Blank lines; ``\\r\\n`` line ends; a UTF-8 byte-order mark at the start.

A line that is none of these is an error naming the file and line, as cuttlefish
refuses such a file.  A key set twice keeps its last value (cuttlefish does the same)
and is reported, because it is nearly always an editing mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One segment: word characters and '-', or an escaped dot.
_KEY = r"(?:[A-Za-z0-9_\-]|\\\.)+(?:\.(?:[A-Za-z0-9_\-]|\\\.)+)*"
_LINE = re.compile(rf"^[ \t]*(?P<key>{_KEY})[ \t]*=[ \t]*(?P<rest>.*)$")


@dataclass(frozen=True)
class Entry:
    """One setting: its key (escaped dots kept as ``\\.``), value text and line number."""

    key: str
    value: str
    line: int


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.message = message


def _value(rest: str, path: str, number: int) -> str:
    rest = rest.strip(" \t")
    if rest.startswith("'"):
        end = rest.find("'", 1)
        if end < 0:
            raise ConfigError(path, number, "a quoted value has no closing quote (')")
        tail = rest[end + 1:].strip(" \t")
        if tail and not tail.startswith("#"):
            raise ConfigError(path, number, f"unexpected text after the quoted value: {tail!r}")
        return rest[1:end]
    value = rest.split("#", 1)[0].strip(" \t")
    if not value:
        raise ConfigError(path, number, "the setting has no value (write key = value)")
    return value


def parse(text: str, path: str = "<config>") -> list[Entry]:
    """The settings of a file's text, in file order (a key set twice appears twice)."""
    entries: list[Entry] = []
    for number, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        stripped = raw.strip(" \t\r")
        if not stripped or stripped.startswith("#"):
            continue
        m = _LINE.match(raw.rstrip("\r"))
        if m is None and stripped.split(None, 1)[0] == "include":
            raise ConfigError(path, number, "include is not supported: put the settings in "
                                            "one file")
        if m is None:
            if "=" not in stripped:
                raise ConfigError(path, number, f"expected 'key = value', got {stripped!r}")
            raise ConfigError(path, number, f"invalid key {stripped.split('=', 1)[0].strip()!r}: "
                                            f"letters, digits, '_' and '-' separated by dots")
        entries.append(Entry(m.group("key"), _value(m.group("rest"), path, number), number))
    return entries
