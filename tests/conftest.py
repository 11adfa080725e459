"""Test session plumbing: which broker the wire tests talk to.

``HUTCH_TEST_AMQP_URL`` set  -> every wire test runs against that broker (e.g. a
real RabbitMQ started by ``.ci/rabbitmq.sh``); tests marked ``hutch_only`` skip.
Unset -> the session starts its own ``hutch serve`` on a free port.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.brokerproc import HutchProcess

EXTERNAL_URL = os.environ.get("HUTCH_TEST_AMQP_URL")
EXTERNAL_HTTP_URL = os.environ.get("HUTCH_TEST_HTTP_URL")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hutch_only: Hutch-specific behaviour, skipped against RabbitMQ")


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
def qname(request: pytest.FixtureRequest) -> str:
    """A queue/exchange name unique to this test (brokers are shared across tests)."""
    return f"test.{request.node.name[:60]}.{uuid.uuid4().hex[:8]}"
