"""Worker subprocesses for the framework tests (``celery worker``, ``dramatiq``,
``faststream run``) and the app-module plumbing around them.

A test writes its app as a module into a temp dir (``write_app``), imports the same
module in the test process to send work (``import_app``), and starts workers through
``Workers.spawn`` (the ``workers`` / ``module_workers`` fixtures in conftest.py).  Every
worker's output goes to a log file that failures print; every worker is killed at
teardown, whatever happened.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One worker subprocess; stdout and stderr go to ``log_path``."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.argv, self.cwd, self.env, self.log_path = argv, cwd, env, log_path
        self._log = log_path.open("ab")
        # A process group of its own: kill() reaches the worker's pool children too.
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, needle: str, timeout: float = 20.0) -> None:
        wait_until(lambda: needle in self.output(), timeout, f"{needle!r} in the output", self)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the frameworks' warm shutdown), SIGKILL of the group if that hangs."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the worker and whatever it forked: no goodbye to the broker."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)
        self._log.close()


class Workers:
    """Starts workers in ``directory`` (the app modules' home) and kills them all at close."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Worker] = []
        # False: close() SIGKILLs at once (the broker requeues what they held, as for
        # any lost connection) instead of waiting out each framework's warm shutdown.
        self.graceful = True

    def spawn(self, *args: str, env: dict[str, str] | None = None, name: str = "worker") -> Worker:
        """``python -m ARGS...`` (e.g. ``celery -A app worker``) with the app dir (and the
        worktree, for ``hutch``) on PYTHONPATH."""
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.directory), str(ROOT / "src"), full_env.get("PYTHONPATH")) if p)
        log_path = self.directory / f"{name}-{len(self.started)}.log"
        worker = Worker([sys.executable, "-m", *args], self.directory, full_env, log_path)
        self.started.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.started:
            if self.graceful:
                worker.stop(timeout=5)
            else:
                worker.kill()


def write_app(directory: Path, module: str, source: str) -> Path:
    path = directory / f"{module}.py"
    path.write_text(source)
    return path


def import_app(directory: Path, module: str) -> ModuleType:
    """Import ``directory/module.py`` in the test process (the client side of the app).
    The name must be unique to the test (the module stays in sys.modules until
    ``forget_app``)."""
    sys.path.insert(0, str(directory))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(directory))


def forget_app(module: str) -> None:
    sys.modules.pop(module, None)


def wait_until(done: Callable[[], object], timeout: float, what: str,
               *watch: Worker, interval: float = 0.01) -> None:
    """Poll ``done`` until true; fail with the workers' output on timeout or if one of
    them exits first."""
    deadline = time.monotonic() + timeout
    while not done():
        dead = [w for w in watch if not w.alive()]
        if dead or time.monotonic() > deadline:
            why = "a worker exited" if dead else f"timed out after {timeout}s"
            logs = "\n".join(f"--- {' '.join(w.argv[2:5])} (pid {w.pid}):\n{w.output()[-4000:]}"
                             for w in watch)
            raise AssertionError(f"waiting for {what}: {why}\n{logs}")
        time.sleep(interval)
