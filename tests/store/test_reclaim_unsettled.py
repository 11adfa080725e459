"""A segment emptied by an ACK that is not on disk yet is not reclaimed (review find).

A message that *moves* — a delayed message fired into its queues, a message
dead-lettered — is an ACK of the old record and a PUBLISH of the new one in the same
pending batch.  If an earlier batch completes first, reclamation used to delete the
old record's segment at once (its live count was already 0): a kill -9 before the
pending batch was written, or a disk fault failing it, then lost a confirmed message.
``MessageLog.remove`` now keeps such a segment until the ACK is durable
(``ReclaimMixin._keep_until_settled``), for every kind of removal.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import threading

import pytest

from hutch.store.files import Files
from hutch.store.log import MessageLog
from tests.store.test_log import Q, msg, run

SRC, DST, OTHER = 9, 7, 8


class Gate(Files):
    """The first write after ``hold`` is set (batch B0) waits for ``release``; the
    write after it (the batch that moves the message) fails with ``errno`` or, with
    ``stuck``, blocks until the end (a kill -9 lands while it is in flight)."""

    def __init__(self, fail_errno: int | None) -> None:
        self.hold = threading.Event()
        self.release = threading.Event()
        self.stuck = threading.Event()
        self.next_fails = False
        self.fail_errno = fail_errno

    def writev(self, fd, buffers):
        if self.next_fails:
            if self.fail_errno is None:
                self.stuck.set()
                self.release.wait(10)
                raise OSError(errno.EIO, "killed")
            raise OSError(self.fail_errno, os.strerror(self.fail_errno))
        if self.hold.is_set():
            self.hold.clear()
            self.release.wait(5)
            super().writev(fd, buffers)
            self.next_fails = True
            self.release.clear()
            return
        super().writev(fd, buffers)


@pytest.mark.parametrize("fire", [True, False], ids=["delayed-fire", "dead-letter-move"])
@pytest.mark.parametrize("fault", ["kill-9", "enospc"])
def test_moved_message_survives_reclaim_before_its_batch_is_durable(tmp_path, fire, fault):
    path = str(tmp_path / "log")
    crash = str(tmp_path / "crash")
    gate = Gate(None if fault == "kill-9" else errno.ENOSPC)

    async def go() -> str:
        log = MessageLog(path, asyncio.get_running_loop(), files=gate, segment_size=300)
        log.recover()
        src = Q(SRC)
        moving = msg(b"moving" * 10)
        log.add(src, moving, 1234567 if fire else 0)  # confirmed
        await log.drain()
        log.add(Q(OTHER), msg(b"x" * 400))  # the log rolls over to a new segment
        await log.drain()
        assert len(log.segments) >= 2
        old_segment = log.segments[0].path
        gate.hold.set()
        log.add(Q(OTHER), msg(b"y" * 10))  # B0, in flight
        await asyncio.sleep(0)
        mid = moving.msg_id
        if fire:  # what DelayStore._fire_one does
            log.begin_fire(SRC, mid)
        log.add(Q(DST), msg(b"moving" * 10))
        if fire:
            log.end_fire()
        log.remove(src, moving)
        done: list[bool] = []
        log.when_durable(done.append)
        gate.release.set()  # B0 completes (and reclamation runs); the move's batch fails
        if fault == "kill-9":
            for _ in range(200):
                if gate.stuck.is_set():
                    break
                await asyncio.sleep(0.01)
            assert gate.stuck.is_set()
            shutil.copytree(path, crash)  # kill -9 now: the disk as it is
            gate.release.set()
        else:
            for _ in range(200):
                if done:
                    break
                await asyncio.sleep(0.01)
            assert done == [False]
            shutil.copytree(path, crash)  # and the broker dies before the disk is back
        assert os.path.exists(old_segment), "the moved message's old segment was reclaimed"
        log.close()
        return old_segment

    run(go())

    async def recover():
        log = MessageLog(crash, asyncio.get_running_loop())
        rec = log.recover()
        log.close()
        return rec

    rec = run(recover())
    assert SRC in rec or DST in rec, f"a confirmed message was lost (recovered: {sorted(rec)})"
