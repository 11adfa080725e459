"""A working broker seen through the UI: the scene behind docs/ui-*.png.

Publishers, a consumer, a dead-letter queue and several queues run while the
overview and a queue page are opened; the pages must show the scene's numbers and
the charts must draw.  ``scripts/ui_screenshots.py`` runs this module with a longer
``HUTCH_UI_SCENE_SECONDS`` (so the charts have minutes of history) and copies the
two screenshots into docs/.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

SCENE_SECONDS = float(os.environ.get("HUTCH_UI_SCENE_SECONDS", "6"))


@pytest.fixture(scope="module")
def scene(hutch_ui: HutchProcess) -> Iterator[HutchProcess]:
    stop = threading.Event()
    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    ch = conn.channel()
    ch.exchange_declare("tasks.dlx", "fanout", durable=True)
    ch.queue_declare("tasks.dead", durable=True)
    ch.queue_bind("tasks.dead", "tasks.dlx")
    ch.queue_declare("tasks", durable=True, arguments={"x-dead-letter-exchange": "tasks.dlx"})
    ch.queue_declare("emails", durable=True, arguments={"x-max-priority": 5})
    ch.queue_declare("reports", durable=True, arguments={"x-message-ttl": 3_600_000})
    for i in range(40):
        ch.basic_publish("", "reports", f"report {i}".encode(),
                         pika.BasicProperties(delivery_mode=2))
    for i in range(12):
        ch.basic_publish("", "emails", f"email {i}".encode(), pika.BasicProperties(priority=i % 5))
    conn.close()

    def publisher() -> None:
        c = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
        p = c.channel()
        p.confirm_delivery()
        n = 0
        while not stop.is_set():
            p.basic_publish("", "tasks", b'{"job": %d}' % n,
                            pika.BasicProperties(delivery_mode=2, content_type="application/json"))
            n += 1
            c.sleep(0.02)
        c.close()

    def worker() -> None:
        c = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
        w = c.channel()
        w.basic_qos(prefetch_count=10)
        seen = [0]

        def on_message(chan, method, props, body) -> None:  # type: ignore[no-untyped-def]
            # A worker slower than the publisher (~33 jobs/s against 50): the queue grows
            # while its prefetch window stays full.
            time.sleep(0.03)
            seen[0] += 1
            if seen[0] % 25 == 0:  # a failing job goes to the dead-letter queue
                chan.basic_reject(method.delivery_tag, requeue=False)
            else:
                chan.basic_ack(method.delivery_tag)

        w.basic_consume("tasks", on_message)
        while not stop.is_set():
            c.process_data_events(0.1)
        c.close()

    threads = [threading.Thread(target=publisher, daemon=True),
               threading.Thread(target=worker, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(SCENE_SECONDS)
    try:
        yield hutch_ui
    finally:
        stop.set()
        for t in threads:
            t.join(5)


def test_overview_shows_the_scene(browser: Browser, scene: HutchProcess) -> None:
    browser.d.set_window_size(1366, 1000)
    try:
        browser.login()
        browser.open("")
        browser.wait_for(".page[data-page=overview]")
        browser.wait_until(lambda: browser.find_all("figure.chart canvas"), "the charts to draw")
        browser.wait_text("main", "Queued messages")
        time.sleep(0.5)  # let the charts finish laying out before the picture
        browser.shot("docs-overview")
    finally:
        browser.d.set_window_size(1366, 900)


def test_queue_page_shows_the_scene(browser: Browser, scene: HutchProcess) -> None:
    browser.d.set_window_size(1366, 1300)
    try:
        browser.login()
        browser.open("queues/%2F/tasks")
        browser.wait_for(".page[data-page=queue]")
        browser.wait_until(lambda: browser.find_all("figure.chart canvas"), "the charts to draw")
        browser.wait_text("main", "tasks.dlx")  # its dead-letter exchange argument
        time.sleep(0.5)
        browser.shot("docs-queue")
    finally:
        browser.d.set_window_size(1366, 900)
