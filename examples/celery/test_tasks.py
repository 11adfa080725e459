"""Testing the app against a real broker with the ``hutch_broker`` fixture (installed with
hutch): a fresh Hutch per test, and a real ``celery worker`` process pointed at it.

    python -m pytest examples/celery/test_tasks.py

(Celery's in-thread ``celery.contrib.testing.worker.start_worker`` also works against
``hutch_broker.url``, but its loop wakes up only every 10 s, on RabbitMQ as well: its
countdown tasks and its shutdown each wait that long.)
"""

import os
import subprocess
import sys
from pathlib import Path

from tasks import add, app


def test_add_runs_on_a_real_worker(hutch_broker):
    app.conf.update(broker_url=hutch_broker.url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=Path(__file__).parent, env=dict(os.environ, CELERY_BROKER_URL=hutch_broker.url))
    try:
        assert add.delay(2, 3).get(timeout=30) == 5
        assert add.apply_async((4, 5), countdown=1).get(timeout=30) == 9
    finally:
        worker.terminate()
        worker.wait(30)
