"""The store's only door to the disk.

Every write, fsync, rename and directory sync goes through one ``Files``
object, so crash tests can substitute one that remembers what each file held
at its last fsync and cut the files back to that on a simulated power loss
(``tests/crash/``).  ``HUTCH_STORE_FILES=module:Class`` selects another
implementation in a ``hutch serve`` subprocess; it exists for those tests.
"""

from __future__ import annotations

import importlib
import os

IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class Files:
    def open_append(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

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

    def close(self, fd: int) -> None:
        os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        with open(path, "r+b") as f:
            f.truncate(size)
            os.fsync(f.fileno())

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

    def write_file_atomically(self, path: str, data: bytes) -> None:
        """temp file + fsync + rename + directory fsync: all or nothing, even on power loss."""
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.write(fd, data)
            self.fsync(fd)
        finally:
            os.close(fd)
        self.replace(tmp, path)
        self.fsync_dir(os.path.dirname(path) or ".")


def files_from_env() -> Files:
    spec = os.environ.get("HUTCH_STORE_FILES")
    if not spec:
        return Files()
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)()
