"""The clean-shutdown snapshot: what recovery would rebuild, written down at stop.

Scanning the log costs about two microseconds a record, so a restart with a
million queued messages would spend two seconds re-reading what the broker knew
when it stopped.  Like RabbitMQ's clean-shutdown recovery terms, a clean stop
writes every durable queue's live entries, every segment's bookkeeping and the
redelivered ids to ``msgs/snapshot``; the next start loads it with a handful of
array reads and skips the scan.

It is trusted only if it is intact (CRC) and describes exactly the segment files
on disk (names and sizes); anything else means a scan.  Recovery deletes it
before the log accepts a new record, so after a crash it can never be stale: a
crash always leads to the full scan.

Layout (integers big-endian; ``u64[n]`` is n unsigned 64-bit integers)::

    magic "HUTCHSNP"  version u32  payload_len u64  crc32(payload) u32
    payload:
      seq u64                          last seq handed out
      n_segments u32, then per segment (in name order):
        first_seq u64  size u64  live u64  oldest_target u64 (0 = none)
      n_queues u32, then per durable queue:
        queue_id u64  count u64  body_bytes u64  ids u64[count]  offsets u32[count]
      n_delivered u64  ids u64[n_delivered]   (live messages already delivered once)
      version 2 only:
      n_counted u64  ids u64[n]  delivery_counts u32[n]  acquired_counts u32[n]
                                       (live messages' return counts: the RETURNED
                                       records' state, see records.py)
      n_priority_queues u32, then per priority queue (``broker/queue_store/priority.py``):
        queue_id u64  n_runs u32, then per run: level u8  count u64  body_bytes u64

Entries are listed in queue order (which is publish order, requeued messages back
in their original places).  A priority queue's entries are listed highest level
first, and its runs say which consecutive entries belong to which level.

Version 2 is always written.  A version 1 snapshot still loads (no counts, no
runs); if a priority queue's entries are in it without runs (written before Hutch
honoured ``x-max-priority``), recovery scans the log instead, which reads every
message's priority from its header.
"""

from __future__ import annotations

import array
import logging
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from itertools import repeat
from operator import lshift, or_
from typing import Any

log = logging.getLogger("hutch.store")

NAME = "snapshot"
MAGIC = b"HUTCHSNP"
VERSION = 2  # 2 added return counts and priority runs; a version 1 snapshot is still read
_head = struct.Struct(">8sIQI")
_seg = struct.Struct(">QQQQ")
_queue = struct.Struct(">QQQ")
_run = struct.Struct(">BQQ")
_prio_queue = struct.Struct(">QI")
_u32 = struct.Struct(">I")
_u64 = struct.Struct(">Q")
_SWAP = sys.byteorder == "little"  # arrays are native-endian; the file is big-endian
_U32_TYPECODE = "L" if array.array("L").itemsize == 4 else "I"  # the array typecode of 4 bytes


@dataclass
class SegmentState:
    first_seq: int
    size: int
    live: int
    oldest_target: int | None


@dataclass
class QueueState:
    queue_id: int
    entries: list[int]  # (msg_id << 32) | offset, see store.recovery.entry
    body_bytes: int
    # A priority queue's (level, count, body bytes) runs over ``entries``; else None.
    runs: list[tuple[int, int, int]] | None = None


@dataclass
class Snapshot:
    seq: int
    segments: list[SegmentState] = field(default_factory=list)
    queues: list[QueueState] = field(default_factory=list)
    delivered: set[int] = field(default_factory=set)
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)


def _pack_array(typecode: str, values: Any) -> bytes:
    a = array.array(typecode, values)
    if _SWAP:
        a.byteswap()
    return a.tobytes()


def _unpack_array(typecode: str, data: bytes | memoryview, off: int, count: int) -> tuple[array.array, int]:
    a = array.array(typecode)
    end = off + count * a.itemsize
    if end > len(data):
        raise ValueError("truncated array")
    a.frombytes(data[off:end])
    if _SWAP:
        a.byteswap()
    return a, end


