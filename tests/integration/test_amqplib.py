"""Node's amqplib against the broker: confirms, prefetch, manual acks, a 404."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    if not (NODE_DIR / "node_modules" / "amqplib").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       capture_output=True, timeout=300)
    return NODE_DIR / "workqueue.js"


def test_amqplib_work_queue(broker_url: str, qname: str, node_client: Path) -> None:
    out = subprocess.run(["node", str(node_client), broker_url, qname], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert [s["body"] for s in result["seen"]] == [f"task {i}" for i in range(10)]
    assert [s["n"] for s in result["seen"]] == list(range(10))
    assert all(s["persistent"] and not s["redelivered"] for s in result["seen"])
    assert result["refused"] == 404
