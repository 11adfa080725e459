"""``hutch.Broker``: the embedded broker, async and in a thread; and the plugin seen
from another project (a pytest run in a fresh directory, through the entry point)."""

from __future__ import annotations

import subprocess
import sys

import aio_pika
import pika
import pytest

import hutch


async def test_async_context_manager_and_restart(tmp_path):
    # (How fast it starts is measured in bench/, not asserted here.)
    async with hutch.Broker(port=0, data_dir=str(tmp_path)) as b:
        url = b.url
        conn = await aio_pika.connect(b.url)
        ch = await conn.channel()
        await ch.declare_queue("jobs", durable=True)
        await ch.default_exchange.publish(
            aio_pika.Message(b"keep", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "jobs")
        await conn.close()
        await b.restart()
        assert b.url == url  # same port after a restart
        conn = await aio_pika.connect(b.url)
        q = await (await conn.channel()).declare_queue("jobs", durable=True)
        assert (await q.get(timeout=5)).body == b"keep"
        await conn.close()
        # ctl() blocks on HTTP: from the broker's own loop it says so instead of hanging.
        with pytest.raises(RuntimeError, match=r"asyncio\.to_thread"):
            b.ctl("list_queues")
        assert b.management_url is not None


def test_thread_mode_in_memory_without_management():
    with hutch.Broker(management=False) as b:
        assert b.management_url is None
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        conn.channel().queue_declare("q", durable=True)
        conn.close()
        b.restart_sync()  # nothing on disk: the durable queue is gone too
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            conn.channel().queue_declare("q", passive=True)
        conn.close()
    assert not b.running


def test_one_broker_per_data_dir(tmp_path):
    with hutch.Broker(data_dir=str(tmp_path), management=False):
        with pytest.raises(RuntimeError, match="in use by another hutch"):
            with hutch.Broker(data_dir=str(tmp_path), management=False):
                pass
    with hutch.Broker(data_dir=str(tmp_path), management=False):
        pass  # released on stop


def test_ctl_errors_raise_ctl_error(hutch_broker):
    with pytest.raises(hutch.CtlError) as info:
        hutch_broker.ctl("delete_queue", "no-such-queue")
    assert info.value.code == 69 and "not found" in str(info.value)


def test_plugin_works_for_another_project(tmp_path):
    (tmp_path / "test_theirs.py").write_text(
        "import pika\n"
        "def test_it(hutch_broker):\n"
        "    c = pika.BlockingConnection(pika.URLParameters(hutch_broker.url))\n"
        "    c.channel().queue_declare('task_queue', durable=True)\n"
        "    c.close()\n"
        "    assert [q['name'] for q in hutch_broker.list_queues()] == ['task_queue']\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "test_theirs.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
