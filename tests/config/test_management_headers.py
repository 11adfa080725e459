"""management.csp.policy, management.hsts.policy and management.headers.* in a real
configuration file, seen in a real broker's replies (UI and API alike)."""

from __future__ import annotations

import pytest
import requests

from hutch.admin.web_security import DEFAULT_CSP
from tests.brokerproc import HutchProcess, free_port

pytestmark = pytest.mark.hutch_only


def _headers(port: int, path: str) -> requests.structures.CaseInsensitiveDict:
    r = requests.get(f"http://127.0.0.1:{port}{path}", auth=("guest", "guest"), timeout=5)
    assert r.status_code == 200, r.text
    return r.headers


def test_header_keys_replace_the_defaults(tmp_path) -> None:
    http = free_port()
    conf = tmp_path / "hutch.conf"
    conf.write_text(f"""
management.tcp.port = {http}
management.tcp.ip = 127.0.0.1
prometheus.tcp.port = 0
hutch.in_memory = true
management.csp.policy = default-src 'self'; img-src 'self' https://cdn.example
management.hsts.policy = max-age=31536000; includeSubDomains
management.headers.frame_options = SAMEORIGIN
management.headers.content_type_options = nosniff
management.headers.xss_protection = 1; mode=block
management.headers.referrer_policy = same-origin
""")
    proc = HutchProcess("--config", str(conf), "--port", "0", base_flags=False)
    proc.start()
    try:
        for path in ("/api/overview", "/"):
            h = _headers(http, path)
            assert h["Content-Security-Policy"] == \
                "default-src 'self'; img-src 'self' https://cdn.example"
            assert h["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
            assert h["X-Frame-Options"] == "SAMEORIGIN"
            assert h["X-Content-Type-Options"] == "nosniff"
            assert h["X-XSS-Protection"] == "1; mode=block"
            assert h["Referrer-Policy"] == "same-origin"
        assert "management.csp.policy" not in proc.log_text()  # neither refused nor warned
    finally:
        proc.stop()


def test_defaults_without_the_keys(tmp_path) -> None:
    http = free_port()
    proc = HutchProcess("--in-memory", "--port", "0", "--http-port", str(http),
                        "--prometheus-port", "0", base_flags=False)
    proc.start()
    try:
        h = _headers(http, "/api/overview")
        assert h["Content-Security-Policy"] == DEFAULT_CSP
        assert h["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in h
    finally:
        proc.stop()


def test_an_unknown_header_key_refuses_to_start(tmp_path) -> None:
    conf = tmp_path / "hutch.conf"
    conf.write_text("management.headers.server = hutch\n")
    proc = HutchProcess("--config", str(conf), "--port", "0", "--http-port", "0",
                        "--prometheus-port", "0", base_flags=False)
    with pytest.raises(Exception):  # noqa: B017 - the process exits before it is ready
        proc.start()
    assert "management.headers.server" in proc.log_text()
