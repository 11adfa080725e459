"""Logging for ``hutch serve``: RabbitMQ 4.x's outputs, levels, line shapes and rotation.

Two outputs, as RabbitMQ's ``log.console`` and ``log.file``, each with its own level and
formatter:

* text lines in RabbitMQ 4.x's shape (rabbit_logger_text_fmt's default prefix
  ``time [level] pid``): ``2026-12-02 10:00:00.123456+00:00 [info] <hutch.broker> msg``.
  The time is RFC 3339 with a space, microseconds and the local offset, the level is
  lower-case, and where RabbitMQ puts the Erlang process id between ``<>`` Hutch puts
  the logger's name, so log shippers' patterns for RabbitMQ (``%{TIMESTAMP_ISO8601}
  \\[%{LOGLEVEL}\\] \\<%{DATA:pid}\\> %{GREEDYDATA}``) parse Hutch's lines too.  Like
  RabbitMQ, every line of a multi-line message (a traceback) carries the prefix, so
  ``grep '\\[error\\]'`` finds all of it.
* JSON, one object a line (rabbit_logger_json_fmt): ``time``, ``level``, ``msg``, and
  ``domain`` (RabbitMQ: ``rabbitmq.connection``...; here the logger's name), plus
  ``file`` and ``line`` as RabbitMQ's metadata, and ``exception`` for a traceback.

Size rotation uses the standard library's RotatingFileHandler with RabbitMQ's names
(Erlang logger_std_h's): the file being written keeps its name, the newest archive is
``FILE.0``, older ones ``FILE.1`` ... ``FILE.<count-1>``.  A count of 0 truncates the
file when it is full, as logger_std_h does.

Without rotation the file is watched as RabbitMQ's handler does (``file_check = 0``):
moved away or deleted (logrotate), it is created anew at the next line.
``reopen_logs()`` closes and reopens the log file at once (SIGHUP: ``ExecReload``).
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import os
import sys
from dataclasses import dataclass
from typing import Any, TextIO

# RabbitMQ's levels (Erlang logger's syslog ones) on Python's scale; Hutch itself logs
# only debug/info/warning/error/critical, the others are thresholds an operator may set.
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": 25,
          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL,
          "alert": 60, "emergency": 70, "none": 1000}
FORMATTERS = ("plaintext", "json")

# An error text may quote a routing key or exchange name that is not UTF-8
# (codec.decode_shortstr): write it escaped, as stderr does, rather than fail.
ERRORS = "backslashreplace"


def level_name(levelno: int) -> str:
    for name, no in LEVELS.items():
        if no == levelno:
            return name
    return logging.getLevelName(levelno).lower()


def rfc3339(created: float) -> str:
    """RabbitMQ's default time format: ``2026-12-02 10:00:00.123456+01:00`` (local)."""
    return datetime.datetime.fromtimestamp(created).astimezone().isoformat(
        sep=" ", timespec="microseconds")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{rfc3339(record.created)} [{level_name(record.levelno)}] <{record.name}> "
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return "\n".join((prefix + line).rstrip() for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"time": rfc3339(record.created),
                               "level": level_name(record.levelno),
                               "msg": record.getMessage(),
                               "domain": record.name,
                               "file": record.filename, "line": record.lineno}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        # ensure_ascii=False: UTF-8 names stay readable; the stream escapes what is not.
        return json.dumps(doc, ensure_ascii=False)


def formatter(name: str) -> logging.Formatter:
    return JsonFormatter() if name == "json" else TextFormatter()


def archive_name(default_name: str) -> str:
    """RotatingFileHandler numbers archives from .1; logger_std_h (RabbitMQ) from .0."""
    base, dot, number = default_name.rpartition(".")
    if dot and number.isdigit():
        return f"{base}.{int(number) - 1}"
    return default_name


