"""Test-only replacements for the store's ``Files`` seam, loaded inside a
``hutch serve`` subprocess through ``HUTCH_STORE_FILES=tests.crash.seams:Name``.

``JournalFiles`` keeps a journal of what is durable: after every fsync the
file's size, after every directory fsync the directory's listing (name ->
inode), and before a rename the content of the file it replaces.
``simulate_power_loss`` then turns the data dir into what a power cut at the
moment of a kill -9 would have left: files cut back to their last fsync'd
size (plus, to model partial writeback, a random prefix of what was written
after it), files whose directory entry was never synced deleted, and renames
that were not yet synced undone.

``FaultFiles`` makes writes and fsyncs fail with the errno named in the file
``$HUTCH_FAULT_FILE`` while that file exists (ENOSPC, EIO).
"""

from __future__ import annotations

import errno
import json
import os
import random
import threading

from hutch.store.files import Files


class JournalFiles(Files):
    def __init__(self) -> None:
        self.journal = os.environ["HUTCH_POWERLOSS_JOURNAL"]
        self.paths: dict[int, str] = {}

    def _note(self, entry: dict) -> None:
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (json.dumps(entry) + "\n").encode())
        finally:
            os.close(fd)

    def open_append(self, path: str) -> int:
        fd = super().open_append(path)
        self.paths[fd] = os.path.abspath(path)
        return fd

    def close(self, fd: int) -> None:
        self.paths.pop(fd, None)
        super().close(fd)

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        st = os.fstat(fd)
        self._note({"op": "fsync", "ino": st.st_ino, "size": st.st_size})

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        path = os.path.abspath(path)
        listing = {n: os.stat(os.path.join(path, n)).st_ino for n in os.listdir(path)
                   if os.path.isfile(os.path.join(path, n))}
        self._note({"op": "dirsync", "dir": path, "listing": listing})

    def replace(self, src: str, dst: str) -> None:
        if os.path.exists(dst):
            with open(dst, "rb") as f:
                self._note({"op": "old", "ino": os.stat(dst).st_ino, "data": f.read().hex()})
        super().replace(src, dst)

    def truncate(self, path: str, size: int) -> None:
        super().truncate(path, size)
        self._note({"op": "fsync", "ino": os.stat(path).st_ino, "size": size})


