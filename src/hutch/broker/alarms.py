"""Resource alarms, as RabbitMQ 4.x's: the memory high watermark and the free disk
space limit (rabbit_alarm, vm_memory_monitor, rabbit_disk_monitor).

Memory: the process's resident memory (RSS, ``/proc/self/statm``: one small read) is
sampled every MEMORY_CHECK_INTERVAL and compared with the watermark, either relative
to the memory available (the machine's, or the cgroup's limit if smaller: RabbitMQ
reads only the machine's and leaves containers to ``total_memory_available_override_value``)
or absolute.  The alarm is set above the watermark and cleared below
MEMORY_CLEAR_RATIO of it (see there).

Between samples a burst could overshoot the watermark by what arrives in half a
second (hundreds of MB on a fast link).  So the exact count of message bytes the
broker holds (``Node.account``, kept from Hutch's earlier alarm, one addition per
message) serves as an estimate: once the bytes taken in since the last sample would
bring RSS over the watermark, RSS is sampled at once (``resample_at``).  The estimate
never sets the alarm by itself: only a measured RSS does.

Python's allocator seldom gives memory back to the system after a burst: freed
message bodies stay in the heap, RSS stays high, and an alarm would never clear
once queues drain.  So while the memory alarm is on and the broker has freed
message bytes since, glibc's ``malloc_trim(0)`` is called (at most once a second),
which returns free heap pages to the system (measured: README, note).

Disk: free space (``os.statvfs``, blocks available to unprivileged users, the "Available"
column of the ``df -kP`` RabbitMQ runs) on the data dir's filesystem, checked every
100 ms to 10 s: the closer to the limit the more often, assuming the disk fills at
250 MB/s (rabbit_disk_monitor's interval).  RabbitMQ checks every 10 s while alarmed;
statvfs is cheap, so Hutch checks every second then, and the alarm clears sooner.
With ``--in-memory`` nothing is written, so there is no disk alarm (RabbitMQ always
has a data dir).  The disk alarm has no hysteresis, as RabbitMQ's.

Either alarm blocks publishing connections (``Connection.on_alarm``): the reason
text and the blocking follow rabbit_reader (server/connection.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("hutch.alarms")

# How often RSS is sampled.  RabbitMQ 4.x samples every second (vm_memory_monitor's
# DEFAULT_MEMORY_CHECK_INTERVAL; memory_monitor_interval is no longer used); a read of
# /proc/self/statm costs ~10 µs, so Hutch samples twice as often.
MEMORY_CHECK_INTERVAL = 0.5
# The memory alarm clears only once RSS is below this fraction of the watermark.
# RabbitMQ clears as soon as memory is back under the watermark, damped by its 1 s
# sampling.  Hutch's first (exact byte count) alarm flapped every ~60 ms under load
# without a margin: a consumer took it just under, the unblocked publishers' socket
# backlog took it straight back over.  With 5% an unblocked publisher gets that much
# room before it is blocked again; sampling damps the rest.
MEMORY_CLEAR_RATIO = 0.95
# While the memory alarm is on, at most this often is the heap trimmed.
TRIM_INTERVAL = 1.0
# Never re-sample RSS for less than this much estimated growth (a watermark just
# above RSS would otherwise cost a read per message).
MIN_RESAMPLE_STEP = 1024 * 1024
# rabbit_disk_monitor: 100 ms .. 10 s, assuming the disk fills at 250 MB/s.
DISK_MIN_INTERVAL = 0.1
DISK_MAX_INTERVAL = 10.0
DISK_ALARMED_INTERVAL = 1.0
DISK_FAST_RATE = 250_000_000  # bytes a second
# RabbitMQ's defaults (4.x): 0.6 of memory (3.x: 0.4), 50 MB free.
DEFAULT_MEMORY_WATERMARK = 0.6
DEFAULT_DISK_FREE_LIMIT = 50_000_000
UNKNOWN_TOTAL_MEMORY = 1024**3  # RabbitMQ's MEMORY_SIZE_FOR_UNKNOWN_OS

MEMORY = "memory"
DISK = "disk"


# -- sizes ---------------------------------------------------------------------------------------
_IEC = {"ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4, "pi": 1024**5}
_SI = {"k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
_UNIT = re.compile(r"([0-9]+)([a-zA-Z]*)")


def parse_information_unit(text: str) -> int:
    """A size as rabbitmq.conf and rabbitmqctl write it (rabbit_resource_monitor_misc:
    parse_information_unit, 3.13+): ``1073741824``, ``1024MiB``/``1024Mi`` (binary),
    ``2GB``/``2G``/``2gb`` (decimal, as Kubernetes reads them).  ValueError if not."""
    m = _UNIT.fullmatch(text.strip())
    unit = m.group(2).lower() if m else ""
    if m and not unit:
        return int(m.group(1))
    if m and unit.endswith("b") and len(unit) > 1:
        unit = unit[:-1]  # MB -> m, MiB -> mi
    scale = _IEC.get(unit) or _SI.get(unit)
    if m is None or scale is None:
        raise ValueError(f"invalid size {text!r}: a whole number of bytes, optionally with a "
                         "unit (kB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB: of 1024)")
    return int(m.group(1)) * scale


def _fraction(text: str, what: str, at_most: float | None = None) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and (at_most is None or value <= at_most)):
        bound = f" between 0.0 and {at_most}" if at_most is not None else " (0.0 or more)"
        raise ValueError(f"invalid {what} {text!r}: a fraction{bound}")
    return value


@dataclass(frozen=True)
class Limit:
    """A configured threshold: ``relative`` (memory watermark: of total memory),
    ``mem_relative`` (disk limit: times total memory) or ``absolute`` bytes."""

    kind: str
    value: float

    def resolve(self, total_memory: int) -> int:
        if self.kind == "absolute":
            return int(self.value)
        return int(self.value * total_memory)

    def __str__(self) -> str:
        """The flag's syntax (``0.6``, ``2000000000``, ``mem_relative:1.5``): what
        ``hutch serve --memory-high-watermark`` / ``--disk-free-limit`` read back."""
        if self.kind == "absolute":
            return str(int(self.value))
        text = repr(float(self.value))
        return f"mem_relative:{text}" if self.kind == "mem_relative" else text

    def setting(self) -> dict[str, float]:
        """As rabbitmqctl status shows it (``{"relative": 0.6}``, ``{"absolute": N}``)."""
        return {self.kind: self.value if self.kind != "absolute" else int(self.value)}


def memory_watermark(text: str) -> Limit:
    """``--memory-high-watermark``: a fraction of total memory written with a decimal
    point (``0.6``, as vm_memory_high_watermark.relative) or a size (``2GB``,
    ``1024MiB``, ``2147483648``, as .absolute)."""
    text = text.strip()
    if "." in text:
        return Limit("relative", _fraction(text, "memory high watermark", 1.0))
    return Limit("absolute", parse_information_unit(text))


def relative_watermark(text: str) -> Limit:
    return Limit("relative", _fraction(text, "vm_memory_high_watermark.relative", 1.0))


def disk_free_limit(text: str) -> Limit:
    """``--disk-free-limit``: a size (``50MB``, ``1GB``, as disk_free_limit.absolute) or
    ``mem_relative:1.5`` / a number with a decimal point (times total memory, as
    disk_free_limit.relative)."""
    text = text.strip()
    if text.startswith("mem_relative:") or "." in text:
        return relative_disk_limit(text.removeprefix("mem_relative:"))
    return Limit("absolute", parse_information_unit(text))


def relative_disk_limit(text: str) -> Limit:
    return Limit("mem_relative", _fraction(text, "disk_free_limit.relative"))


def as_limit(value: Any, default: Limit | None,
             parse: Callable[[str], Limit]) -> Limit | None:
    """A Limit from what callers pass (``hutch.Broker(memory_high_watermark=...)``):
    None (the default), an int (bytes), a float (a fraction) or a string."""
    if value is None:
        return default
    if isinstance(value, Limit):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid limit {value!r}")
    if isinstance(value, int):
        return Limit("absolute", value)
    return parse(str(value))


# -- measures ------------------------------------------------------------------------------------
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss() -> int:
    """Resident memory of this process in bytes."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        import resource  # not Linux: ru_maxrss, the peak (KiB on Linux, bytes on macOS)

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if platform.system() == "Darwin" else peak * 1024


