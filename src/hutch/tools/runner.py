"""Running a worker's command for one message: body on stdin, metadata in the environment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from typing import Any

# After --timeout the command gets SIGTERM, and this long to clean up before SIGKILL.
KILL_GRACE = 3.0


def message_env(message: Any, queue: str, attempt: int) -> dict[str, str]:
    """What the command learns about its message.  Headers come one variable each
    (``HUTCH_HEADER_<NAME>``, upper-cased, other characters as ``_``) and all together
    as JSON in ``HUTCH_HEADERS``."""
    env = {
        "HUTCH_MESSAGE_ID": message.message_id or "",
        "HUTCH_REDELIVERED": "1" if message.redelivered else "0",
        "HUTCH_ROUTING_KEY": message.routing_key or "",
        "HUTCH_EXCHANGE": message.exchange or "",
        "HUTCH_QUEUE": queue,
        "HUTCH_ATTEMPT": str(attempt),
        "HUTCH_CONTENT_TYPE": message.content_type or "",
        "HUTCH_CORRELATION_ID": message.correlation_id or "",
    }
    headers = {k: _plain(v) for k, v in (message.headers or {}).items()}
    for key, value in headers.items():
        env["HUTCH_HEADER_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()] = str(value)
    env["HUTCH_HEADERS"] = json.dumps(headers, default=str)
    return env


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value


async def run_command(argv: list[str], body: bytes, env: dict[str, str],
                      timeout: float | None) -> str | None:
    """Run ``argv`` once; ``None`` on exit status 0, else why it failed.

    The command runs in its own session (process group): a Ctrl+C at the terminal
    reaches only the worker, which then lets the command finish instead of having
    the signal kill it mid-task.  If this coroutine is cancelled (the worker
    abandons its work on a second signal) the command is killed too."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, env={**os.environ, **env},
            start_new_session=True)
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        await asyncio.wait_for(proc.communicate(body), timeout)
    except TimeoutError:
        await _kill(proc)
        return f"timed out after {timeout:g}s, killed"
    except BaseException:
        await asyncio.shield(_kill(proc))
        raise
    if proc.returncode == 0:
        return None
    if proc.returncode is not None and proc.returncode < 0:
        return f"killed by signal {signal.Signals(-proc.returncode).name}"
    return f"exit status {proc.returncode}"


async def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM to the command's whole process group, SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), wait)
            return
        except TimeoutError:
            continue
