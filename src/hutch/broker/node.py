"""The broker node (``Node``): virtual hosts, users, connections and node-wide resources.

One per `hutch serve` process; `hutch.Broker` (embedded.py) is the public wrapper that
starts one with its listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from functools import partial
from itertools import repeat
from operator import rshift
from typing import Any

from ..store import definitions as definitions_file
from ..store import snapshot
from ..store.files import files_from_env
from ..store.log import SEGMENT_SIZE, MessageLog
from . import definitions
from .alarms import ResourceMonitor, as_limit, memory_watermark
from .alarms import disk_free_limit as disk_free_limit_of
from .defaults import GUEST, DefaultData, seed
from .limits import NodeLimits
from .pump import Pump
from .queue_store.priority import PriorityStore
from .users import Users
from .vhost import Vhost

log = logging.getLogger("hutch.broker")


class ConnectionSet(set[Any]):
    """The open connections, counting arrivals and departures for the Prometheus churn
    metrics (connections_opened_total / connections_closed_total) without a hook in
    the connection's hot path: connections add and discard themselves once each."""

    opened = 0
    closed = 0

    def add(self, item: Any) -> None:
        if item not in self:
            self.opened += 1
            super().add(item)

    def discard(self, item: Any) -> None:
        if item in self:
            self.closed += 1
            super().discard(item)


