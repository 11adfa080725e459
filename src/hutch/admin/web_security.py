"""What keeps a browser from being turned against the management port.

Two things, applied to every reply of the management port (UI and API alike):

* **Headers.**  RabbitMQ sends ``Content-Security-Policy``, ``X-Frame-Options``
  and friends only when ``management.csp.policy`` / ``management.headers.*``
  set them (``rabbit_mgmt_headers``).  Hutch sends safe ones by default,
  because its UI is built for them (no inline script or style, nothing from
  another origin), and lets the same keys replace them; ``management.hsts.policy``
  adds ``Strict-Transport-Security`` as in RabbitMQ (README, Known differences).

* **Cross-site requests.**  The API takes HTTP basic auth, which a browser
  may replay on its own (credentials typed into its login prompt are resent
  to the origin).  A page on another site could then make the browser POST a
  form to ``/api/...``.  So a request that may change something (any method
  but GET, HEAD and OPTIONS) is refused with 403 when the browser says it
  comes from another site: ``Sec-Fetch-Site`` other than ``same-origin`` or
  ``none``, or an ``Origin`` that is not this server's own.  Browsers send one
  of them on every such request; curl, rabbitmqadmin and client libraries send
  neither and are not affected.  RabbitMQ has no such check (its CORS setting
  only widens access).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

# No inline script or style and nothing from another origin: the UI's own files only.
# uPlot sets element styles from script (CSSOM), which style-src does not restrict.
DEFAULT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
               "form-action 'self'; frame-ancestors 'none'")

DEFAULT_HEADERS = {
    "Content-Security-Policy": DEFAULT_CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CROSS_SITE_REASON = "cross-site request refused: state-changing requests must come from this origin"
REBINDING_REASON = ("the Host header names another host: a request from this machine must "
                    "address it as localhost, by IP address or by its own host name")


@dataclass
class SecurityHeaders:
    """The headers every reply carries; ``configure`` applies the rabbitmq.conf keys."""

    headers: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_HEADERS))

    def configure(self, csp: str | None = None, hsts: str | None = None,
                  extra: Mapping[str, str] | None = None) -> None:
        """``management.csp.policy``, ``management.hsts.policy`` and
        ``management.headers.{content_type_options,frame_options,referrer_policy,
        xss_protection}`` (given here by header name)."""
        if csp is not None:
            self.headers["Content-Security-Policy"] = csp
        if hsts is not None:
            self.headers["Strict-Transport-Security"] = hsts
        for name, value in (extra or {}).items():
            self.headers[name] = value

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        for name, value in self.headers.items():
            response.headers.setdefault(name, value)


def cross_site(request: web.Request) -> bool:
    """True for a state-changing request a browser says comes from another site."""
    if request.method in SAFE_METHODS:
        return False
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        # Set by the browser itself (no page can forge it), and right behind a reverse
        # proxy that terminates TLS or rewrites Host, where Origin would not match
        # the scheme and host this server sees.
        return site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = f"{request.scheme}://{request.host}"
    return origin.rstrip("/").lower() != own.lower()


# -- DNS rebinding -----------------------------------------------------------------------------
# A page on evil.example can make its name resolve to 127.0.0.1 and then talk to this
# port as "its own" origin, sending guest/guest, which loopback accepts.  What gives it
# away is the Host header: a browser sends the name it resolved.  So a request from a
# loopback peer must name this machine: localhost, an IP address, or the host's own name
# (Debian maps it to 127.0.1.1).  Requests from other peers cannot use the loopback-only
# users and are not restricted (operators reach the broker under any DNS name).

def _own_names() -> set[str]:
    import socket

    names = {"localhost", "localhost.localdomain"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
    return names


_OWN_NAMES: set[str] | None = None


def rebinding(request: web.Request, loopback_peer: bool) -> bool:
    """True when a loopback peer's Host names some other host (see above)."""
    global _OWN_NAMES
    if not loopback_peer:
        return False
    host = (request.headers.get("Host") or "").strip().lower()
    if not host:
        return False  # HTTP/1.0 clients (curl -0) send none: not a browser
    if host.startswith("["):  # [::1]:15672
        return False
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.replace(".", "").isdigit() or ":" in name:
        return False  # an IP literal: no DNS involved
    if _OWN_NAMES is None:
        _OWN_NAMES = _own_names()
    return name.rstrip(".") not in _OWN_NAMES and not name.endswith(".localhost")
