"""Measure the memory alarm (README, Resource alarms): with the watermark at the idle
RSS + 64 MiB, how much one pika publisher gets in before it is blocked, how far RSS
is over the watermark when the alarm is detected, and whether it clears once a
consumer drains the queue.  From the checkout:

    PYTHONPATH=src python3 scripts/measure_memory_alarm.py
"""

from __future__ import annotations

import os
import re
import sys
import time

import pika

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.brokerproc import HutchProcess
from tests.mgmt import Api

MB = 1024 * 1024


def measure(size: int) -> str:
    proc = HutchProcess(http=True)
    proc.start()
    try:
        api = Api(proc.http_url)
        base = api.ok("GET", "nodes")[0]["mem_used"]
        api.ok("PUT", "hutch/vm-memory-high-watermark", {"absolute": base + 64 * MB})
        params = pika.URLParameters(proc.url)
        params.blocked_connection_timeout = 60
        pub = pika.BlockingConnection(params)
        events: list[tuple[str, float]] = []
        pub.add_on_connection_blocked_callback(lambda *_: events.append(("b", time.monotonic())))
        pub.add_on_connection_unblocked_callback(
            lambda *_: events.append(("u", time.monotonic())))
        ch = pub.channel()
        ch.queue_declare("m")
        body = b"x" * size
        sent = 0
        started = time.monotonic()
        while not events:  # one publish, then a look at what the broker said
            ch.basic_publish("", "m", body)
            sent += size
            pub.process_data_events(time_limit=0)
        blocked_at = events[0][1]
        cons = pika.BlockingConnection(pika.URLParameters(proc.url))
        cch = cons.channel()
        drained = 0
        while cch.basic_get("m", auto_ack=True)[0] is not None:
            drained += 1
        drained_at = time.monotonic()
        while events[-1][0] != "u" and time.monotonic() < drained_at + 20:
            pub.process_data_events(time_limit=0.02)
            while cch.basic_get("m", auto_ack=True)[0] is not None:
                drained += 1
        unblocked = (f"{max(0.0, events[-1][1] - drained_at):.2f} s after the drain"
                     if events[-1][0] == "u" else "NEVER")
        node = api.ok("GET", "nodes")[0]
        m = re.search(r"Memory used:(\d+) allowed:(\d+)", proc.log_text())
        assert m is not None
        used, allowed = int(m.group(1)), int(m.group(2))
        pub.close()
        cons.close()
        return (f"body {size // 1024} KiB: idle RSS {base / MB:.0f} MiB, watermark +64 MiB; "
                f"published {sent / MB:.0f} MiB in {blocked_at - started:.2f} s until blocked; "
                f"RSS at detection = watermark +{(used - allowed) / MB:.1f} MiB; drained "
                f"{drained} msgs; unblocked {unblocked}; RSS after {node['mem_used'] / MB:.0f} "
                f"MiB, alarm {node['mem_alarm']}")
    finally:
        proc.stop()


if __name__ == "__main__":
    for size in (16 * 1024, 256 * 1024):
        print(measure(size))
