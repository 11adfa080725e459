"""Fixtures for management-API and ``hutch ctl`` tests."""

from __future__ import annotations

import os

import pytest

from tests.brokerproc import HutchProcess
from tests.conftest import EXTERNAL_URL
from tests.mgmt import Api
from tests.toolproc import hutch_cmd


@pytest.fixture
def api(http_url: str) -> Api:
    return Api(http_url)


@pytest.fixture
def private_hutch():
    """A Hutch of the test's own (with its management API), for tests that change
    guest or global state."""
    if EXTERNAL_URL:
        pytest.skip("needs its own Hutch process")
    with HutchProcess("--in-memory", http=True) as proc:
        yield proc


@pytest.fixture(scope="session")
def hutch_exe() -> list[str]:
    """How to run the checkout under test (never whatever ``hutch`` is first on PATH)."""
    return hutch_cmd()


@pytest.fixture
def ctl_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in ("HUTCH_URL", "HUTCH_USER", "HUTCH_PASSWORD"):
        env.pop(k, None)
    return env
