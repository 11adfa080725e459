"""The store's only door to the disk.

Every open, write, fsync, truncate, read, rename, delete and directory sync of
the store goes through one ``Files`` object, so crash tests can substitute one
that remembers what each file held at its last fsync and cut the files back to
that on a simulated power loss, or one that fails any single call with ENOSPC
or EIO (``tests/crash/seams.py``).  ``HUTCH_STORE_FILES=module:Class`` selects
another implementation in a ``hutch serve`` subprocess; it exists for those
tests.

The methods are the primitives (one system call each, or a retry loop around
one); the composite operations at the bottom are built only from them, so a
test seam that overrides the primitives reaches every step of the composites
too.
"""

from __future__ import annotations

import importlib
import os

IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class Files:
    # After a write error the log nacks without touching the disk for this long,
    # then tries again (a test seam shortens it).
    retry_after = 2.0

    # -- primitives ------------------------------------------------------------------
    def open_append(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def open_new(self, path: str) -> int:
        """Create ``path`` empty (truncating what an earlier, failed attempt left)."""
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def open_read(self, path: str) -> int:
        return os.open(path, os.O_RDONLY)

    def write(self, fd: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def writev(self, fd: int, buffers: list[bytes]) -> None:
        """Write several buffers with as few system calls as possible (no joining copy)."""
        views = [memoryview(b) for b in buffers if len(b)]
        i = 0
        while i < len(views):
            n = os.writev(fd, views[i : i + IOV_MAX])
            while n:
                if n >= len(views[i]):
                    n -= len(views[i])
                    i += 1
                else:
                    views[i] = views[i][n:]
                    n = 0

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def pread(self, fd: int, n: int, offset: int) -> bytes:
        return os.pread(fd, n, offset)

    def close(self, fd: int) -> None:
        os.close(fd)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.remove(path)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    # -- composites (only primitives below this line) ------------------------------------
    def truncate(self, path: str, size: int) -> None:
        """Cut ``path`` to ``size`` bytes, durably."""
        fd = self.open_append(path)
        try:
            self.ftruncate(fd, size)
            self.fsync(fd)
        finally:
            self.close(fd)

    def write_file_atomically(self, path: str, data: bytes) -> None:
        """temp file + fsync + rename + directory fsync: all or nothing, even on power loss."""
        tmp = path + ".tmp"
        fd = self.open_new(tmp)
        try:
            self.write(fd, data)
            self.fsync(fd)
        finally:
            self.close(fd)
        self.replace(tmp, path)
        self.fsync_dir(os.path.dirname(path) or ".")

    def move_aside(self, path: str, directory: str) -> str:
        """Rename ``path`` into ``directory`` (created if needed), durably in both places."""
        self.makedirs(directory)
        dest = os.path.join(directory, os.path.basename(path))
        self.replace(path, dest)
        self.fsync_dir(directory)
        self.fsync_dir(os.path.dirname(path) or ".")
        return dest


def files_from_env() -> Files:
    spec = os.environ.get("HUTCH_STORE_FILES")
    if not spec:
        return Files()
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)()
