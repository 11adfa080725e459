"""What the ``hutch perf`` parent and its worker processes share.

Each worker owns one slot of a shared int64 array (its running counters, which the
parent reads for the progress line) and sends one result dict through a queue
when it ends.  ``go`` starts all producers at once, after every consumer is ready;
``stop`` ends everything.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable
from typing import Any

from .client import PerfError

# counter indexes within a worker's slot
SENT, CONFIRMED, NACKED, RETURNED, RECEIVED, READY, DONE = range(7)
SLOT = 8


class Worker:
    def __init__(self, role: str, index: int, counters: Any, stop: Any, go: Any, results: Any) -> None:
        self.role = role
        self.index = index
        self.base = index * SLOT
        self.counters = counters
        self.stop = stop
        self.go = go
        self.results = results

    def set_ready(self) -> None:
        self.counters[self.base + READY] = 1

    def run(self, body: Callable[[], None], extra: Callable[[], dict[str, Any]]) -> None:
        """Run the worker's loop in the child; always report, even on failure."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl+C into ``stop``
        error = None
        try:
            body()
        except PerfError as exc:
            error = str(exc)
        except OSError as exc:
            error = f"connection error: {exc}"
        except Exception:
            error = traceback.format_exc()
        finally:
            self.counters[self.base + DONE] = 1
        result = {"role": self.role, "index": self.index, "error": error}
        result.update(extra())
        self.results.put(result)
