"""The channels pages: prefetch, unacknowledged messages, the confirm/transactional mode
and a channel's consumers, as pika leaves them."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import pika
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser


def channels_of(hutch: HutchProcess, given: str) -> list[dict[str, Any]]:
    conns = requests.get(hutch.http_url.rstrip("/") + "/api/connections", auth=("guest", "guest"),
                         timeout=5).json()
    name = next(c["name"] for c in conns if c["client_properties"].get("connection_name") == given)
    return requests.get(hutch.http_url.rstrip("/") + f"/api/connections/{quote(name, safe='')}/channels",
                        auth=("guest", "guest"), timeout=5).json()


def test_prefetch_unacked_mode_and_consumers(browser: Browser, hutch_ui: HutchProcess) -> None:
    tag = uuid.uuid4().hex[:6]
    given, queue = f"chan-test-{tag}", f"work-{tag}"
    params = pika.URLParameters(hutch_ui.url)
    params.client_properties = {"connection_name": given}
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue)
        for i in range(3):
            ch.basic_publish("", queue, f"m{i}".encode())
        ch.basic_qos(prefetch_count=7)
        got: list[bytes] = []
        ctag = ch.basic_consume(queue, lambda c, m, p, body: got.append(body), consumer_tag=f"ctag-{tag}")
        tx = conn.channel()
        tx.tx_select()
        while len(got) < 3:
            conn.process_data_events(0.1)
        chans = {c["number"]: c for c in channels_of(hutch_ui, given)}
        confirm_name, tx_name = chans[ch.channel_number]["name"], chans[tx.channel_number]["name"]

        browser.login()
        browser.go("channels")
        row = f"[data-table=channels] tr[data-key='{confirm_name}']"
        browser.wait_for(row)
        cells = [td.text for td in browser.find_all(row + " td")]
        # Channel, vhost, user, mode, state, unconfirmed, prefetch, unacked, rates...
        assert cells[1:8] == ["/", "guest", "C", "running", "0", "7", "3"], cells
        tx_cells = [td.text for td in browser.find_all(f"[data-table=channels] tr[data-key='{tx_name}'] td")]
        assert tx_cells[3] == "T" and tx_cells[7] == "0", tx_cells
        browser.shot("channels")

        browser.click(row + " a.channel-link")
        browser.wait_text("#channel-name", confirm_name)
        browser.wait_text("[data-table=consumers]", ctag)
        consumer = browser.text("[data-table=consumers] tbody tr")
        assert queue in consumer and "yes" in consumer and "7" in consumer
        link = browser.find(f"[data-table=consumers] a[href='#/queues/%2F/{queue}']")
        assert link.text == queue
        facts = browser.text(".channel-facts")
        assert "Prefetch count\n7" in facts and "Messages unacknowledged\n3" in facts
        assert "confirm" in facts and given not in facts  # the connection is linked by its name
        browser.shot("channel")
    finally:
        conn.close()