def machine_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * _PAGE
    except (AttributeError, ValueError, OSError):
        return None


def _read_limit(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # cgroup v2 "max": no limit
    value = int(text)
    return value if value < 1 << 60 else None  # v1's "unlimited" is ~2^63


def cgroup_memory_limit(root: str = "/") -> int | None:
    """The smallest memory limit of this process's cgroup and its ancestors: cgroup v2
    ``memory.max``, v1 ``memory.limit_in_bytes``; None without one.  ``root`` is for
    tests (a fake /proc and /sys)."""
    try:
        with open(os.path.join(root, "proc/self/cgroup")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    candidates: list[str] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if controllers == "":  # v2 unified hierarchy
            base, name = os.path.join(root, "sys/fs/cgroup"), "memory.max"
        elif "memory" in controllers.split(","):
            base, name = os.path.join(root, "sys/fs/cgroup/memory"), "memory.limit_in_bytes"
        else:
            continue
        # The process's own cgroup and every ancestor up to the mount's root (inside a
        # container the mount's root is often the process's cgroup itself).
        rel = path.strip("/")
        while True:
            candidates.append(os.path.join(base, rel, name) if rel else os.path.join(base, name))
            if not rel:
                break
            rel = os.path.dirname(rel)
    limits = [v for v in map(_read_limit, candidates) if v is not None]
    return min(limits) if limits else None


def total_memory(root: str = "/") -> int:
    """Memory this process may use: the machine's, or its cgroup's limit if smaller."""
    machine = machine_memory() if root == "/" else None
    cgroup = cgroup_memory_limit(root)
    known = [v for v in (machine, cgroup) if v]
    return min(known) if known else UNKNOWN_TOTAL_MEMORY


def disk_free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None  # not glibc (musl, macOS): nothing to call
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


# -- the monitor ---------------------------------------------------------------------------------
class ResourceMonitor:
    """The node's alarms.  ``alarms`` is the set in effect ("disk", "memory");
    ``notify`` is called with it whenever it changes."""

    def __init__(self, loop: Any, notify: Callable[[frozenset[str]], None],
                 queued: Callable[[], int], memory: Limit | None = None,
                 disk: Limit | None = None, node: str = "") -> None:
        self.loop = loop
        self.notify = notify
        self.queued = queued  # Node.queued_bytes, the estimate (module docstring)
        self.node = node or f"hutch@{platform.node() or 'localhost'}"
        self.total_memory = total_memory()
        self.memory = memory or Limit("relative", DEFAULT_MEMORY_WATERMARK)
        self.disk = disk or Limit("absolute", DEFAULT_DISK_FREE_LIMIT)
        self.mem_limit = self._memory_limit(self.memory)
        self.disk_limit = self.disk.resolve(self.total_memory)
        self.alarms: frozenset[str] = frozenset()
        self.mem_used = rss()
        self.disk_dir: str | None = None
        self.disk_free: int | None = None
        # Node.account re-samples RSS once queued bytes pass this (see module docstring).
        self.resample_at: float = float("inf")
        self._resample_pending = False
        self._trim = _malloc_trim()
        self._trimmed_at = 0.0
        self._queued_at_trim = 0
        self._mem_timer = loop.call_later(MEMORY_CHECK_INTERVAL, self._memory_tick)
        self._disk_timer: Any = None
        self._disk_failed = False
        log.info("Memory high watermark set to %d MiB (%d bytes) of %d MiB (%d bytes) total",
                 self.mem_limit // 1024**2, self.mem_limit, self.total_memory // 1024**2,
                 self.total_memory)
        self.check_memory()

    def _memory_limit(self, limit: Limit) -> int:
        # RabbitMQ caps an absolute watermark at the memory available (interpret_limit).
        return min(limit.resolve(self.total_memory), self.total_memory)

    # -- memory ------------------------------------------------------------------------------
    def _memory_tick(self) -> None:
        self.check_memory()
        self._mem_timer = self.loop.call_later(MEMORY_CHECK_INTERVAL, self._memory_tick)

    def check_soon(self) -> None:
        """The estimate says RSS may have crossed the watermark: sample it on this loop
        iteration's end (once, however many messages arrive meanwhile)."""
        if not self._resample_pending:
            self._resample_pending = True
            self.loop.call_soon(self._resample)

    def _resample(self) -> None:
        self._resample_pending = False
        self.check_memory()

    def check_memory(self) -> None:
        used = self.mem_used = rss()
        queued = self.queued()
        alarmed = MEMORY in self.alarms
        if alarmed and used >= self.mem_limit * MEMORY_CLEAR_RATIO and self._trim is not None:
            now = time.monotonic()
            if queued != self._queued_at_trim and now - self._trimmed_at >= TRIM_INTERVAL:
                # Message bytes came and went since the last trim: give the free heap back.
                self._trim(0)
                self._trimmed_at = now
                self._queued_at_trim = queued
                used = self.mem_used = rss()
        if not alarmed and used > self.mem_limit:
            log.info("vm_memory_high_watermark set. Memory used:%d allowed:%d", used, self.mem_limit)
            self._queued_at_trim = -1  # the first sample while alarmed may trim
            self._trimmed_at = 0.0
            self._set(MEMORY, True)
        elif alarmed and used < self.mem_limit * MEMORY_CLEAR_RATIO:
            log.info("vm_memory_high_watermark clear. Memory used:%d allowed:%d", used,
                     self.mem_limit)
            self._set(MEMORY, False)
        if MEMORY in self.alarms:
            self.resample_at = float("inf")  # the timer clears it
        else:
            self.resample_at = queued + max(self.mem_limit - used, MIN_RESAMPLE_STEP)

    def set_memory_watermark(self, limit: Limit) -> None:
        """``set_vm_memory_high_watermark``: takes effect at once, as in RabbitMQ."""
        self.memory = limit
        self.mem_limit = self._memory_limit(limit)
        log.info("Memory high watermark set to %d MiB (%d bytes) of %d MiB (%d bytes) total",
                 self.mem_limit // 1024**2, self.mem_limit, self.total_memory // 1024**2,
                 self.total_memory)
        self.check_memory()

    # -- disk --------------------------------------------------------------------------------
    def watch_disk(self, path: str) -> None:
        """Start the disk monitor on the filesystem holding ``path`` (the data dir)."""
        self.disk_dir = path
        log.info("Enabling free disk space monitoring (disk free space: %s, limit: %d)",
                 self._safe_free(path), self.disk_limit)
        self._disk_tick()

    def _safe_free(self, path: str) -> int | None:
        try:
            free = disk_free(path)
        except OSError as exc:
            if not self._disk_failed:
                log.warning("Free disk space monitoring failed to retrieve the amount of "
                            "available space in %s: %s", path, exc.strerror or exc)
            self._disk_failed = True
            return None
        self._disk_failed = False
        return free

    def _disk_tick(self) -> None:
        self.check_disk()
        if self.disk_dir is None:
            return
        free, limit = self.disk_free, self.disk_limit
        if DISK in self.alarms or free is None:
            interval = DISK_ALARMED_INTERVAL if free is not None else DISK_MAX_INTERVAL
        else:
            interval = min(DISK_MAX_INTERVAL,
                           max(DISK_MIN_INTERVAL, 2 * (free - limit) / DISK_FAST_RATE))
        self._disk_timer = self.loop.call_later(interval, self._disk_tick)

    def check_disk(self) -> None:
        if self.disk_dir is None:
            return
        free = self.disk_free = self._safe_free(self.disk_dir)
        # As RabbitMQ: free space that cannot be read never sets the alarm.
        low = free is not None and free < self.disk_limit
        if low != (DISK in self.alarms):
            log.info("Free disk space is %s. Free bytes: %s. Limit: %d",
                     "insufficient" if low else "sufficient", free, self.disk_limit)
            self._set(DISK, low)

    def set_disk_limit(self, limit: Limit) -> None:
        """``set_disk_free_limit``: takes effect at once, as in RabbitMQ."""
        self.disk = limit
        self.disk_limit = limit.resolve(self.total_memory)
        log.info("Disk free limit set to %dMB", self.disk_limit // 1_000_000)
        if self._disk_timer is not None:
            self._disk_timer.cancel()
            self._disk_tick()

    # -- both --------------------------------------------------------------------------------
    def _set(self, source: str, on: bool) -> None:
        if on:
            self.alarms = self.alarms | {source}
            log.warning("%s resource limit alarm set on node %s. "
                        "*** Publishers will be blocked until this alarm clears ***",
                        source, self.node)
        else:
            self.alarms = self.alarms - {source}
            log.warning("%s resource limit alarm cleared on node %s", source, self.node)
        self.notify(self.alarms)

    def stop(self) -> None:
        for timer in (self._mem_timer, self._disk_timer):
            if timer is not None:
                timer.cancel()
        self._mem_timer = self._disk_timer = None
