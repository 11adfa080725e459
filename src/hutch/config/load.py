"""Read a configuration file into values for ``hutch serve``'s flags.

``cli.py`` makes the values the defaults of the serve parser and parses the command
line again, so a flag given there wins over the file (RabbitMQ has no flags; this is
Hutch's order: built-in default < file < flag).  ``Loaded`` also keeps where each value
came from, for ``hutch ctl environment``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .keys import Key, find_key, unsupported_reason
from .sysctl import ConfigError, Entry, parse

SECRET_SHOWN = "********"


@dataclass
class Setting:
    """One key of the file as applied: the key, its value as shown, its line."""

    key: str
    shown: str
    line: int
    dest: str | None


@dataclass
class Loaded:
    path: str
    # serve's argparse dest -> value
    values: dict[str, Any] = field(default_factory=dict)
    # dest -> "path:line" of the key that set it (the last one, for pattern keys)
    origins: dict[str, str] = field(default_factory=dict)
    settings: list[Setting] = field(default_factory=list)
    # One line per unsupported key, for the log at start.
    warnings: list[str] = field(default_factory=list)


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read the configuration file: "
                                      f"{exc.strerror or exc}") from None


def load(path: str) -> Loaded:
    """The file's settings, checked.  Raises ``ConfigError`` (``path:line: message``) for
    a line that is not ``key = value``, a key that RabbitMQ does not have either, or a
    value its key does not accept: the broker must not start half-configured."""
    return load_text(read(path), path)


def load_text(text: str, path: str = "<config>") -> Loaded:
    loaded = Loaded(path)
    entries = parse(text, path)
    seen: dict[str, int] = {}
    gathered: dict[Key, list[tuple[str, Any]]] = {}
    last_line: dict[Key, int] = {}
    for entry in entries:
        key = entry.key.replace("\\.", ".") if "\\." in entry.key else entry.key
        if key in seen:
            loaded.warnings.append(f"{path}:{entry.line}: {key} is set again (line {seen[key]} "
                                   f"is overridden)")
        seen[key] = entry.line
        found = find_key(entry.key)
        if found is None:
            _not_hutch(loaded, entry, key)
            continue
        spec, suffix = found
        try:
            value = spec.convert(entry.value)
        except ValueError as exc:
            raise ConfigError(path, entry.line, f"{key}: {exc}") from None
        shown = SECRET_SHOWN if spec.secret else entry.value
        loaded.settings.append(Setting(key, shown, entry.line, spec.dest))
        if spec.dest is None:
            continue
        loaded.origins[spec.dest] = f"{path}:{entry.line}"
        if spec.is_pattern:
            items = gathered.setdefault(spec, [])
            # A pattern key set twice keeps its last value, in the first one's place.
            items[:] = [(s, v) for s, v in items if s != suffix]
            items.append((suffix, value))
            last_line[spec] = entry.line
        else:
            loaded.values[spec.dest] = value
    for spec, items in gathered.items():
        assert spec.dest is not None
        try:
            loaded.values[spec.dest] = spec.combine(items)
        except ValueError as exc:
            raise ConfigError(path, last_line[spec], f"{spec.pattern}: {exc}") from None
    return loaded


def _not_hutch(loaded: Loaded, entry: Entry, key: str) -> None:
    reason = unsupported_reason(entry.key)
    if reason is None:
        # cuttlefish's words, so an operator searching for them finds RabbitMQ's docs.
        raise ConfigError(loaded.path, entry.line,
                          f"Conf file attempted to set unknown variable: {key}")
    loaded.warnings.append(f"{loaded.path}:{entry.line}: {key} is not supported and has no "
                           f"effect: {reason}")