class Node:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 max_message_size: int = 128 * 1024 * 1024,
                 memory_high_watermark: Any = None, disk_free_limit: Any = None,
                 defaults: DefaultData | None = GUEST) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.pump = Pump(self.loop)
        self.vhosts: dict[str, Vhost] = {}
        self._restoring = False
        # Inside definitions_batch(): whether anything durable changed (written once, at its end).
        self._batch_changed: bool | None = None
        self.users = Users()
        # Whether open_store found no definitions (a blank node, as RabbitMQ says).
        self.blank = True
        # The effective configuration (`hutch ctl environment`) and the files it came
        # from, as the management API shows them; set by `hutch serve`.
        self.environment: list[dict[str, Any]] = []
        self.config_files: list[str] = []
        self.log_files: list[str] = []
        self.connections: set[Any] = ConnectionSet()
        # Connections closed by their client whose socket is still read until the client
        # closes it (server/closing.py); the listener closes them at shutdown.
        self.lingering: set[Any] = set()
        # RabbitMQ's queue churn counters (queues_declared_total ...), kept by the vhosts.
        self.queues_declared = 0
        self.queues_created = 0
        self.queues_deleted = 0
        self.started_at = time.time()
        self.max_message_size = max_message_size
        # connection_max, channel_max, frame_max, heartbeat, handshake_timeout (limits.py).
        self.limits = NodeLimits()
        # Delivery acknowledgement timeout in ms for queues without their own
        # (``hutch serve --consumer-timeout``; RabbitMQ's ``consumer_timeout``).  None:
        # off, unlike RabbitMQ's 30 minutes (server/ack_timeout.py).
        self.consumer_timeout: int | None = None
        # Bytes of message bodies held in memory (``account``): the memory alarm's
        # estimate between two samples of RSS (broker/alarms.py).
        self.queued_bytes = 0
        # The resource alarms (memory watermark, free disk space; broker/alarms.py).
        # Limits: None (RabbitMQ 4.x's defaults), a Limit, bytes, or a flag's text.
        self.resources = ResourceMonitor(
            self.loop, self._alarms_changed, lambda: self.queued_bytes,
            memory=as_limit(memory_high_watermark, None, memory_watermark),
            disk=as_limit(disk_free_limit, None, disk_free_limit_of))
        # The storage seam: None keeps every queue in memory; the durable store
        # plugs in here (add/remove per message, flush for confirms).
        self.store: Any = None
        # None: a node that starts empty (`hutch serve` seeds it once it knows whether
        # its data dir is blank: broker/defaults.py).
        if defaults is not None:
            seed(self, defaults, announce=False)

    # -- durability ------------------------------------------------------------------
    async def open_store(self, data_dir: str, sync: str = "always", files: Any = None,
                         segment_size: int = SEGMENT_SIZE,
                         defaults: DefaultData | None = None) -> dict[str, int]:
        """Attach the durable store and bring back what it holds: definitions first,
        then every persistent message of every durable queue, in publish order.
        ``defaults``: what to seed if the data dir has no definitions yet."""
        started = time.monotonic()
        os.makedirs(data_dir, exist_ok=True)
        self.resources.watch_disk(data_dir)
        store = MessageLog(os.path.join(data_dir, "msgs"), self.loop, files or files_from_env(),
                           sync=sync, segment_size=segment_size, definitions_dir=data_dir)
        store.definitions.snapshot = partial(definitions.store_document, self)
        self.store = store
        self._restoring = True
        try:
            defs = definitions_file.load(data_dir)
            self.blank = defs is None
            if defs is not None:
                definitions.restore(self, defs)
            queues = {q.store_id: q for v in self.vhosts.values() for q in v.queues.values()
                      if q.durable}
            # Durable delayed exchanges' waiting messages (broker/delayed_store.py).
            delay_stores = {x.store.store_id: x.store for v in self.vhosts.values()
                            for x in v.exchanges.values() if x.delays and x.store.store_id}
            # Priority queues: recovery gives each message's level, read from its header.
            recovered = store.recover({qid: q.store.level_of_header for qid, q in queues.items()
                                       if isinstance(q.store, PriorityStore)})
        finally:
            self._restoring = False
        store.settle_fired(store.fired_acks)  # torn fires of delayed messages
        restored = dropped = delayed = 0
        # Ids of recovered messages delivered before the stop: each queue takes its own.
        delivered, store.recovered_delivered = store.recovered_delivered, set()
        for queue_id, rec in recovered.items():
            q = queues.get(queue_id)
            if q is None and queue_id in delay_stores:
                delayed += delay_stores[queue_id].restore(rec.entries)
                continue
            if q is None:
                # Its queue was deleted (or never made it to the definitions): forget it.
                for e in rec.entries:
                    store.forget(queue_id, e >> 32)
                dropped += len(rec.entries)
                continue
            # (C-level iteration: ~30 ns an entry, and only if anything was delivered.)
            mine = (delivered.intersection(map(rshift, rec.entries, repeat(32))) if delivered
                    else set())
            q.restore(rec.entries, rec.bytes, mine, rec.levels, rec.level_bytes)
            restored += len(rec.entries)
        if self.blank and defaults is not None:
            seed(self, defaults)  # written with the rest, just below
        store.definitions.write_now()
        log.info("recovered %d messages in %d durable queues from %s in %.2fs (%s)%s", restored,
                 len(queues), data_dir, time.monotonic() - started, store.recovered_from,
                 f" ({dropped} of deleted queues discarded)" if dropped else "")
        if delayed:
            log.info("recovered %d delayed messages", delayed)
        return {"messages": restored, "queues": len(queues)}

    async def close_store(self) -> None:
        """At a clean stop (connections closed, unacked messages requeued): write
        everything out, leave the shutdown snapshot that makes the next start fast,
        close the files.  The resource monitor stops too (every stop path comes here)."""
        self.resources.stop()
        store = self.store
        if store is None:
            return
        for vhost in self.vhosts.values():  # no fire may start once the log is closing
            for x in vhost.exchanges.values():
                if x.delays:
                    x.store.halt()
        await store.settle()
        if not await store.definitions.settle():
            log.error("definitions changed since the last successful write could not be saved")
        delivered: set[int] = set()
        queues = self._snapshot_queues(delivered)
        if queues is not None:
            store.write_snapshot(queues, delivered)
        store.close()

    def _snapshot_queues(self, delivered: set[int]) -> list[snapshot.QueueState] | None:
        out = []
        for vhost in self.vhosts.values():
            for q in vhost.queues.values():
                if not q.durable:
                    continue
                state = q.store.snapshot(delivered)
                if state is None:
                    return None  # something is not on disk: the next start scans instead
                if state[0]:
                    runs = q.store.snapshot_runs if isinstance(q.store, PriorityStore) else None
                    out.append(snapshot.QueueState(q.store_id, *state, runs))
            for x in vhost.exchanges.values():
                if x.delays and x.store.store_id:
                    delayed = x.store.snapshot()
                    if delayed is None:
                        return None
                    if delayed[0]:
                        out.append(snapshot.QueueState(x.store.store_id, *delayed))
        return out

    # -- definitions ---------------------------------------------------------------
    def add_vhost(self, name: str) -> Vhost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = Vhost(self, name)
            self.definitions_changed()
        return vhost

    def delete_vhost(self, name: str) -> bool:
        """Delete a vhost: its connections are closed (320), its queues deleted."""
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            return False
        for conn in list(self.connections):
            if conn.vhost is vhost:
                conn.close(320, f"CONNECTION_FORCED - vhost '{name}' is deleted")
        for q in list(vhost.queues.values()):
            vhost.delete_queue(q, reason="vhost deleted")
        for ex in vhost.exchanges.values():
            if ex.store is not None:  # a delayed exchange: its waiting messages go too
                ex.deleted = True
                ex.store.close()
        for key in [k for k in self.users.permissions if k[0] == name]:
            del self.users.permissions[key]
        self.definitions_changed()
        return True

    def definitions_changed(self) -> int:
        """Something durable changed (users, vhosts, permissions, durable exchanges,
        queues or bindings): the store writes the definitions file anew, soon and off
        the loop.  Returns the change's version (0 without a store): whoever must
        not answer before it is durable waits with ``definitions_synced``."""
        if self.store is None or self._restoring:
            return 0
        if self._batch_changed is not None:
            # One change for the whole batch, made when it ends: nothing else runs on
            # the loop until then, so it will get exactly the writer's next version
            # (which a queue declared in the batch must wait for before its confirms).
            self._batch_changed = True
            return int(self.store.definitions.version) + 1
        version: int = self.store.definitions_changed()
        return version

    @contextlib.contextmanager
    def definitions_batch(self) -> Iterator[None]:
        """Many durable changes made together, synchronously (a definitions import):
        they count as one change, and the store hears of it once, at the end, rather
        than once per object (a bounded number of writes, whatever the size)."""
        if self._batch_changed is not None:  # nested: the outer batch makes the change
            yield
            return
        self._batch_changed = False
        try:
            yield
        finally:
            changed, self._batch_changed = self._batch_changed, None
            if changed:
                self.definitions_changed()

    async def definitions_synced(self) -> OSError | None:
        """Wait until every definitions change so far is durable; the error if not."""
        if self.store is None:
            return None
        writer = self.store.definitions
        if await writer.settle():
            return None
        return writer.error or OSError("could not write definitions")

    def account(self, delta: int) -> None:
        """Message bodies in memory grew (or shrank) by ``delta`` bytes: queued ones,
        unacked ones and those still being received.  Past ``resample_at`` RSS may have
        crossed the memory watermark: it is sampled now rather than at the next tick."""
        self.queued_bytes += delta
        if self.queued_bytes > self.resources.resample_at:
            self.resources.check_soon()

    @property
    def memory_alarm(self) -> bool:
        return "memory" in self.resources.alarms

    def _alarms_changed(self, alarms: frozenset[str]) -> None:
        for conn in list(self.connections):
            conn.on_alarm(alarms)
