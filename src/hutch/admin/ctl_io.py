"""``hutch ctl``'s I/O: the management-API HTTP client and rabbitmqctl's output formats.

Output follows rabbitmqctl 3.10: informational banners go to stdout unless ``-q``,
and never with ``--formatter json`` (rabbitmqctl drops them for machine-readable
formatters, so stdout is JSON only); a command's one-line result (``Ping
succeeded``) is ``{"message": ...}`` in JSON, as rabbitmqctl's JSON formatter
wraps strings.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

DEFAULT_URL = "http://127.0.0.1:15672"
EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE, EX_SOFTWARE, EX_TEMPFAIL, EX_NOPERM = (
    64, 65, 67, 69, 70, 75, 77)


class CtlError(Exception):
    def __init__(self, message: str, code: int = EX_SOFTWARE) -> None:
        super().__init__(message)
        self.code = code


class HttpError(Exception):
    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason


# -- the HTTP client ----------------------------------------------------------------------------
class Client:
    def __init__(self, url: str, user: str, password: str, timeout: float = 60.0,
                 cookie: str | None = None) -> None:
        self.base = url.rstrip("/")
        self.user = user
        self.password = password
        self.timeout = timeout
        self.cookie = cookie  # the broker's local operator credential (see http_api)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None) -> Any:
        user, password = auth or (self.user, self.password)
        data = None if body is None else json.dumps(body).encode()
        if self.cookie and auth is None:
            authorization = f"Hutch-Cookie {self.cookie}"
        else:
            authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        req = urllib.request.Request(f"{self.base}/api/{path}", data=data, method=method,
                                     headers={"Authorization": authorization,
                                              "Content-Type": "application/json",
                                              **(headers or {})})
        context = None
        if self.cookie and self.base.startswith("https://"):
            # The broker wrote this loopback URL into its own cookie file: its
            # certificate names the host remote clients use, not 127.0.0.1, and the
            # cookie goes no further than it would over plain HTTP.
            context = ssl._create_unverified_context()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read() or b"{}")
            except ValueError:
                payload = {}
            raise HttpError(exc.code, str(payload.get("error", exc.reason)),
                            str(payload.get("reason", exc.reason))) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CtlError(f"unable to reach the Hutch management API at {self.base}/ ({reason}). "
                           "Is 'hutch serve' running with its HTTP port enabled?",
                           EX_UNAVAILABLE) from None
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)


def q(name: str) -> str:
    """One URL path segment: RabbitMQ's API wants '/' as %2F."""
    return quote(name, safe="")


# -- output -------------------------------------------------------------------------------------------
def erlang_term(value: Any) -> str:
    """Render like rabbitmqctl's table formatter: lists/tables as Erlang terms."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, dict):
        return "[" + ",".join(f'{{"{k}",{_inner(v)}}}' for k, v in value.items()) + "]"
    if isinstance(value, list):
        return "[" + ",".join(_inner(v) for v in value) + "]"
    return str(value)


def _inner(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return erlang_term(value)


class Output:
    def __init__(self, quiet: bool, formatter: str, headers: bool) -> None:
        self.quiet = quiet
        self.formatter = formatter
        self.headers = headers

    def info(self, line: str) -> None:
        """A banner: dropped by ``-q`` and by ``--formatter json`` (as rabbitmqctl)."""
        if not self.quiet and self.formatter != "json":
            print(line)

    def message(self, line: str, quiet_drops: bool = False) -> None:
        """A command's result in words (``Ping succeeded``), as ``{"message": ...}`` in
        JSON like rabbitmqctl's JSON formatter; ``quiet_drops``: ``-q`` drops it (the
        commands whose rabbitmqctl output is ``output_less?``)."""
        if quiet_drops and self.quiet:
            return
        if self.formatter == "json":
            print(json.dumps({"message": line}))
        else:
            print(line)

    def table(self, columns: list[str], rows: list[dict[str, Any]],
              fmt: Callable[[str, Any], str] | None = None) -> None:
        if self.formatter == "json":
            items = [json.dumps({c: r.get(c) for c in columns}, separators=(",", ":")) for r in rows]
            print("[\n" + "\n,".join(items) + ("\n" if items else "") + "]")
            return
        if not rows:
            return
        if self.headers:
            print("\t".join(columns))
        for r in rows:
            print("\t".join(fmt(c, r.get(c)) if fmt else erlang_term(r.get(c)) for c in columns))
