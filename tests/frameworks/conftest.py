"""Fixtures for the framework tests: real worker processes against the session broker
(``broker_url``: Hutch, or RabbitMQ when HUTCH_TEST_AMQP_URL is set).

``workers`` is a pool killed at the end of the test; ``module_workers`` one shared by a
test module, so a module pays a worker's start-up once.  See workerproc.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.frameworks.workerproc import Workers

# The frameworks read these before their apps' own settings (Celery prefers
# CELERY_BROKER_URL to Celery(broker=...)): a user's shell that sets one would send the
# tests, and every worker they start, to that broker instead of the session's.
for _var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "BROKER_URL",
             "DRAMATIQ_BROKER_URL", "AMQP_URL", "RABBITMQ_URL"):
    os.environ.pop(_var, None)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def module_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    pool = Workers(tmp_path_factory.mktemp("workers"))
    try:
        yield pool
    finally:
        pool.close()
