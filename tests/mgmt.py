"""A tiny management-API client for tests (requests + basic auth)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import requests


def seg(name: str) -> str:
    return quote(name, safe="")


class Api:
    def __init__(self, base: str, user: str = "guest", password: str = "guest") -> None:
        self.base = base.rstrip("/") + "/api/"
        self.auth = (user, password)
        self.http = requests.Session()

    def as_user(self, user: str, password: str) -> Api:
        return Api(self.base[: -len("api/")], user, password)

    def request(self, method: str, path: str, json: Any = None, **kw: Any) -> requests.Response:
        # RabbitMQ's management plugin sometimes drops a kept-alive connection (e.g. after a
        # 404 on a PUT): a fresh connection per request keeps the tests about the API.
        headers = {"Connection": "close", **kw.pop("headers", {})}
        return self.http.request(method, self.base + path, json=json, auth=self.auth, timeout=30,
                                 headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def put(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.request("PUT", path, json if json is not None else {}, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, json if json is not None else {}, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def ok(self, method: str, path: str, json: Any = None) -> Any:
        r = self.request(method, path, json)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def wait_for(self, path: str, predicate: Any, timeout: float = 15.0) -> Any:
        """RabbitMQ's statistics lag by up to 5 s: poll until ``predicate(json)`` holds."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            r = self.get(path)
            if r.status_code == 200:
                last = r.json()
                if predicate(last):
                    return last
            time.sleep(0.2)
        raise AssertionError(f"{path}: condition not met; last: {last!r}")

    # conveniences
    def add_user(self, name: str, password: str, tags: str = "") -> None:
        r = self.put(f"users/{seg(name)}", {"password": password, "tags": tags})
        assert r.status_code in (201, 204), r.text

    def set_permissions(self, vhost: str, user: str, configure: str = ".*", write: str = ".*",
                        read: str = ".*") -> None:
        r = self.put(f"permissions/{seg(vhost)}/{seg(user)}",
                     {"configure": configure, "write": write, "read": read})
        assert r.status_code in (201, 204), r.text
