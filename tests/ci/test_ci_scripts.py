"""``.ci/run`` and ``.ci/rabbitmq.sh``: CI fails when it cannot prove compatibility, and
a RabbitMQ node starts whatever ports happen to be taken around it (real nodes here)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tests.brokerproc import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RABBIT = os.path.join(ROOT, ".ci", "rabbitmq.sh")
needs_rabbitmq = pytest.mark.skipif(
    not os.access("/usr/lib/rabbitmq/bin/rabbitmq-server", os.X_OK),
    reason="RabbitMQ is not installed here (.ci/rabbitmq.sh install)")


@contextmanager
def taken(*ports: int) -> Iterator[None]:
    """Hold these 127.0.0.1 ports (listening), as another program would."""
    socks = []
    try:
        for port in ports:
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            s.listen()
            socks.append(s)
        yield
    finally:
        for s in socks:
            s.close()


def script(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HUTCH_RABBIT", "CI"))}
    full.update(env, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=full,
                          cwd=ROOT)


def _amqp_port() -> int:
    """A free AMQP port whose +10000/+20000 neighbours exist (the script derives them)."""
    for _ in range(50):
        port = free_port()
        if port + 20000 <= 65000 and port + 20000 != 25672:
            return port
    pytest.skip("no suitable port")


def test_node_name_is_unique_per_dir(tmp_path) -> None:
    a = script(RABBIT, "node", env={"HUTCH_RABBIT_DIR": str(tmp_path / "a")}).stdout.strip()
    b = script(RABBIT, "node", env={"HUTCH_RABBIT_DIR": str(tmp_path / "b")}).stdout.strip()
    assert a != b and a.endswith("@localhost") and b.endswith("@localhost")
    assert script(RABBIT, "node", env={}).stdout.strip() == "hutchtest@localhost"
    given = script(RABBIT, "node", env={"HUTCH_RABBIT_DIR": str(tmp_path / "a"),
                                        "HUTCH_RABBIT_NODE": "mine@localhost"})
    assert given.stdout.strip() == "mine@localhost"


@needs_rabbitmq
def test_ci_run_fails_under_ci_when_rabbitmq_cannot_start(tmp_path) -> None:
    port = _amqp_port()
    env = {"HUTCH_RABBIT_DIR": str(tmp_path / "rabbit"), "HUTCH_CI_RABBIT_PORT": str(port)}
    with taken(port):  # RabbitMQ cannot listen: the compatibility run cannot happen
        ci = script(os.path.join(ROOT, ".ci", "run"), "compat", env=dict(env, CI="true"))
        local = script(os.path.join(ROOT, ".ci", "run"), "compat", env=env)
    assert ci.returncode != 0, ci.stdout + ci.stderr
    assert "compatibility NOT PROVEN" in ci.stderr
    assert local.returncode == 0, local.stdout + local.stderr
    assert "compatibility run SKIPPED" in local.stdout


@needs_rabbitmq
def test_node_starts_on_free_ports_when_the_derived_ones_are_taken(tmp_path) -> None:
    """AMQP+20000 (Erlang distribution) and AMQP+10000 (management) taken by someone else:
    the node takes other free ports instead of hanging until the timeout."""
    port = _amqp_port()
    env = {"HUTCH_RABBIT_DIR": str(tmp_path / "rabbit"), "HUTCH_RABBIT_TIMEOUT": "60",
           "HUTCH_RABBIT_PLUGINS": "rabbitmq_management"}
    try:
        with taken(port + 20000, port + 10000):
            r = script(RABBIT, "start", str(port), env=env)
            assert r.returncode == 0, r.stderr
            mgmt = int((tmp_path / "rabbit" / "mgmt_port").read_text())
            assert mgmt != port + 10000
            overview = requests.get(f"http://127.0.0.1:{mgmt}/api/overview",
                                    auth=("guest", "guest"), timeout=30)
            assert overview.status_code == 200
            assert overview.json()["node"] == script(RABBIT, "node", env=env).stdout.strip()
    finally:
        script(RABBIT, "stop", env=env)


@needs_rabbitmq
def test_start_gives_up_when_the_node_reports_boot_failed(tmp_path) -> None:
    """A listener the node cannot open fails its boot: the script says so at once rather
    than waiting out HUTCH_RABBIT_TIMEOUT (600 s here; the run is cut at 180 s)."""
    port = _amqp_port()
    prom = free_port()
    env = {"HUTCH_RABBIT_DIR": str(tmp_path / "rabbit"), "HUTCH_RABBIT_TIMEOUT": "600",
           "HUTCH_RABBIT_PLUGINS": "rabbitmq_prometheus", "HUTCH_RABBIT_PROM_PORT": str(prom)}
    try:
        with taken(prom):
            r = script(RABBIT, "start", str(port), env=env)
        assert r.returncode != 0
        assert "BOOT FAILED" in r.stderr
    finally:
        script(RABBIT, "stop", env=env)
