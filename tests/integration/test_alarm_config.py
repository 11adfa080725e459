"""The alarm thresholds given at start: ``hutch serve`` flags and rabbitmq.conf keys
(``vm_memory_high_watermark.relative/.absolute``, ``disk_free_limit.absolute/.relative``)
loaded from a real file, their effect on a real publisher, and where an operator
sees the alarms: /api/nodes, health checks, ``hutch ctl status``, Prometheus."""

from __future__ import annotations

import subprocess
import time

import pika
import pytest
import requests

from tests.brokerproc import HutchProcess
from tests.mgmt import Api
from tests.toolproc import hutch_cmd

pytestmark = pytest.mark.hutch_only
PETABYTE = 1000**5


def _blocked_reason(url: str, api: Api) -> str:
    """Publish once; the reason of the connection.blocked that follows.  The alarms
    are then cleared (a blocked connection is not read, so its close would wait)."""
    params = pika.URLParameters(url)
    params.blocked_connection_timeout = 30
    conn = pika.BlockingConnection(params)
    reasons: list[str] = []
    conn.add_on_connection_blocked_callback(lambda _c, f: reasons.append(f.method.reason))
    try:
        ch = conn.channel()
        ch.queue_declare("alarm-config")
        ch.basic_publish("", "alarm-config", b"x")
        deadline = time.monotonic() + 10
        while not reasons:
            assert time.monotonic() < deadline, "never blocked"
            conn.process_data_events(time_limit=0.05)
        api.ok("PUT", "hutch/vm-memory-high-watermark", {"relative": 0.6})
        api.ok("PUT", "hutch/disk-free-limit", {"absolute": "50MB"})
        return reasons[0]
    finally:
        conn.close()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def test_config_file_thresholds_take_effect(tmp_path) -> None:
    conf = tmp_path / "hutch.conf"
    conf.write_text(
        "# both memory keys: absolute wins, as in RabbitMQ\n"
        "vm_memory_high_watermark.relative = 0.9\n"
        "vm_memory_high_watermark.absolute = 1MB\n"
        "disk_free_limit.absolute = 1000000GB\n"
        "vm_memory_high_watermark_paging_ratio = 0.5\n")
    proc = HutchProcess("--config", str(conf), http=True, prometheus=True)
    proc.start()
    try:
        assert "vm_memory_high_watermark_paging_ratio is not supported" in proc.log_text()
        api = Api(proc.http_url)
        node = api.ok("GET", "nodes")[0]
        assert (node["mem_limit"], node["mem_alarm"]) == (1_000_000, True)
        assert (node["disk_free_limit"], node["disk_free_alarm"]) == (PETABYTE, True)
        assert node["vm_memory_high_watermark"] == {"absolute": 1_000_000}
        body = api.get("health/checks/local-alarms").json()
        assert body["reason"] == "There are alarms in effect on the node"
        assert [a["resource"] for a in body["alarms"]] == ["disk space", "memory"]
        # hutch ctl status shows them as rabbitmqctl status does.
        r = subprocess.run([*hutch_cmd("ctl", "--url", proc.http_url), "status"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        name = node["name"]
        assert (f"Alarms\n\nFree disk space alarm on node {name}\nMemory alarm on node {name}\n"
                in r.stdout)
        assert "Memory high watermark setting: 0.0010 gb, computed to: 0.0010 gb" in r.stdout
        assert "Low free disk space watermark: 1000000.0000 gb" in r.stdout
        metrics = requests.get(proc.prometheus_url + "metrics", timeout=10).text
        assert _metric(metrics, "rabbitmq_alarms_memory_used_watermark") == 1
        assert _metric(metrics, "rabbitmq_alarms_free_disk_space_watermark") == 1
        assert _metric(metrics, "rabbitmq_resident_memory_limit_bytes") == 1_000_000
        assert _metric(metrics, "rabbitmq_disk_space_available_limit_bytes") == PETABYTE
        assert _blocked_reason(proc.url, api) == "low on disk & memory"
    finally:
        proc.stop()


def test_flags_override_the_file_and_in_memory_has_no_disk_alarm(tmp_path) -> None:
    conf = tmp_path / "hutch.conf"
    conf.write_text("vm_memory_high_watermark.absolute = 1MB\n"
                    "disk_free_limit.relative = 1000000\n")  # a million times RAM
    proc = HutchProcess("--config", str(conf), "--memory-high-watermark", "0.5", "--in-memory",
                        http=True)
    proc.start()
    try:
        node = Api(proc.http_url).ok("GET", "nodes")[0]
        # The flag's relative watermark, of the machine's (or cgroup's) memory.
        assert node["vm_memory_high_watermark"] == {"relative": 0.5}
        assert node["mem_limit"] == node["total_memory"] // 2
        assert node["mem_alarm"] is False
        # The file's disk limit, but --in-memory writes nothing: no disk alarm.
        assert node["disk_free_limit"] == node["total_memory"] * 1000000
        assert node["disk_free_alarm"] is False
        assert Api(proc.http_url).get("health/checks/alarms").json() == {"status": "ok"}
    finally:
        proc.stop()


def test_disk_free_limit_flag_blocks_and_bad_values_refuse_to_start(tmp_path) -> None:
    proc = HutchProcess("--disk-free-limit", "1000000GB", http=True)
    proc.start()
    try:
        assert _blocked_reason(proc.url, Api(proc.http_url)) == "low on disk"
        assert proc.wait_for_log("disk resource limit alarm set")
    finally:
        proc.stop()
    for args, text in ((["--memory-high-watermark", "1.5"], "between 0.0 and 1.0"),
                       (["--disk-free-limit", "50XB"], "invalid size '50XB'")):
        r = subprocess.run(hutch_cmd("serve", "--port", "0", "--http-port", "0",
                                     "--prometheus-port", "0", "--in-memory", *args),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and text in r.stderr, r.stderr
    conf = tmp_path / "bad.conf"
    conf.write_text("disk_free_limit.absolute = lots\n")
    r = subprocess.run(hutch_cmd("serve", "--port", "0", "--http-port", "0", "--prometheus-port",
                                 "0", "--in-memory", "--config", str(conf)),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and f"{conf}:1" in r.stderr and "invalid size 'lots'" in r.stderr, \
        r.stderr
