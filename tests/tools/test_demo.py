"""``hutch demo`` end to end: a real subprocess, every claim checked, under a minute."""

from __future__ import annotations

import subprocess
import sys
import time


def test_demo_runs_every_step_and_exits_0():
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "hutch", "demo"], capture_output=True, text=True,
                       timeout=90)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert elapsed < 60
    out = r.stdout
    for title in ("1. Round-robin dispatch", "2. A worker dies mid-task", "3. Forgotten acknowledgment",
                  "4. Durable tasks survive a broker restart", "5. Fair dispatch with prefetch=1"):
        assert f"== {title}" in out
    checked = [line.strip() for line in out.splitlines() if line.strip().startswith("checked:")]
    for claim in ("worker 1 got First/Third/Fifth, worker 2 got Second/Fourth",
                  "task_queue: 0 ready, 3 unacknowledged while the consumer holds them",
                  "the 3 persistent tasks came back, in order; the 2 transient ones are gone",
                  "without a limit one worker got all 3 heavy tasks"):
        assert f"checked: {claim}" in checked
    assert "All claims checked" in out
    assert "\x1b[" not in out  # no colour when stdout is not a terminal
    assert r.stderr == ""
