"""Durable definitions: users, vhosts, permissions, durable exchanges/queues/bindings.

Kept in ``<data-dir>/definitions.json`` in RabbitMQ's definitions format (the
one ``rabbitmqctl export_definitions`` writes), rewritten whole and atomically
(temp file, fsync, rename, directory fsync) after they change.  The rewrite is a
group commit off the event loop (``DefinitionsWriter``): a thousand declares
arriving together share one write, and nobody else waits for it.  One
Hutch-only key, ``hutch.queue_ids``, maps each durable queue to the numeric id
its messages carry in the message log; a recreated queue gets a new id, so the
records of a deleted namesake are never mistaken for its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from .. import RABBITMQ_VERSION, __version__
from ..broker.users import Permission, User

log = logging.getLogger("hutch.store")

FILENAME = "definitions.json"


def snapshot(broker: Any) -> dict[str, Any]:
    users = [{"name": u.name, "password_hash": u.password_hash,
              "hashing_algorithm": u.hashing_algorithm, "tags": list(u.tags), "limits": {}}
             for u in broker.users.users.values()]
    vhosts = [{"name": name, "limits": [], "metadata": {"description": "", "tags": []}}
              for name in broker.vhosts]
    permissions = [{"user": user, "vhost": vhost, "configure": p.configure, "write": p.write,
                    "read": p.read}
                   for (vhost, user), p in broker.users.permissions.items()]
    queues, exchanges, bindings, ids = [], [], [], []
    for vname, vhost in broker.vhosts.items():
        for q in vhost.queues.values():
            if q.durable and not q.exclusive:
                queues.append({"name": q.name, "vhost": vname, "durable": True,
                               "auto_delete": q.auto_delete, "arguments": q.arguments})
                ids.append({"vhost": vname, "name": q.name, "id": q.store_id})
        for ex in vhost.exchanges.values():
            if ex.durable and ex.name and not ex.name.startswith("amq."):
                exchanges.append({"name": ex.name, "vhost": vname, "type": ex.type_name,
                                  "durable": True, "auto_delete": ex.auto_delete,
                                  "internal": ex.internal, "arguments": ex.arguments})
        for ex in vhost.exchanges.values():
            if not ex.durable:
                continue
            for b in ex.bindings.values():
                dest = b.destination
                if not dest.durable or getattr(dest, "exclusive", False):
                    continue
                bindings.append({"source": ex.name, "vhost": vname, "destination": dest.name,
                                 "destination_type": "exchange" if dest.is_exchange else "queue",
                                 "routing_key": b.routing_key, "arguments": b.arguments})
    return {
        "rabbit_version": RABBITMQ_VERSION, "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "Hutch", "product_version": __version__,
        "users": users, "vhosts": vhosts, "permissions": permissions,
        "topic_permissions": [], "parameters": [], "global_parameters": [], "policies": [],
        "queues": queues, "exchanges": exchanges, "bindings": bindings,
        "hutch": {"queue_ids": ids},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def save(broker: Any, data_dir: str, files: Any) -> None:
    _write(_jsonable(snapshot(broker)), data_dir, files)


def _write(state: dict[str, Any], data_dir: str, files: Any) -> None:
    data = json.dumps(state, indent=1, sort_keys=True).encode()
    files.write_file_atomically(os.path.join(data_dir, FILENAME), data)


class DefinitionsWriter:
    """Writes the definitions file after changes, grouped, on a thread of its own.

    Every change bumps ``version``; ``when_synced(v, cb)`` calls ``cb(ok)`` on the
    loop once a write that includes change ``v`` is durable (``ok`` False if that
    write failed).  While one write runs, later changes pile up and go out in the
    next one.  The picture of the broker is taken on the loop (it is not
    thread-safe) as plain data; JSON encoding and the disk work run on the thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, files: Any, data_dir: str,
                 broker: Any = None) -> None:
        self.loop = loop
        self.files = files
        self.data_dir = data_dir
        self.broker = broker
        self.version = 0  # bumped by every change
        self.synced = 0  # every change up to this one is on disk
        self.error: OSError | None = None  # the last write's failure, until one succeeds
        self._writing = 0  # the version being written (0: none)
        self._scheduled = False
        self._retry: asyncio.TimerHandle | None = None
        self._waiters: list[tuple[int, Callable[[bool], None]]] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hutch-defs")
        self.writes = 0

    def changed(self) -> int:
        self.version += 1
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)
        return self.version

    def when_synced(self, version: int, callback: Callable[[bool], None]) -> None:
        if version <= self.synced:
            callback(True)
            return
        self._waiters.append((version, callback))
        if not self._writing and not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._flush)

    def write_now(self) -> None:
        """Synchronously, at boot (before any client is served)."""
        version = self.version
        _write(_jsonable(snapshot(self.broker)), self.data_dir, self.files)
        self.synced = version

    def _flush(self) -> None:
        self._scheduled = False
        if self._writing or self.synced >= self.version:
            return
        version = self.version
        try:
            state = _jsonable(snapshot(self.broker))
        except Exception as exc:  # a bug, not the disk: fail the waiters loudly, once
            log.exception("could not take the definitions")
            self._settle(version, OSError(str(exc)))
            return
        self._writing = version
        fut = self.loop.run_in_executor(self._executor, _write, state, self.data_dir, self.files)
        fut.add_done_callback(lambda f: self._done(version, f))

    def _done(self, version: int, fut: asyncio.Future[None]) -> None:
        self._writing = 0
        exc = fut.exception()
        if exc is not None and not isinstance(exc, OSError):
            exc = OSError(str(exc))
        self._settle(version, exc)  # type: ignore[arg-type]
        if self.synced < self.version:
            # Changes made during the write (nobody may be waiting for them: a nowait
            # declare, an auto-delete) go out now; after a failure, a little later,
            # so a failing disk is not retried in a tight loop.
            if exc is None or any(v > version for v, _cb in self._waiters):
                self._flush()
            elif self._retry is None:
                self._retry = self.loop.call_later(self.files.retry_after, self._retry_flush)

    def _retry_flush(self) -> None:
        self._retry = None
        self._flush()

    def _settle(self, version: int, exc: OSError | None) -> None:
        if exc is None:
            if self.error is not None:
                log.warning("definitions are written again")
            self.error = None
            self.synced = max(self.synced, version)
        else:
            if self.error is None:
                log.error("could not write definitions: %s", exc)
            self.error = exc
        done = [cb for v, cb in self._waiters if v <= version]
        self._waiters = [(v, cb) for v, cb in self._waiters if v > version]
        for cb in done:
            cb(exc is None)

    async def settle(self) -> bool:
        """At a clean stop: write whatever changed and wait for it."""
        if self.synced >= self.version:
            return True
        done = self.loop.create_future()
        self.when_synced(self.version, lambda ok: done.done() or done.set_result(ok))
        ok: bool = await done
        return ok

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._executor.shutdown(wait=True)


