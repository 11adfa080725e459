"""Where a broker keeps its data, and the lock that keeps it to one broker.

Shared by ``hutch serve`` (cli.py), the embedded broker and ``hutch ctl`` (which
finds the local broker's cookie there), so none of them imports another for it.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO


def default_data_dir() -> str:
    env = os.environ.get("HUTCH_DATA_DIR")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "hutch")


def lock_data_dir(data_dir: str) -> IO[str]:
    """One broker per data dir: a second one would interleave writes in the same log."""
    os.makedirs(data_dir, exist_ok=True)
    f = open(os.path.join(data_dir, "LOCK"), "a+")  # held (and locked) for the process lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise SystemExit(f"hutch: data dir {data_dir} is in use by another hutch process") from None
    return f
