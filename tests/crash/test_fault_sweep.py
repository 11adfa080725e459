"""ENOSPC and EIO at every kind of disk call: nothing confirmed is ever lost.

Each case runs a real ``hutch serve`` whose store goes through ``FaultFiles``
(tests/crash/seams.py) with a 16 KiB segment size, so a few messages roll the
log over to a new segment and acks reclaim old ones while the fault is on.  The
fault is switched on for one kind of call (segment creation, the header, the
records, fsync, the directory fsync, the cut after a failed write, deletion,
reads, renames, the definitions file...), publishing, acking and declaring go
on, the fault is lifted, publishing goes on until it succeeds and then rolls the
log over several more times; finally the broker is killed with SIGKILL (and, in
the snapshot cases, first stopped cleanly while the fault is on) and restarted.
Every message that was confirmed and not acked must come back, byte for byte,
exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import pika
import pytest

from tests.brokerproc import HutchProcess, drain

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def body_of(tag: str) -> bytes:
    # ~2 KiB, different for every tag: a message read back from the wrong offset
    # or a torn record cannot pass for the right one.
    return tag.encode() + b":" + hashlib.sha256(tag.encode()).digest() * 64


class Run:
    """A broker with a fault seam, a confirming publisher and the expected state."""

    def __init__(self, tmp_path) -> None:
        self.marker = tmp_path / "fault"
        env = {"HUTCH_STORE_FILES": "tests.crash.seams:FaultFiles",
               "HUTCH_FAULT_FILE": str(self.marker)}
        self.proc = HutchProcess("--segment-size", "16k", env=env)
        self.confirmed: dict[str, str] = {}  # tag -> queue
        self.acked: set[str] = set()
        # Rejects (requeue) per tag in the counting queue "r": RETURNED records.
        self.rejects: dict[str, int] = {}
        # Those made while the disk failed, when a clean stop came before it recovered:
        # never written (like the acks of acked_while_faulty), they may be lost.
        self.rejects_lost: dict[str, int] = {}
        self.n = 0

    def connect(self) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(self.proc.url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.consumer = pika.BlockingConnection(pika.URLParameters(self.proc.url))
        self.cch = self.consumer.channel()

    def publish(self, queue: str, prefix: str) -> bool:
        self.n += 1
        tag = f"{prefix}{self.n}"
        try:
            self.ch.basic_publish("", queue, body_of(tag), PERSISTENT)
        except pika.exceptions.NackError:
            return False
        self.confirmed[tag] = queue
        return True

    def ack(self, queue: str, count: int) -> None:
        for _ in range(count):
            method, _props, body = self.cch.basic_get(queue)
            if method is None:
                return
            tag = body.split(b":", 1)[0].decode()
            assert body == body_of(tag), f"{tag} read back damaged"
            self.cch.basic_ack(method.delivery_tag)
            self.acked.add(tag)

    def reject(self, queue: str, count: int) -> None:
        """Take up to ``count`` messages and reject them all with requeue: each one's
        delivery count goes up by one (a RETURNED record, written while the disk fails
        or after it recovers, but before the next confirm)."""
        taken = []
        for _ in range(count):
            method, _props, body = self.cch.basic_get(queue)
            if method is None:
                break
            taken.append(method.delivery_tag)
            tag = body.split(b":", 1)[0].decode()
            self.rejects[tag] = self.rejects.get(tag, 0) + 1
        for delivery_tag in taken:
            self.cch.basic_reject(delivery_tag, requeue=True)

    def declare(self, name: str) -> bool:
        """A durable declare on its own connection: a failed definitions write
        closes that connection with 541, as it must."""
        conn = pika.BlockingConnection(pika.URLParameters(self.proc.url))
        try:
            conn.channel().queue_declare(name, durable=True)
        except pika.exceptions.ConnectionClosedByBroker as exc:
            assert exc.reply_code == 541, exc
            return False
        conn.close()
        return True

    def close(self) -> None:
        for c in (self.conn, self.consumer):
            if c.is_open:
                c.close()

    def check_after_restart(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.proc.url))
        ch = conn.channel()
        seen: list[str] = []
        for queue in sorted(set(self.confirmed.values())):
            while True:
                method, props, body = ch.basic_get(queue, auto_ack=True)
                if method is None:
                    break
                tag = body.split(b":", 1)[0].decode()
                assert body == body_of(tag), f"{tag} came back damaged"
                seen.append(tag)
                if queue == "r":  # every reject was followed by a confirmed publish
                    count = (props.headers or {}).get("x-delivery-count") or 0
                    most = self.rejects.get(tag, 0)
                    assert most - self.rejects_lost.get(tag, 0) <= count <= most, \
                        f"{tag}: count {count}, rejected {most}"
        conn.close()
        assert len(seen) == len(set(seen)), "a message came back twice"
        missing = {t for t in self.confirmed if t not in self.acked} - set(seen)
        assert not missing, f"{len(missing)} confirmed messages lost: {sorted(missing)[:5]}"
        unknown = [t for t in seen if t not in self.confirmed]
        # A nacked publish may survive (a nack says "not handled", not "gone"), but only
        # one whose tag was published.
        assert all(t[:1] in "abcd" for t in unknown)
        # Duplicates only of what was acked while the disk failed (its ACK record may
        # be missing), never of anything else.
        assert set(seen) & self.acked <= self.acked_while_faulty

    def hits(self) -> list[str]:
        path = self.marker.with_name("fault.hits")
        return path.read_text().split() if path.exists() else []

    # -- the scenario --------------------------------------------------------------
    def scenario(self, spec: dict, stop_while_faulty: bool = False) -> None:
        proc = self.proc
        proc.start()
        self.connect()
        self.ch.queue_declare("q1", durable=True)
        self.ch.queue_declare("q2", durable=True)
        self.ch.queue_declare("r", durable=True, arguments={"x-queue-type": "quorum",
                                                            "x-delivery-limit": 1000})
        for _ in range(40):  # q1 only: acking them empties whole segments
            assert self.publish("q1", "a")
        for _ in range(4):
            assert self.publish("r", "a")
        self.marker.write_text(json.dumps(spec))
        acked_before = set(self.acked)
        rejects_before = dict(self.rejects)
        for i in range(30):
            self.publish("q2" if i % 3 else "q1", "b")
            if i % 3 == 0:
                self.ack("q1", 4)  # acks while the disk fails: ACK records, reclaim
            if i % 3 == 1:
                self.reject("r", 1 + i % 4)  # RETURNED records while the disk fails
        self.declare("q3")
        if stop_while_faulty:
            # A clean stop that cannot write its snapshot (or anything else).
            self.close()
            proc.stop()
            self.marker.unlink()
            self.acked_while_faulty = self.acked - acked_before
            self.rejects_lost = {t: n - rejects_before.get(t, 0) for t, n in self.rejects.items()}
            proc.start()
            self.connect()
        else:
            self.marker.unlink()
            self.acked_while_faulty = self.acked - acked_before
        deadline = time.monotonic() + 15
        while not self.publish("q2", "c"):  # the store retries every couple of seconds
            assert time.monotonic() < deadline, "the store never recovered"
            time.sleep(0.3)
        for i in range(60):
            assert self.publish("q1" if i % 2 else "q2", "d")
            if i % 10 == 0:
                self.ack("q2", 3)
            if i % 10 == 5:
                self.reject("r", 2)
        assert self.declare("q3")
        self.close()
        proc.kill()
        proc.start()
        self.check_after_restart()
        assert "Traceback" not in proc.log_text()


CASES = {
    # name: (fault spec, ops that must really have failed)
    "header-ENOSPC": ({"errno": "ENOSPC", "ops": ["write"]}, {"write"}),
    "create-ENOSPC": ({"errno": "ENOSPC", "ops": ["open_new"]}, {"open_new"}),
    "records-ENOSPC": ({"errno": "ENOSPC", "ops": ["writev"]}, {"writev"}),
    # A real full disk writes part of the bytes first.
    "records-short-ENOSPC": ({"errno": "ENOSPC", "ops": ["writev"], "short": True}, {"writev"}),
    "header-short-ENOSPC": ({"errno": "ENOSPC", "ops": ["write"], "short": True}, {"write"}),
    "fsync-EIO": ({"errno": "EIO", "ops": ["fsync"]}, {"fsync"}),
    "one-fsync-EIO": ({"errno": "EIO", "ops": ["fsync"], "times": 1}, {"fsync"}),
    "dirsync-EIO": ({"errno": "EIO", "ops": ["fsync_dir"]}, {"fsync_dir"}),
    "fsync-and-cut-EIO": ({"errno": "EIO", "ops": ["fsync", "ftruncate"]}, {"fsync", "ftruncate"}),
    "size-EIO": ({"errno": "EIO", "ops": ["size"]}, {"size"}),
    "delete-EIO": ({"errno": "EIO", "ops": ["remove"]}, {"remove"}),
    "read-EIO": ({"errno": "EIO", "ops": ["read"]}, set()),
    "rename-EIO": ({"errno": "EIO", "ops": ["replace"]}, {"replace"}),
    "every-call-ENOSPC": ({"errno": "ENOSPC"}, {"size"}),
}


@pytest.mark.hutch_only
@pytest.mark.parametrize("case", sorted(CASES))
def test_fault_at_one_kind_of_disk_call_loses_nothing_confirmed(tmp_path, case: str) -> None:
    spec, must_hit = CASES[case]
    run = Run(tmp_path)
    try:
        run.scenario(spec)
    finally:
        run.proc.stop()
    assert must_hit <= set(run.hits()), f"the fault was not reached: {run.hits()}"


@pytest.mark.hutch_only
@pytest.mark.parametrize("op", ["open_new", "write", "fsync", "replace", "fsync_dir"])
def test_clean_stop_on_a_failing_disk_loses_nothing_confirmed(tmp_path, op: str) -> None:
    """The shutdown snapshot and the definitions are written at stop: failing any
    step of that leaves a log the next start scans correctly."""
    run = Run(tmp_path)
    try:
        run.scenario({"errno": "EIO", "ops": [op]}, stop_while_faulty=True)
    finally:
        run.proc.stop()
    assert op in run.hits()


@pytest.mark.hutch_only
def test_single_faults_walking_through_the_calls_lose_nothing_confirmed(tmp_path) -> None:
    """One failure at a time, each at a later call of any kind than the last, while
    the log keeps rolling over: the nth call after arming fails, for n = 1, 2, ..."""
    run = Run(tmp_path)
    proc = run.proc
    try:
        proc.start()
        run.connect()
        run.ch.queue_declare("q1", durable=True)
        run.ch.queue_declare("q2", durable=True)
        run.ch.queue_declare("r", durable=True, arguments={"x-queue-type": "quorum",
                                                           "x-delivery-limit": 1000})
        for _ in range(3):
            assert run.publish("r", "a")
        run.acked_while_faulty = set()
        for n in range(40):
            before = set(run.acked)
            run.marker.write_text(json.dumps({"errno": "EIO", "skip": n % 8, "times": 1, "round": n}))
            deadline = time.monotonic() + 15
            while not run.publish("q1" if n % 2 else "q2", "a"):  # waits out the retry pause
                assert time.monotonic() < deadline, "the store never recovered"
                time.sleep(0.05)
            for i in range(3):
                run.publish("q1" if (n + i) % 2 else "q2", "a")
            run.ack("q1" if n % 2 else "q2", 2)
            run.reject("r", 1 + n % 3)
            if n % 10 == 0:
                run.declare(f"extra{n}")
            run.acked_while_faulty |= run.acked - before
        run.marker.unlink()
        deadline = time.monotonic() + 15
        while not run.publish("q2", "c"):
            assert time.monotonic() < deadline, "the store never recovered"
            time.sleep(0.3)
        run.close()
        proc.kill()
        proc.start()
        run.check_after_restart()
        assert "Traceback" not in proc.log_text()
    finally:
        proc.stop()
    assert len(run.hits()) >= 20, run.hits()


@pytest.mark.hutch_only
@pytest.mark.parametrize("op", ["pread", "open_read"])
def test_read_errors_while_paging_lose_nothing(tmp_path, op: str) -> None:
    """A paged-out message that cannot be read back (EIO) stays in the queue, in
    order; the queue tries again and every message is delivered once the disk reads."""
    run = Run(tmp_path)
    proc = run.proc
    try:
        proc.start()
        run.connect()
        run.ch.queue_declare("deep", durable=True)
        tags = []
        for _ in range(3000):  # ~6 MB: beyond the in-memory window, so most are paged out
            assert run.publish("deep", "a")
            tags.append(f"a{run.n}")
        run.marker.write_text(json.dumps({"errno": "EIO", "ops": [op]}))
        got: list[str] = []
        while True:
            method, _props, body = run.cch.basic_get("deep", auto_ack=True)
            if method is None:
                break
            got.append(body.split(b":", 1)[0].decode())
        assert len(got) < len(tags), "nothing was paged out: the test checks nothing"
        run.marker.unlink()
        deadline = time.monotonic() + 15
        while len(got) < len(tags):
            assert time.monotonic() < deadline, f"stuck after {len(got)} messages"
            method, _props, body = run.cch.basic_get("deep", auto_ack=True)
            if method is None:
                time.sleep(0.1)
                continue
            tag = body.split(b":", 1)[0].decode()
            assert body == body_of(tag)
            got.append(tag)
        assert got == tags
        assert "Traceback" not in proc.log_text()
        assert proc.wait_for_log("cannot read paged-out messages back")
    finally:
        run.close()
        proc.stop()
    assert op in run.hits()


def _recovered_tags(data_dir: str) -> list[str]:
    """Start a plain broker on ``data_dir`` and drain queue ``rq``: the tags, in order."""
    proc = HutchProcess(data_dir=data_dir)
    proc.start()
    try:
        conn = pika.BlockingConnection(pika.URLParameters(proc.url))
        tags = [b.decode().split(":")[0] for b, _r in drain(conn.channel(), "rq")]
        conn.close()
    finally:
        proc.stop()
    return tags


def _damaged_log(tmp_path) -> tuple[str, list[str]]:
    """A data dir whose log needs every repair recovery does: a middle segment with a
    flipped byte (quarantined, what precedes the damage salvaged into a new segment)
    and a torn tail (cut).  Returns it, and what a fault-free start recovers from it."""
    import shutil

    base = str(tmp_path / "base")
    proc = HutchProcess("--segment-size", "4k", data_dir=base)
    proc.start()
    conn = pika.BlockingConnection(pika.URLParameters(proc.url))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("rq", durable=True)
    for i in range(200):
        ch.basic_publish("", "rq", f"m{i}:".encode() + b"x" * 150, PERSISTENT)
    conn.close()
    proc.kill()
    msgs = os.path.join(base, "msgs")
    segs = sorted(n for n in os.listdir(msgs) if n.endswith(".seg"))
    assert len(segs) >= 5
    middle = os.path.join(msgs, segs[len(segs) // 2])
    data = bytearray(open(middle, "rb").read())
    data[-40] ^= 0xFF  # inside the last record: the records before it are salvaged
    open(middle, "wb").write(bytes(data))
    with open(os.path.join(msgs, segs[-1]), "ab") as f:
        f.write(b"\x00\x00\x01\x00torn")  # the start of a record that never finished
    check = str(tmp_path / "check")
    shutil.copytree(base, check)
    expected = _recovered_tags(check)
    assert 150 < len(expected) < 200  # something was lost to the flipped byte, not more
    return base, expected


@pytest.mark.hutch_only
def test_faults_during_recovery_stop_the_start_and_lose_nothing(tmp_path) -> None:
    """ENOSPC/EIO at any disk call of recovery (listing, reading, cutting the torn tail,
    quarantining, writing the salvage segment, the snapshot and definitions): the start
    fails with one line, and the next start recovers exactly what a fault-free one does."""
    import shutil

    base, expected = _damaged_log(tmp_path)
    marker = tmp_path / "fault"
    env = {"HUTCH_STORE_FILES": "tests.crash.seams:FaultFiles", "HUTCH_FAULT_FILE": str(marker)}
    reached = set()
    for op in ("listdir", "read", "open_append", "ftruncate", "makedirs", "replace", "open_new",
               "write", "write-short", "fsync", "fsync_dir", "remove"):
        data_dir = str(tmp_path / f"run-{op}")
        shutil.copytree(base, data_dir)
        name, _, short = op.partition("-")
        marker.write_text(json.dumps({"errno": "ENOSPC" if short else "EIO", "ops": [name],
                                      "short": bool(short)}))
        hits = marker.with_name("fault.hits")
        hits.unlink(missing_ok=True)
        proc = HutchProcess(data_dir=data_dir, env=env)
        try:
            proc.start()
            proc.stop()  # the fault was not on recovery's path (checked below)
        except RuntimeError:
            assert "cannot open the message store" in proc.log_text(), proc.log_text()
            assert "Traceback" not in proc.log_text()
        if hits.exists():
            reached.add(name)
        marker.unlink()
        got = _recovered_tags(data_dir)
        assert got == expected, f"after a fault at {op}"
    # Every kind of call recovery makes was failed at least once.
    assert {"listdir", "read", "ftruncate", "replace", "open_new", "write", "fsync",
            "fsync_dir"} <= reached, reached
