"""The demo's terminal voice and its child processes (workers, publish, ctl)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import IO

COLOURS = {"title": "1;36", "cmd": "33", "ok": "32", "bad": "1;31", "w1": "35", "w2": "34",
           "w3": "35", "w4": "34", "dim": "2"}


class DemoClaimError(Exception):
    """A claim the demo was about to make turned out false."""


class Narrator:
    def __init__(self, out: IO[str], colour: bool) -> None:
        self.out = out
        self.colour = colour

    def paint(self, text: str, style: str) -> str:
        return f"\x1b[{COLOURS[style]}m{text}\x1b[0m" if self.colour else text

    def line(self, text: str = "", style: str | None = None) -> None:
        print(self.paint(text, style) if style else text, file=self.out, flush=True)

    def step(self, n: int, title: str, story: str) -> None:
        self.line()
        self.line(f"== {n}. {title}", "title")
        for part in story.split("\n"):
            self.line(f"   {part}")

    def command(self, argv: list[str]) -> None:
        self.line("   $ " + " ".join(_quote(a) for a in argv), "cmd")

    def check(self, ok: bool, claim: str) -> None:
        """Every claim is printed only after it is checked; a false one ends the demo."""
        if not ok:
            raise DemoClaimError(claim)  # run_demo prints it
        self.line(f"   checked: {claim}", "ok")


def _quote(arg: str) -> str:
    return repr(arg) if (not arg or any(c in arg for c in " '\"$!*?")) else arg


def hutch_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hutch", *args]


class Child:
    """A ``hutch`` subprocess whose output lines are echoed (prefixed) and kept."""

    def __init__(self, narrator: Narrator, name: str, style: str) -> None:
        self.narrator = narrator
        self.name = name
        self.style = style
        self.lines: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, *args: str, show: list[str] | None = None,
                    stdin: bytes | None = None) -> Child:
        if show != []:
            self.narrator.command(show or ["hutch", *args])
        env = dict(os.environ, PYTHONUNBUFFERED="1", NO_COLOR="1")
        self.proc = await asyncio.create_subprocess_exec(
            *hutch_argv(*args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=env, stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE)
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.narrator.line(f"   {self.name:>9} | {line}", self.style)
            self._changed.set()
        self._changed.set()

    async def wait_for(self, needle: str, count: int = 1, timeout: float = 15.0) -> None:
        async def seen() -> None:
            while sum(needle in line for line in self.lines) < count:
                if self._reader is not None and self._reader.done():
                    raise DemoClaimError(f"{self.name} exited before printing {needle!r}")
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(seen(), timeout)
        except TimeoutError:
            raise DemoClaimError(f"{self.name} did not print {needle!r} within {timeout:g}s") from None

    async def finish(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self, sig: int) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await self.finish()

    def kill_quietly(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def received(self) -> list[str]:
        """Bodies from the worker's ' [x] Received '...'' lines, in order."""
        prefix = " [x] Received '"
        return [line[len(prefix):-1] for line in self.lines if line.startswith(prefix)]
