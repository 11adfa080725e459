"""The web UI's files: ``/`` and ``/static/...`` on the management port.

The UI is static HTML, CSS and ES modules in ``admin/ui/`` (shipped in the
wheel, no build step, no CDN) and is one more client of the management API:
everything it shows or changes goes through ``/api/...`` with the user's own
credentials, so what a user sees and may do is decided by the API's checks and
nowhere else.  Pages are addressed like RabbitMQ's UI (``/#/queues/%2F/tasks``),
so a bookmark from one works on the other.

Only the files found in ``admin/ui/`` when the API starts are served, looked up
by exact path: no request path reaches the file system, so ``..`` or a symlink
cannot read anything else.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass

from aiohttp import web

UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ui")

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
          ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(root: str = UI_DIR) -> dict[str, Asset]:
    """Every file under ``root`` by its URL path (``static/js/main.js``); the page is
    ``index.html``.  Read once: the package's files do not change while it runs."""
    assets: dict[str, Asset] = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            with open(full, "rb") as f:
                body = f.read()
            ext = os.path.splitext(name)[1]
            ctype = _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "text/plain"
            key = rel if rel == "index.html" else "static/" + rel
            assets[key] = Asset(body, ctype, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return assets


def ui_path(segments: list[str]) -> str | None:
    """The asset a non-API path names, or None: ``/`` and ``/index.html`` are the page."""
    if segments in ([""], ["index.html"]):
        return "index.html"
    if segments and segments[0] == "static":
        return "/".join(segments)
    return None


def serve_asset(assets: dict[str, Asset], key: str, request: web.Request) -> web.Response | None:
    asset = assets.get(key)
    if asset is None:
        return None
    # no-cache = revalidate every time: a newer Hutch's UI is picked up at once, and an
    # unchanged file costs a 304.
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    charset = "utf-8" if asset.content_type.startswith("text/") else None
    return web.Response(body=asset.body, content_type=asset.content_type, charset=charset,
                        headers=headers)
