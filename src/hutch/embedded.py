"""Hutch inside your own process: ``hutch.Broker``, for tests and small apps.

    async with hutch.Broker(port=0, data_dir=tmp) as b:     # on the running loop
        conn = await aio_pika.connect(b.url)

    with hutch.Broker() as b:                               # in a thread, from sync code
        pika.BlockingConnection(pika.URLParameters(b.url))

It is the same broker ``hutch serve`` runs (broker/, server/, store/, admin/),
wired up the way cli.py's ``serve()`` does it.  ``data_dir=None`` keeps nothing on
disk; a directory makes durable queues and persistent messages survive
``restart()``.  The management API (for ``hutch ctl`` and ``ctl()`` below) listens
on a free port unless ``management=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from types import TracebackType
from typing import Any

from .datadir import lock_data_dir

START_TIMEOUT = 30.0


class CtlError(RuntimeError):
    """``hutch ctl`` exited non-zero; ``code`` is its exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Broker:
    def __init__(self, *, host: str = "localhost", port: int = 0, data_dir: str | None = None,
                 management: bool = True, http_port: int = 0, sync: str = "always",
                 max_message_size: int = 128 * 1024 * 1024,
                 memory_high_watermark: int | float | str | None = None,
                 disk_free_limit: int | float | str | None = None,
                 consumer_timeout: int | None = None) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.management = management
        self.http_port = http_port
        self.sync = sync
        self.max_message_size = max_message_size
        # As ``hutch serve --memory-high-watermark`` / ``--disk-free-limit``: bytes (int),
        # a fraction (float) or the flag's text; None: RabbitMQ 4.x's defaults.
        self.memory_high_watermark = memory_high_watermark
        self.disk_free_limit = disk_free_limit
        # Delivery acknowledgement timeout in ms (``hutch serve --consumer-timeout``).
        self.consumer_timeout = consumer_timeout
        self.broker: Any = None  # the hutch.broker.node.Node while running
        self._server: Any = None
        self._api: Any = None
        self._lock: Any = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """AMQP URL for clients (user guest, vhost ``/``)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def management_url(self) -> str | None:
        """``http://127.0.0.1:PORT/`` of the management API, or None without one."""
        return f"http://127.0.0.1:{self.http_port}/" if self._api is not None else None

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- async lifecycle (on the caller's loop) ---------------------------------------------
    async def start(self) -> Broker:
        from .broker.node import Node as Core
        from .server.listener import Server

        if self.running:
            raise RuntimeError("this hutch.Broker is already running")
        loop = asyncio.get_running_loop()
        core = Core(loop, max_message_size=self.max_message_size,
                    memory_high_watermark=self.memory_high_watermark,
                    disk_free_limit=self.disk_free_limit)
        core.consumer_timeout = self.consumer_timeout
        if self.data_dir is not None:
            self._lock = _lock(self.data_dir)
            await core.open_store(self.data_dir, sync=self.sync)
        server = Server(core, self.host, self.port)
        try:
            await server.start()
        except OSError:
            await self._close_store(core)
            raise
        # Keep the port across restart(): clients reconnect to the same URL.
        self.broker, self._server, self.port = core, server, server.port
        if self.management:
            from .admin.http_api import ManagementApi

            amqp = [(s.getsockname()[0], s.getsockname()[1])
                    for srv in server.servers for s in srv.sockets]
            self._api = ManagementApi(core, self.host, self.http_port, data_dir=self.data_dir,
                                      amqp_listeners=amqp)
            await self._api.start()
            self.http_port = self._api.port
        return self

    async def stop(self) -> None:
        """Close every connection (320, as RabbitMQ's shutdown), write what they
        acked or gave back, release the data dir.  Unacked messages are requeued."""
        if not self.running:
            return
        if self._api is not None:
            await self._api.stop()
            self._api = None
        await self._server.stop()
        await self._close_store(self.broker)
        self._server = None

    async def restart(self) -> None:
        """Stop and start again on the same ports and data dir: what is durable survives."""
        await self.stop()
        await self.start()

    async def _close_store(self, core: Any) -> None:
        await core.close_store()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    async def __aenter__(self) -> Broker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- sync lifecycle (a loop in a thread of its own) ---------------------------------------
    def __enter__(self) -> Broker:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="hutch-broker", daemon=True)
        thread.start()
        self._thread, self._thread_loop = thread, loop
        try:
            self._call(self.start())
        except BaseException:
            self._stop_thread()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._call(self.stop())
        finally:
            self._stop_thread()

    def restart_sync(self) -> None:
        """``restart()`` for a broker started with ``with`` (runs on its thread)."""
        self._call(self.restart())

    def _call(self, coro: Any) -> Any:
        if self._thread_loop is None:
            coro.close()
            raise RuntimeError("not started with 'with hutch.Broker()'; use the async methods")
        return asyncio.run_coroutine_threadsafe(coro, self._thread_loop).result(START_TIMEOUT)

    def _stop_thread(self) -> None:
        loop, thread = self._thread_loop, self._thread
        self._thread_loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT)
            loop.close()

    # -- management helpers (blocking HTTP: call them off the broker's own loop) ---------------
    def ctl(self, *args: str) -> str:
        """Run ``hutch ctl ARGS`` against this broker and return its stdout, e.g.
        ``b.ctl("list_queues", "name", "messages_ready")``; raises CtlError on failure."""
        from .admin.ctl import ctl_main

        if self.management_url is None:
            raise RuntimeError("this hutch.Broker runs without its management API")
        self._not_on_own_loop()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = ctl_main(["--url", self.management_url, *args])
        if code:
            raise CtlError(err.getvalue().strip() or f"hutch ctl exited {code}", code)
        return out.getvalue()

    def list_queues(self, *columns: str) -> list[dict[str, Any]]:
        """``list_queues`` as dicts, default columns name, messages_ready,
        messages_unacknowledged (the columns of the seeds' rabbitmqctl call)."""
        cols = columns or ("name", "messages_ready", "messages_unacknowledged")
        return json.loads(self.ctl("--formatter", "json", "-q", "list_queues", *cols) or "[]")

    def _not_on_own_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # plain sync code: fine
        if self.broker is not None and loop is self.broker.loop:
            raise RuntimeError("ctl() blocks, and the broker runs on this very loop: call it "
                               "via asyncio.to_thread, or start the broker with 'with'")


def _lock(data_dir: str) -> Any:
    try:
        return lock_data_dir(data_dir)
    except SystemExit as exc:  # cli.py's message, as an exception a library can catch
        raise RuntimeError(str(exc.code)) from None
