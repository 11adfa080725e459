"""pytest plugin: a real Hutch broker for each test, no Docker, no Erlang.

Installed with hutch (entry point ``pytest11``), so any project's tests can ask for it:

    def test_my_worker(hutch_broker):
        conn = pika.BlockingConnection(pika.URLParameters(hutch_broker.url))
        ...
        assert hutch_broker.list_queues() == [{"name": "task_queue", ...}]

``hutch_broker`` is a started ``hutch.Broker`` (running in a thread, so sync and
async tests alike can use it) with a data dir of its own: ``url``,
``management_url``, ``ctl(...)``, ``list_queues()``, ``restart_sync()``.
Starting one takes a few hundred milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # keep pytest's start-up free of the broker's imports
    from .embedded import Broker


@pytest.fixture
def hutch_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A fresh Hutch per test: durable data in a temp dir, management API on."""
    from .embedded import Broker

    with Broker(data_dir=str(tmp_path_factory.mktemp("hutch-data"))) as broker:
        yield broker
