"""Test session plumbing: which broker the wire tests talk to.

``HUTCH_TEST_AMQP_URL`` set  -> every wire test runs against that broker (e.g. a
real RabbitMQ started by ``.ci/rabbitmq.sh``); tests marked ``hutch_only`` skip.
Unset -> the session starts its own ``hutch serve`` on a free port.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from urllib.parse import urlparse

import pytest

from tests.brokerproc import HutchProcess

EXTERNAL_URL = os.environ.get("HUTCH_TEST_AMQP_URL")
EXTERNAL_HTTP_URL = os.environ.get("HUTCH_TEST_HTTP_URL")


# The user's own broker may be running while the tests run (the README's first command):
# the tests must never touch its data dir or its ports.  Anything that would fall back
# to the default data dir gets a throw-away one instead, and every connection this
# process makes is checked against the default ports (sys.addaudithook sees them all).
DEFAULT_PORTS = {5672, 5671, 15672, 15692}
_USER_DATA_DIR = os.environ.get("HUTCH_DATA_DIR") or os.path.join(
    os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share"),
    "hutch")
_default_port_connections: list[tuple[str, int]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and len(args) > 1 and isinstance(args[1], tuple):
        host, port = args[1][0], args[1][1]
        if port in DEFAULT_PORTS and host in ("127.0.0.1", "::1", "localhost"):
            _default_port_connections.append((host, port))


def _listing(path: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            try:
                out[full] = os.stat(full).st_mtime
            except OSError:
                pass
    return out


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hutch_only: Hutch-specific behaviour, skipped against RabbitMQ")
    config._hutch_user_dir = _listing(_USER_DATA_DIR)  # type: ignore[attr-defined]
    os.environ["HUTCH_DATA_DIR"] = tempfile.mkdtemp(prefix="hutch-test-default-")
    sys.addaudithook(_audit)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = []
    if _listing(_USER_DATA_DIR) != getattr(session.config, "_hutch_user_dir", {}):
        problems.append(f"the tests changed the user's data dir {_USER_DATA_DIR}")
    external = {p for u in (EXTERNAL_URL, EXTERNAL_HTTP_URL) if u for p in [urlparse(u).port]}
    hits = [hp for hp in _default_port_connections if hp[1] not in external]
    if hits:
        problems.append(f"the tests connected to default ports: {sorted(set(hits))}")
    if problems:
        print("\n".join(["", *problems]), file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not EXTERNAL_URL:
        return
    skip = pytest.mark.skip(reason="Hutch-only behaviour (HUTCH_TEST_AMQP_URL points elsewhere)")
    for item in items:
        if "hutch_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def session_hutch():
    """The session's shared Hutch (AMQP + management API), or None against RabbitMQ."""
    if EXTERNAL_URL:
        yield None
        return
    proc = HutchProcess(http=True)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def broker_url(session_hutch) -> str:
    """AMQP URL of the broker under test (guest/guest, vhost '/')."""
    return EXTERNAL_URL or session_hutch.url


@pytest.fixture(scope="session")
def http_url(session_hutch) -> str:
    """Management API base URL (``http://host:port/``) of the same broker.

    ``HUTCH_TEST_HTTP_URL`` points it at RabbitMQ's management plugin; with only
    ``HUTCH_TEST_AMQP_URL`` set, management tests skip."""
    if EXTERNAL_HTTP_URL:
        return EXTERNAL_HTTP_URL.rstrip("/") + "/"
    if EXTERNAL_URL:
        pytest.skip("HUTCH_TEST_HTTP_URL is not set (RabbitMQ management API unknown)")
    return session_hutch.http_url


@pytest.fixture(scope="session")
def against_rabbitmq() -> bool:
    return bool(EXTERNAL_URL)


@pytest.fixture
def hutch():
    """A private Hutch process for tests that restart, kill or reconfigure it."""
    if EXTERNAL_URL:
        pytest.skip("needs its own Hutch process")
    proc = HutchProcess()
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def hutch_http():
    """A private Hutch process with its management API (for tests that read its state
    over HTTP or its log); skipped against RabbitMQ."""
    if EXTERNAL_URL:
        pytest.skip("needs its own Hutch process")
    proc = HutchProcess(http=True)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def qname(request: pytest.FixtureRequest) -> str:
    """A queue/exchange name unique to this test (brokers are shared across tests)."""
    return f"test.{request.node.name[:60]}.{uuid.uuid4().hex[:8]}"
