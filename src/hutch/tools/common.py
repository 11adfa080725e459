"""What publish and work share: the broker URL, connecting with clear errors, exit codes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

# sysexits(3), as ``hutch ctl`` (and rabbitmqctl) use them, so scripts can tell
# "the broker is down" from "you typed it wrong" from "the broker said no".
EX_OK, EX_FAILED, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE, EX_NOPERM = 0, 1, 64, 65, 69, 77
EX_INTERRUPTED = 130  # the work was abandoned by a second signal (like a shell's 128+SIGINT)

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"


def default_url() -> str:
    # AMQP_URL is what the examples/ programs read; keep one habit for both.
    return os.environ.get("AMQP_URL") or DEFAULT_URL


class ToolError(Exception):
    """A failure the user should read as one line, with the exit code to leave with."""

    def __init__(self, message: str, code: int = EX_FAILED) -> None:
        super().__init__(message)
        self.code = code


def redact(url: str) -> str:
    """The URL without its password, for messages that end up in logs."""
    try:
        import yarl

        u = yarl.URL(url)
        return str(u.with_password("***")) if u.password else url
    except Exception:
        return url


async def connect(url: str, timeout: float = 10.0) -> Any:
    """Connect with aio-pika; turn its many exceptions into one clear ``ToolError``."""
    import aio_pika
    from aio_pika import exceptions as ex

    # The libraries log what we are about to report as one clear line; without a
    # handler Python would print their records too ("error when creating transport").
    for name in ("aiormq", "aio_pika"):
        if not logging.getLogger(name).handlers:
            logging.getLogger(name).addHandler(logging.NullHandler())
    try:
        return await aio_pika.connect(url, timeout=timeout)
    except ex.ProbableAuthenticationError as exc:
        raise ToolError(f"the broker at {redact(url)} refused the login: {_reason(exc)} "
                        "(check the user and password in --url)", EX_NOPERM) from None
    except ex.AMQPConnectionError as exc:
        text = _reason(exc)
        code = EX_NOPERM if "ACCESS_REFUSED" in text or "NOT_ALLOWED" in text else EX_UNAVAILABLE
        raise ToolError(f"cannot connect to {redact(url)}: {text}", code) from None
    except (TimeoutError, OSError) as exc:
        raise ToolError(f"cannot connect to {redact(url)}: {exc or 'timed out'} "
                        "(is 'hutch serve' or RabbitMQ running there?)", EX_UNAVAILABLE) from None
    except ValueError as exc:
        raise ToolError(f"bad --url {url!r}: {exc}", EX_USAGE) from None


def _reason(exc: BaseException) -> str:
    args = [a for a in exc.args if a]
    return " ".join(str(a) for a in args) or type(exc).__name__


def fail(message: str, code: int) -> int:
    print(f"hutch: {message}", file=sys.stderr, flush=True)
    return code


def show(body: bytes, limit: int = 200) -> str:
    """The seeds print ``%r`` of the body; keep that, but cut very long bodies."""
    text = body.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def run(coro: Any) -> Any:
    """uvloop when installed (as ``hutch serve``), plain asyncio otherwise."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)
