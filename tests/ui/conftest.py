"""Browser tests: a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium against a real ``hutch serve``.

Each test module gets its own broker with the management port on a free port and
the UI at ``/``; the browser is shared by the session (a new one per module would
cost seconds).  After every test the browser's console is read: a script error or a
Content-Security-Policy violation fails the test, so a page that works only because
nobody looked at the console cannot pass.

Screenshots (``shot``) go under the session's temp dir, ``ui-screenshots/``, kept by
CI as artifacts; ``HUTCH_UI_SCREENSHOTS=DIR`` puts them in DIR instead
(``scripts/ui_screenshots.py`` uses that to refresh docs/).

Without Chromium the tests are skipped with the reason, except under ``CI=true``,
where a missing browser fails them: a green CI must mean the UI was driven.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.brokerproc import HutchProcess
from tests.conftest import EXTERNAL_URL

CHROMIUM = os.environ.get("HUTCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HUTCH_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 10.0


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    mine = [i for i in items if str(i.fspath).startswith(here)]
    if not mine:
        return
    if EXTERNAL_URL:
        # The UI is Hutch's: against RabbitMQ there is nothing of ours to drive.
        for item in mine:
            item.add_marker(pytest.mark.skip(reason="the web UI is Hutch's own"))
        return
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        for item in mine:
            item.add_marker(pytest.mark.usefixtures("_browser_required"))
        return
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def _browser_required() -> None:
    pytest.fail(f"CI=true but the browser tests cannot run: {_missing()}")


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = os.environ.get("HUTCH_UI_SCREENSHOTS") or str(tmp_path_factory.mktemp("ui-screenshots"))
    os.makedirs(path, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def driver() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="hutch-ui-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # What this machine's closed network needs (no background connections), and a
    # laptop-sized window for the screenshots.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--window-size=1366,900", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.implicitly_wait(0)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def hutch_ui() -> Iterator[HutchProcess]:
    """A broker of this module's own, in memory, with its management port and UI."""
    with HutchProcess("--in-memory", http=True) as proc:
        yield proc


class Browser:
    """What a test does with the page, in the user's terms."""

    def __init__(self, driver: Any, base: str, shots: str) -> None:
        self.d = driver
        self.base = base.rstrip("/")
        self.shots = shots

    # -- navigation -------------------------------------------------------------------
    def open(self, fragment: str = "") -> None:
        self.d.get(self.base + "/#/" + fragment.lstrip("/"))

    def go(self, fragment: str) -> None:
        """Follow an in-page link (no reload): the session stays logged in."""
        self.d.execute_script("location.hash = arguments[0]", "#/" + fragment.lstrip("/"))

    def login(self, user: str = "guest", password: str = "guest") -> None:
        """Log in from a blank page.  The page a previous test left keeps refreshing
        (perhaps against a broker that is gone: connection refused), and loading ``/``
        with credentials still stored starts the app, whose first requests could leave
        after they are cleared (a 401): so forget them and leave that page first; what
        it logged on the way out is not this test's."""
        if self.d.current_url.startswith(self.base):
            self.d.execute_script("sessionStorage.clear()")
        self.d.get("about:blank")
        self.console_errors()
        self.d.get(self.base + "/")
        self.fill("#login [name=username]", user)
        self.fill("#login [name=password]", password)
        self.click("#login button[type=submit]")
        self.wait_for("#whoami")

    def login_once(self) -> None:
        """Log in unless this broker's tab already is: the login stays in the tab's
        sessionStorage, so a module's later tests only open their page."""
        if self.d.current_url.startswith(self.base) and self.d.execute_script(
                "return sessionStorage.getItem('hutch.auth') !== null"):
            return
        self.login()

    # -- finding and waiting ------------------------------------------------------------
    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By
        return self.d.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = check()
                if value:
                    return value
            except Exception as exc:  # stale elements while the page refreshes
                last = exc
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else "")
                             + f"\npage text:\n{self.text('body')[:3000]}")

    def wait_for(self, css: str, timeout: float = WAIT) -> Any:
        return self.wait_until(lambda: self.find_all(css) and self.find(css), css, timeout)

    def wait_text(self, css: str, text: str, timeout: float = WAIT) -> Any:
        return self.wait_until(lambda: text in self.text(css), f"{text!r} in {css}", timeout)

    def text(self, css: str) -> str:
        els = self.find_all(css)
        return "\n".join(e.text for e in els)

    # -- acting -----------------------------------------------------------------------------
    def fill(self, css: str, value: str) -> None:
        el = self.wait_for(css)
        el.clear()
        el.send_keys(value)

    def choose(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select
        Select(self.wait_for(css)).select_by_value(value)

    def click(self, css: str) -> None:
        self.wait_for(css).click()

    def accept_confirm(self, timeout: float = WAIT) -> str:
        alert = self.wait_until(lambda: self.d.switch_to.alert, "a confirmation", timeout)
        text = alert.text
        alert.accept()
        return text

    def shot(self, name: str) -> str:
        path = os.path.join(self.shots, name + ".png")
        self.d.save_screenshot(path)
        return path

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]


@pytest.fixture
def browser(driver: Any, hutch_ui: HutchProcess, screenshot_dir: str) -> Iterator[Browser]:
    b = Browser(driver, hutch_ui.http_url, screenshot_dir)
    b.console_errors()  # drop what earlier tests left
    yield b
    errors = b.console_errors()
    assert not errors, "the browser console reported errors:\n" + "\n".join(errors)



@pytest.fixture
def channel(hutch_ui: HutchProcess) -> Iterator[Any]:
    """A pika channel on the module's broker."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(hutch_ui.url))
    try:
        yield conn.channel()
    finally:
        if conn.is_open:
            conn.close()


def add_user(hutch: HutchProcess, name: str, tags: str, password: str = "pw") -> None:
    """A user with these tags and every permission on "/", made through the API."""
    import requests

    base = hutch.http_url + "api/"
    r = requests.put(base + "users/" + name, json={"password": password, "tags": tags},
                     auth=("guest", "guest"), timeout=5)
    assert r.status_code in (201, 204), r.text
    r = requests.put(base + "permissions/%2F/" + name, auth=("guest", "guest"), timeout=5,
                     json={"configure": ".*", "write": ".*", "read": ".*"})
    assert r.status_code in (201, 204), r.text