class RotatingFile(logging.handlers.RotatingFileHandler):
    """Size rotation with RabbitMQ's archive names, and ``count = 0`` truncating (the
    stdlib handler never rotates without a backup count; logger_std_h empties the file)."""

    def __init__(self, path: str, size: int, count: int) -> None:
        super().__init__(path, maxBytes=size, backupCount=count, encoding="utf-8",
                         errors=ERRORS)
        self.namer = archive_name

    def doRollover(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.backupCount > 0:
            super().doRollover()
            return
        if self.stream:
            self.stream.close()
        self.stream = open(self.baseFilename, "w", encoding="utf-8", errors=ERRORS)


@dataclass
class LogSettings:
    """What ``hutch serve``'s log flags and config keys say (cli.py fills it)."""

    level: str = "info"                  # --log-level: the default of both outputs
    console: bool = True                 # log.console
    console_level: str | None = None     # log.console.level
    console_formatter: str = "plaintext"  # log.console.formatter
    console_stream: str = "stderr"       # log.console.stdio
    file: str | None = None              # log.file (None or "false": no file)
    file_level: str | None = None        # log.file.level
    file_formatter: str = "plaintext"    # log.file.formatter
    rotation_size: int = 0               # log.file.rotation.size (bytes; 0: never)
    rotation_count: int | None = None    # log.file.rotation.count
    dir: str | None = None               # log.dir: where a relative log.file goes

    def file_path(self) -> str | None:
        if not self.file or self.file == "false":
            return None
        if self.dir and not os.path.isabs(self.file):
            return os.path.join(self.dir, self.file)
        return self.file


# The file handler reopen_logs() replaces; module state, as the logging tree is.
_file_handler: logging.Handler | None = None
_file_settings: LogSettings | None = None


def _open_file(settings: LogSettings, path: str) -> logging.Handler:
    handler: logging.Handler
    # RabbitMQ's handler creates the log file's directory (filelib:ensure_dir).
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if settings.rotation_size > 0:
        # Without a count RabbitMQ keeps no archive (rabbit_logger_std_h's max_no_files
        # defaults to 0): the full file is emptied.
        handler = RotatingFile(path, settings.rotation_size, settings.rotation_count or 0)
    else:
        # Like RabbitMQ's handler (file_check = 0), notice before each line that
        # logrotate moved the file away and start a new one: one stat() per line, and
        # log lines are per connection, never per message.
        handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8", errors=ERRORS)
    handler.setLevel(LEVELS[settings.file_level or settings.level])
    handler.setFormatter(formatter(settings.file_formatter))
    return handler


def setup_logging(settings: LogSettings) -> None:
    """Install the outputs on the root logger.  Raises OSError if the file cannot be
    opened (the caller turns it into one line and refuses to start)."""
    global _file_handler, _file_settings
    handlers: list[logging.Handler] = []
    if settings.console:
        stream: TextIO = sys.stdout if settings.console_stream == "stdout" else sys.stderr
        console = logging.StreamHandler(stream)
        console.setLevel(LEVELS[settings.console_level or settings.level])
        console.setFormatter(formatter(settings.console_formatter))
        handlers.append(console)
    path = settings.file_path()
    _file_handler = _open_file(settings, path) if path else None
    _file_settings = settings
    if _file_handler is not None:
        handlers.append(_file_handler)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for h in handlers:
        root.addHandler(h)
    # The root passes everything any output wants; each handler filters its own level.
    root.setLevel(min((h.level for h in handlers), default=LEVELS["none"]))


def reopen_logs() -> bool:
    """Close the log file and open it again at its configured path (a new file if
    logrotate moved the old one away).  False if there is no file or it cannot be
    opened (then the old handler stays, still writing to the moved file)."""
    global _file_handler
    settings, old = _file_settings, _file_handler
    path = settings.file_path() if settings is not None else None
    if settings is None or old is None or path is None:
        return False
    try:
        new = _open_file(settings, path)
    except OSError as exc:
        logging.getLogger("hutch").error("cannot reopen log file %s: %s", path,
                                         exc.strerror or exc)
        return False
    root = logging.getLogger()
    root.addHandler(new)
    root.removeHandler(old)
    old.close()
    _file_handler = new
    logging.getLogger("hutch").info("reopened log file %s", path)
    return True


def log_files() -> list[str]:
    """The outputs, for /api/nodes' ``log_files`` and ``hutch ctl status``: the file's
    absolute path, and ``<stderr>`` / ``<stdout>`` for the console (RabbitMQ's
    log_location says ``<stdout>``)."""
    settings = _file_settings
    if settings is None:
        return []
    out = [f"<{settings.console_stream}>"] if settings.console else []
    path = settings.file_path()
    if path and _file_handler is not None:
        out.insert(0, os.path.abspath(path))
    return out
