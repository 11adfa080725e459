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
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = f"{request.scheme}://{request.host}"
    return origin.rstrip("/").lower() != own.lower()