def encode(snap: Snapshot, version: int = VERSION) -> bytes:
    parts = [_u64.pack(snap.seq), _u32.pack(len(snap.segments))]
    for s in snap.segments:
        parts.append(_seg.pack(s.first_seq, s.size, s.live, s.oldest_target or 0))
    parts.append(_u32.pack(len(snap.queues)))
    for q in snap.queues:
        parts.append(_queue.pack(q.queue_id, len(q.entries), q.body_bytes))
        parts.append(_pack_array("Q", [e >> 32 for e in q.entries]))
        parts.append(_pack_array(_U32_TYPECODE, [e & 0xFFFFFFFF for e in q.entries]))
    parts.append(_u64.pack(len(snap.delivered)))
    parts.append(_pack_array("Q", sorted(snap.delivered)))
    if version >= 2:
        counted = sorted(snap.counts)
        parts.append(_u64.pack(len(counted)))
        parts.append(_pack_array("Q", counted))
        parts.append(_pack_array(_U32_TYPECODE, [snap.counts[m][0] for m in counted]))
        parts.append(_pack_array(_U32_TYPECODE, [snap.counts[m][1] for m in counted]))
        prio = [q for q in snap.queues if q.runs is not None]
        parts.append(_u32.pack(len(prio)))
        for q in prio:
            assert q.runs is not None
            parts.append(_prio_queue.pack(q.queue_id, len(q.runs)))
            parts.extend(_run.pack(*run) for run in q.runs)
    else:
        # Only tests write version 1 (what an older Hutch wrote).
        assert not snap.counts and all(q.runs is None for q in snap.queues)
    payload = b"".join(parts)
    return _head.pack(MAGIC, version, len(payload), zlib.crc32(payload)) + payload


def decode(data: bytes) -> Snapshot:
    """Raises ValueError when the bytes are not an intact snapshot."""
    if len(data) < _head.size:
        raise ValueError("too short")
    magic, version, length, crc = _head.unpack_from(data)
    if magic != MAGIC or version not in (1, VERSION):
        raise ValueError("bad magic or version")
    payload = memoryview(data)[_head.size:]
    if len(payload) != length or zlib.crc32(payload) != crc:
        raise ValueError("bad length or checksum")
    (seq,) = _u64.unpack_from(payload, 0)
    snap = Snapshot(seq)
    (n,) = _u32.unpack_from(payload, 8)
    off = 12
    for _ in range(n):
        first, size, live, oldest = _seg.unpack_from(payload, off)
        snap.segments.append(SegmentState(first, size, live, oldest or None))
        off += _seg.size
    (n,) = _u32.unpack_from(payload, off)
    off += 4
    for _ in range(n):
        qid, count, body_bytes = _queue.unpack_from(payload, off)
        off += _queue.size
        ids, off = _unpack_array("Q", payload, off, count)
        offsets, off = _unpack_array(_U32_TYPECODE, payload, off, count)
        # Back to entries without a Python-level loop: ~50 ns a message.
        entries = list(map(or_, map(lshift, ids, repeat(32)), offsets))
        snap.queues.append(QueueState(qid, entries, body_bytes))
    (n,) = _u64.unpack_from(payload, off)
    off += 8
    delivered, off = _unpack_array("Q", payload, off, n)
    snap.delivered = set(delivered)
    if version >= 2:
        (n,) = _u64.unpack_from(payload, off)
        off += 8
        ids, off = _unpack_array("Q", payload, off, n)
        dcs, off = _unpack_array(_U32_TYPECODE, payload, off, n)
        acs, off = _unpack_array(_U32_TYPECODE, payload, off, n)
        snap.counts = dict(zip(ids, zip(dcs, acs, strict=True), strict=True))
        by_id = {q.queue_id: q for q in snap.queues}
        (n,) = _u32.unpack_from(payload, off)
        off += 4
        for _ in range(n):
            qid, n_runs = _prio_queue.unpack_from(payload, off)
            off += _prio_queue.size
            runs = []
            for _ in range(n_runs):
                runs.append(_run.unpack_from(payload, off))
                off += _run.size
            q = by_id.get(qid)
            if q is None or sum(r[1] for r in runs) != len(q.entries):
                raise ValueError("priority runs do not match their queue")
            q.runs = runs
    if off != len(payload):
        raise ValueError("trailing bytes")
    return snap


def write(directory: str, files: Any, snap: Snapshot) -> None:
    files.write_file_atomically(os.path.join(directory, NAME), encode(snap))


def take(directory: str, files: Any) -> Snapshot | None:
    """Read and delete the snapshot (None if there is none or it is damaged).

    Deleted at once, durably: from now on the log changes, and a crash must lead
    to a full scan rather than to this picture of the past.
    """
    path = os.path.join(directory, NAME)
    try:
        data = files.read(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("message store: cannot read the shutdown snapshot (%s); scanning the log", exc)
        return None
    try:
        snap: Snapshot | None = decode(data)
    except (ValueError, struct.error) as exc:
        log.warning("message store: ignoring a damaged shutdown snapshot (%s); scanning the log",
                    exc)
        snap = None
    try:
        files.remove(path)
        files.fsync_dir(directory)
    except OSError as exc:
        # Never trust a snapshot that might outlive this start: scan instead.  (If it
        # is still there next time, the sizes will not match and it is ignored.)
        log.warning("message store: cannot delete the shutdown snapshot (%s); scanning the log",
                    exc)
        return None
    return snap
