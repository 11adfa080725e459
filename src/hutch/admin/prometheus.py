"""The Prometheus listener, as RabbitMQ's ``rabbitmq_prometheus`` plugin serves it.

``hutch serve --prometheus-port 15692`` (RabbitMQ's port; 0 disables) answers, with
no authentication, as the plugin's ``rabbit_prometheus_handler`` does:

* ``GET /metrics``: the aggregated view (one sample per family);
* ``GET /metrics/per-object``: one sample per queue, channel and connection;
* ``GET /metrics/detailed?family=F&vhost=V``: only the families asked for (repeat
  ``family``; unknown names are ignored), prefixed ``rabbitmq_detailed_``; ``vhost``
  (repeatable) keeps only those vhosts' queues;
* any other ``/metrics/<registry>``: 404 ``Unknown Registry``.

It runs on the broker's event loop, like the management API, so a scrape reads
broker state between two frame batches with no locking.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..server.listener import ListenError, resolve_hosts
from .https import HttpsConfig, HttpsListeners
from .metrics import CONTENT_TYPE, render

log = logging.getLogger("hutch.prometheus")


class PrometheusListener:
    def __init__(self, broker: Any, host: str, port: int, *, data_dir: str | None = None,
                 https: HttpsConfig | None = None) -> None:
        self.broker = broker
        # prometheus.ssl.* (admin/https.py): served next to the plain port, or alone
        # when that is 0.
        self.https_config = https
        self.https = HttpsListeners()
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.addresses: list[tuple[str, int]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on ``host``:``port``; a port that cannot be bound ends the start with
        one line (SystemExit), as the AMQP listener's does."""
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        app.router.add_get("/metrics/{registry}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        for host in resolve_hosts(self.host) if self.port else []:
            site = web.TCPSite(self._runner, host, self.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                if host == "::1" and self.addresses:
                    log.warning("prometheus metrics not listening on [::1]:%d: %s", self.port, exc)
                    continue
                await self._runner.cleanup()
                raise SystemExit(f"hutch: cannot listen for Prometheus on {host}:{self.port} "
                                 f"(--prometheus-port): {exc.strerror or exc}") from None
            self.addresses.append((host, self.port))
        if self.https_config is not None:
            try:
                await self.https.start(self._runner, self.https_config, "Prometheus HTTPS")
            except ListenError as exc:
                await self._runner.cleanup()
                raise SystemExit(f"hutch: cannot listen for Prometheus on {exc.address} "
                                 f"(--prometheus-tls-port): {exc.error.strerror or exc.error}"
                                 ) from None

    async def stop(self) -> None:
        await self.https.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        host = self.addresses[0][0] if self.addresses else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    async def _handle(self, req: web.Request) -> web.StreamResponse:
        registry = req.match_info.get("registry", "aggregated")
        if registry not in ("aggregated", "per-object", "detailed"):
            return web.Response(status=404, text="Unknown Registry")
        kwargs: dict[str, Any] = {"data_dir": self.data_dir}
        if registry == "detailed":
            # No family asked for: nothing but the identity, as RabbitMQ answers.
            kwargs["families"] = set(req.query.getall("family", []))
            vhosts = req.query.getall("vhost", [])
            kwargs["vhosts"] = set(vhosts) if vhosts else None
        body = render(self.broker, registry, **kwargs)
        resp = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
        resp.enable_compression()  # gzip when the scraper accepts it (Prometheus does)
        return resp


async def start_prometheus(broker: Any, host: str, port: int, data_dir: str | None,
                           https: HttpsConfig | None = None) -> PrometheusListener | None:
    """Start the listener unless ``port`` is 0 and there is no HTTPS one (logged only:
    stdout's first line stays the "ready" line scripts wait for)."""
    if not port and https is None:
        return None
    listener = PrometheusListener(broker, host, port, data_dir=data_dir, https=https)
    await listener.start()
    if listener.addresses:
        log.info("started Prometheus metrics listener on %s (%s)",
                 ", ".join(f"{h}:{p}" for h, p in listener.addresses), listener.url)
    if listener.https.addresses:
        log.info("started Prometheus metrics TLS listener on %s (%smetrics)",
                 ", ".join(f"{h}:{p}" for h, p in listener.https.addresses), listener.https.url)
    return listener
