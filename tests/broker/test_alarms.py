"""broker/alarms.py in-process: RabbitMQ's size units, the thresholds' syntax, the
cgroup limits (a fake /proc and /sys), and the memory alarm's hysteresis and
estimate with RSS fed by the test."""

from __future__ import annotations

import asyncio
import os

import pytest

from hutch.broker import alarms
from hutch.broker.alarms import (
    Limit,
    ResourceMonitor,
    cgroup_memory_limit,
    disk_free_limit,
    memory_watermark,
    parse_information_unit,
)


@pytest.mark.parametrize(("text", "value"), [
    ("1073741824", 1073741824), ("1024MiB", 1024 * 1024**2), ("1024Mi", 1024**3),
    ("2GB", 2 * 10**9), ("2G", 2 * 10**9), ("2gb", 2 * 10**9), ("500MB", 500 * 10**6),
    ("50000kB", 50 * 10**6), ("1k", 1000), ("3KiB", 3072), ("1TB", 10**12), ("2GiB", 2 * 1024**3),
])
def test_information_units_as_rabbitmq_4(text: str, value: int) -> None:
    assert parse_information_unit(text) == value


@pytest.mark.parametrize("text", ["", "1.5GB", "-1", "10XB", "GB", "1 GB x"])
def test_bad_information_units(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_information_unit(text)


def test_flag_syntax() -> None:
    assert memory_watermark("0.6") == Limit("relative", 0.6)
    assert memory_watermark("2GB") == Limit("absolute", 2 * 10**9)
    assert memory_watermark("100000") == Limit("absolute", 100000)
    with pytest.raises(ValueError, match=r"between 0\.0 and 1\.0"):
        memory_watermark("1.5")
    assert disk_free_limit("50MB") == Limit("absolute", 50 * 10**6)
    assert disk_free_limit("mem_relative:1.5") == Limit("mem_relative", 1.5)
    assert disk_free_limit("2.0") == Limit("mem_relative", 2.0)
    assert Limit("relative", 0.5).resolve(1000) == 500
    assert Limit("mem_relative", 1.5).resolve(1000) == 1500
    # str() is the flag's syntax again (what an effective configuration shows).
    for limit in (Limit("relative", 0.6), Limit("absolute", 2 * 10**9)):
        assert memory_watermark(str(limit)) == limit
    for limit in (Limit("mem_relative", 1.5), Limit("mem_relative", 2.0), Limit("absolute", 5)):
        assert disk_free_limit(str(limit)) == limit


def _write(root: str, path: str, text: str) -> None:
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def test_cgroup_v2_limit_is_the_smallest_of_the_cgroup_and_its_ancestors(tmp_path) -> None:
    root = str(tmp_path)
    _write(root, "proc/self/cgroup", "0::/system.slice/hutch.service\n")
    _write(root, "sys/fs/cgroup/system.slice/hutch.service/memory.max", "max\n")
    _write(root, "sys/fs/cgroup/system.slice/memory.max", "2147483648\n")
    assert cgroup_memory_limit(root) == 2 * 1024**3
    _write(root, "sys/fs/cgroup/system.slice/hutch.service/memory.max", "536870912\n")
    assert cgroup_memory_limit(root) == 512 * 1024**2
    assert alarms.total_memory(root) == 512 * 1024**2


def test_cgroup_v1_limit_and_unlimited(tmp_path) -> None:
    root = str(tmp_path)
    _write(root, "proc/self/cgroup", "5:cpu:/\n4:memory:/docker/abc\n0::/\n")
    _write(root, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n")
    _write(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert cgroup_memory_limit(root) is None
    # Inside a container the mount's root is the container's own cgroup.
    _write(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n")
    assert cgroup_memory_limit(root) == 1024**3
    _write(root, "proc/self/cgroup", "")
    assert cgroup_memory_limit(root) is None


async def test_memory_alarm_hysteresis_and_estimate(monkeypatch) -> None:
    """Set above the watermark, cleared only under 95% of it; between two samples, the
    message bytes taken in make RSS be sampled as soon as they could cross it."""
    loop = asyncio.get_running_loop()
    rss = [500]
    samples = []

    def fake_rss() -> int:
        samples.append(rss[0])
        return rss[0]
    monkeypatch.setattr(alarms, "rss", fake_rss)
    changes: list[frozenset[str]] = []
    queued = [0]
    mon = ResourceMonitor(loop, changes.append, lambda: queued[0],
                          memory=Limit("absolute", 1000))
    try:
        mon._trim = None  # nothing to give back here
        assert mon.mem_limit == 1000 and mon.alarms == frozenset()
        # 500 bytes of room, but never less than MIN_RESAMPLE_STEP of estimate.
        assert mon.resample_at == alarms.MIN_RESAMPLE_STEP
        rss[0] = 1001
        mon.check_memory()
        assert changes == [frozenset({"memory"})]
        assert mon.resample_at == float("inf")  # alarmed: only the timer samples
        for level in (999, 960, 951):
            rss[0] = level
            mon.check_memory()
        assert changes == [frozenset({"memory"})]
        rss[0] = 949
        mon.check_memory()
        assert changes[-1] == frozenset()
        # An absolute watermark is capped at the memory available, as RabbitMQ's.
        mon.set_memory_watermark(Limit("absolute", 10**18))
        assert mon.mem_limit == mon.total_memory
        # The estimate: past resample_at a sample is taken on the loop's next turn.
        mon.set_memory_watermark(Limit("absolute", 4 * alarms.MIN_RESAMPLE_STEP))
        before = len(samples)
        queued[0] = int(mon.resample_at) + 1
        mon.check_soon()
        mon.check_soon()  # coalesced
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(samples) == before + 1
    finally:
        mon.stop()