def load(data_dir: str) -> dict[str, Any] | None:
    path = os.path.join(data_dir, FILENAME)
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def apply(broker: Any, defs: dict[str, Any]) -> dict[tuple[str, str], int]:
    """Recreate what ``defs`` describes; returns (vhost, queue) -> store id."""
    users = broker.users
    if defs.get("users"):
        users.users.clear()
        for u in defs["users"]:
            tags = u.get("tags") or []
            if isinstance(tags, str):  # older RabbitMQ exports: "a,b"
                tags = [t for t in tags.split(",") if t]
            users.users[u["name"]] = User(u["name"], u["password_hash"], tags,
                                          u.get("hashing_algorithm", "rabbit_password_hashing_sha256"))
    if "permissions" in defs:
        users.permissions.clear()
        for p in defs["permissions"]:
            users.permissions[(p["vhost"], p["user"])] = Permission(p["configure"], p["write"], p["read"])
    for v in defs.get("vhosts", []):
        if v["name"] not in broker.vhosts:
            broker.vhosts[v["name"]] = broker.make_vhost(v["name"])
    ids = {(e["vhost"], e["name"]): int(e["id"]) for e in defs.get("hutch", {}).get("queue_ids", [])}
    for e in defs.get("exchanges", []):
        vhost = broker.vhosts.get(e["vhost"])
        if vhost is not None and e["name"] not in vhost.exchanges:
            vhost.declare_exchange(e["name"], e["type"], False, True, e.get("auto_delete", False),
                                   e.get("internal", False), e.get("arguments") or {})
    for q in defs.get("queues", []):
        vhost = broker.vhosts.get(q["vhost"])
        if vhost is not None and q["name"] not in vhost.queues:
            vhost.restore_queue(q["name"], q.get("auto_delete", False), q.get("arguments") or {},
                                ids.get((q["vhost"], q["name"])))
    for b in defs.get("bindings", []):
        vhost = broker.vhosts.get(b["vhost"])
        if vhost is None:
            continue
        source = vhost.exchanges.get(b["source"])
        if b["destination_type"] == "queue":
            dest = vhost.queues.get(b["destination"])
        else:
            dest = vhost.exchanges.get(b["destination"])
        if source is not None and dest is not None and source.name:
            source.bind(dest, b["routing_key"], b.get("arguments") or {})
    return ids
