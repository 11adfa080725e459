"""Reading messages back from segment files, apart from the log's state.

``MessageLog._locate`` resolves entries to (id, offset, segment, fd) on the event
loop, where segments and fds come and go; ``read_located`` then only preads and
decodes, so it may run on the log's reader thread (``read_entries_soon``).
"""

from __future__ import annotations

import logging

from . import records
from .files import Files
from .recovery import Segment

log = logging.getLogger("hutch.store")

READ_CHUNK = 256 * 1024

# An entry resolved for reading: message id, offset, its segment, a read fd of it.
Located = tuple[int, int, Segment, int]


def read_located(files: Files, located: list[Located | None]) -> list[records.Publish | None]:
    """The reading half of ``read_entries``: only preads and decoding, no log state,
    so that it may run on the reader thread."""
    out: list[records.Publish | None] = []
    chunk = b""
    chunk_seg: Segment | None = None
    chunk_off = 0
    for loc in located:
        if loc is None:
            out.append(None)
            continue
        mid, off, seg, fd = loc
        rec = None
        try:
            if seg is chunk_seg and chunk_off <= off < chunk_off + len(chunk):
                rec = records.read_record(chunk, off - chunk_off)
            if rec is None:
                chunk = files.pread(fd, READ_CHUNK, off)
                chunk_seg, chunk_off = seg, off
                rec = records.read_record(chunk, 0)
                # A record bigger than the chunk (a chunk too short to hold even the
                # record's head means the file was cut under the entry: lost).
                if rec is None and len(chunk) >= records.HEAD_SIZE:
                    hdr = records.read_length(chunk, 0)
                    chunk = files.pread(fd, hdr, off)
                    rec = records.read_record(chunk, 0)
        except records.CorruptRecordError as exc:  # damaged on disk since it was written
            log.error("message store: message %d at %s:%d is damaged: %s", mid, seg.path, off, exc)
            out.append(None)
            chunk_seg = None
            continue
        if rec is None or rec[0] != records.PUBLISH or rec[1] != mid:
            log.error("message store: message %d not found at %s:%d", mid, seg.path, off)
            out.append(None)
            continue
        out.append(records.decode_publish(mid, chunk, rec[2], rec[3]))
    return out
