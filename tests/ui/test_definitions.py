"""Admin > Definitions: export to a downloaded file (fetched with the session's
Authorization header, saved from a Blob), delete a queue, import the file through the
page: the queue is back.  A malformed file is refused before anything is sent."""

from __future__ import annotations

import glob
import json
import os
import uuid
from pathlib import Path

import pika
import pika.exceptions
import pytest
import requests

from tests.brokerproc import HutchProcess
from tests.ui.conftest import Browser

GUEST = ("guest", "guest")


def api(hutch: HutchProcess, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, hutch.http_url + "api/" + path, auth=GUEST, timeout=5, **kw)


def queue_exists(hutch: HutchProcess, name: str) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(hutch.url))
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    finally:
        conn.close()


def test_export_then_import_brings_a_deleted_queue_back(
        browser: Browser, hutch_ui: HutchProcess, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    queue, user = f"defs-q-{tag}", f"defs-u-{tag}"
    assert api(hutch_ui, "PUT", f"queues/%2F/{queue}", json={"durable": True}).ok
    assert api(hutch_ui, "PUT", f"users/{user}", json={"password": "pw", "tags": "monitoring"}).ok
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.d.execute_cdp_cmd("Browser.setDownloadBehavior",
                              {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        browser.login()
        browser.open("definitions")
        browser.wait_for("#download-definitions")
        filename = browser.find("#main [name=filename]").get_attribute("value")
        assert filename.endswith(".json") and "@" not in filename
        browser.shot("definitions")
        browser.click("#download-definitions")
        path = str(downloads / filename)
        browser.wait_until(lambda: os.path.exists(path) and not glob.glob(str(downloads / "*.crdownload")),
                           f"the download {filename}")
    finally:
        browser.d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "default"})
    with open(path, encoding="utf-8") as f:
        defs = json.load(f)
    assert queue in [q["name"] for q in defs["queues"]]
    assert user in [u["name"] for u in defs["users"]]
    # The credentials never went into a URL: the page fetched the JSON itself.
    assert "guest:guest" not in browser.d.current_url

    assert api(hutch_ui, "DELETE", f"queues/%2F/{queue}").status_code == 204
    assert not queue_exists(hutch_ui, queue)
    browser.find("#upload-definitions [name=file]").send_keys(path)
    browser.click("#upload-definitions button[type=submit]")
    browser.wait_text("#main .import-result", "imported")
    assert queue_exists(hutch_ui, queue)


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "not a definitions object"),
])
def test_a_malformed_file_is_refused_before_sending(
        browser: Browser, hutch_ui: HutchProcess, tmp_path: Path, content: str, words: str) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text(content, encoding="utf-8")
    browser.login()
    browser.open("definitions")
    browser.wait_for("#upload-definitions")
    browser.find("#upload-definitions [name=file]").send_keys(str(bad))
    browser.click("#upload-definitions button[type=submit]")
    browser.wait_text("#notices [role=alert]", words)
    assert "imported" not in browser.text("#main .import-result")


def test_a_definitions_file_the_broker_refuses_is_shown_in_words(
        browser: Browser, hutch_ui: HutchProcess, tmp_path: Path) -> None:
    bad = tmp_path / "refused.json"
    bad.write_text(json.dumps({"queues": "not a list"}), encoding="utf-8")
    browser.login()
    browser.open("definitions")
    browser.wait_for("#upload-definitions")
    browser.find("#upload-definitions [name=file]").send_keys(str(bad))
    browser.click("#upload-definitions button[type=submit]")
    browser.wait_text("#notices [role=alert]", "'queues' must be a list of objects")
    browser.console_errors()  # Chromium logs the refused POST itself as a failed load
    assert "imported" not in browser.text("#main .import-result")