def simulate_power_loss(journal: str, dirs: list[str], rng: random.Random) -> None:
    """Rewind ``dirs`` to what survives a power cut, per the journal (see module doc).

    The unsynced tail of a file is cut at a random point: nothing of it, a clean
    prefix, or a prefix whose last page is torn (zero-filled, as a page that was
    allocated but never written back reads after a crash).  Afterwards the journal
    is started anew with what is on disk now as its durable baseline: a restarted
    broker appends to files that are durable, and the next cut must keep them.
    """
    synced_size: dict[int, int] = {}
    old_data: dict[int, bytes] = {}
    listings: dict[str, dict[str, int]] = {}
    if os.path.exists(journal):
        with open(journal) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue  # a torn last line of the journal itself
                if e["op"] == "fsync":
                    synced_size[e["ino"]] = e["size"]
                elif e["op"] == "dirsync":
                    listings[e["dir"]] = e["listing"]
                elif e["op"] == "old":
                    old_data.setdefault(e["ino"], bytes.fromhex(e["data"]))
    baseline: list[dict] = []
    for d in dirs:
        d = os.path.abspath(d)
        if not os.path.isdir(d):
            continue
        durable = listings.get(d, {})
        present = {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d)
                   if os.path.isfile(os.path.join(d, n))}
        for name, ino in present.items():
            path = os.path.join(d, name)
            if name not in durable:
                os.remove(path)  # its directory entry never reached the disk
                continue
            if durable[name] != ino:
                # Renamed over after the last directory sync: the old file is back.
                with open(path, "wb") as f:
                    f.write(old_data.get(durable[name], b""))
                continue
            size = os.path.getsize(path)
            synced = keep = synced_size.get(ino, 0)
            mode = rng.choice(("none", "prefix", "torn"))
            if size > keep and mode != "none":
                keep += rng.randint(1, size - keep)  # part of the unsynced tail made it
            with open(path, "r+b") as f:
                f.truncate(keep)
                if mode == "torn" and keep > synced:
                    start = max(synced, keep - 4096)
                    f.seek(start)
                    f.write(bytes(keep - start))
        listing = {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d)
                   if os.path.isfile(os.path.join(d, n))}
        baseline.append({"op": "dirsync", "dir": d, "listing": listing})
        for name, ino in listing.items():
            baseline.append({"op": "fsync", "ino": ino,
                             "size": os.path.getsize(os.path.join(d, name))})
    with open(journal, "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in baseline)


class FaultFiles(Files):
    """Fails calls of the seam while ``$HUTCH_FAULT_FILE`` exists.

    The file holds either an errno name (``ENOSPC``: every write, writev and fsync
    fails, like a full disk) or a JSON object choosing the calls::

        {"errno": "EIO", "ops": ["fsync_dir"], "skip": 0, "times": 1}

    ``ops``: the seam methods that fail (default: every primitive but ``close``);
    ``skip``: let that many matching calls through first; ``times``: fail that many
    and then let calls through again (default: until the file is removed);
    ``short``: a failing write or writev first writes part of its bytes (a real
    full disk does that).  Each
    failure is appended to ``$HUTCH_FAULT_FILE.hits`` (one op name a line), so a
    test can check that its fault was really reached.  Counting restarts whenever
    the file's content changes.
    """

    retry_after = 0.1  # the log's pause before retrying a failed disk (2 s in production)

    ALL = ("open_append", "open_new", "open_read", "write", "writev", "fsync", "ftruncate", "size",
           "pread", "fsync_dir", "replace", "remove", "read", "listdir", "makedirs")

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the writer threads and the loop all call in
        self._text: str | None = None
        self._seen = 0
        self._failed = 0
        self._spec: dict = {}

    def _check(self, op: str) -> None:
        with self._lock:
            self._check_locked(op)

    def _check_locked(self, op: str) -> None:
        marker = os.environ.get("HUTCH_FAULT_FILE")
        if not marker:
            return
        try:
            with open(marker) as f:
                text = f.read()
        except FileNotFoundError:
            self._text = None
            return
        if text != self._text:
            self._text, self._seen, self._failed = text, 0, 0
            text = text.strip() or "EIO"
            if text.startswith("{"):
                self._spec = json.loads(text)
            else:
                self._spec = {"errno": text, "ops": ["write", "writev", "fsync"]}
        spec = self._spec
        if op not in (spec.get("ops") or self.ALL):
            return
        self._seen += 1
        if self._seen <= spec.get("skip", 0):
            return
        times = spec.get("times")
        if times is not None and self._failed >= times:
            return
        self._failed += 1
        with open(marker + ".hits", "a") as f:
            f.write(op + "\n")
        code = getattr(errno, spec.get("errno", "EIO"))
        raise OSError(code, os.strerror(code))


def _faulty(name: str):
    def method(self, *args, **kwargs):
        try:
            self._check(name)
        except OSError:
            if name in ("write", "writev") and self._spec.get("short"):
                fd, data = args[0], args[1]
                raw = b"".join(map(bytes, data)) if name == "writev" else bytes(data)
                os.write(fd, raw[: len(raw) // 2])
            raise
        return getattr(Files, name)(self, *args, **kwargs)
    method.__name__ = name
    return method


for _name in FaultFiles.ALL:
    if hasattr(Files, _name):  # (so the seam also runs against older code, to show a bug)
        setattr(FaultFiles, _name, _faulty(_name))


class SlowDefinitionsFiles(Files):
    """Takes a second to write the definitions file: replies that wait for it are held
    long enough for a test to see what overtakes them (server/replies.py)."""

    def write_file_atomically(self, path: str, data: bytes) -> None:
        if os.path.basename(path) == "definitions.json":
            import time

            time.sleep(1.0)
        super().write_file_atomically(path, data)
