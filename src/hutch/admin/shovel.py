"""Move messages: RabbitMQ's dynamic shovel, the local one-shot subset.

RabbitMQ's UI moves messages by creating a shovel parameter
(``PUT /api/parameters/shovel/{vhost}/{name}``) with ``src-delete-after:
queue-length``: the shovel takes the source queue's length when it starts,
moves that many messages, then deletes its own parameter.  Hutch runs the same
request inside the broker, with no AMQP connection: local URIs only
(``amqp://`` with no host, optionally naming a vhost: ``amqp:///%2F``), a queue
as the source, a queue or an exchange as the destination, and a number of
messages to move (``queue-length`` or N) — a permanent shovel is refused.

What a move does to a message is what RabbitMQ's shovel does: the body and
the properties (headers, ``x-death`` included) are published again, to the
default exchange with the destination queue's name as routing key, or to
``dest-exchange`` with ``dest-exchange-key`` (else the message's own routing
key).  ``ack-mode`` as RabbitMQ defines it:

* ``on-confirm`` (default): a message is acknowledged on the source only once
  the destination holds it as a publisher confirm would say (a persistent
  message in a durable queue: after the store's fsync).  A crash in between
  leaves it in the source (and maybe the destination too: at least once).
* ``on-publish``: acknowledged on the source as soon as it is published.
* ``no-ack``: taken from the source with no acknowledgement at all.

Messages move in batches of ``src-prefetch-count`` (at most ``BATCH``), the
event loop serving everybody else between two batches.  Moves are not kept
across a restart: an interrupted move simply stops (its messages are in the
source or the destination).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from ..broker.message import Message
from ..broker.vhost import REJECTED, ROUTED, STORED
from ..errors import AMQPError
from .render import message_properties

log = logging.getLogger("hutch.shovel")

BATCH = 1000  # messages per batch at most (RabbitMQ's default prefetch)
# Seconds between looks at an empty source (src-delete-after N): from 0.1 s, doubling
# while it stays empty up to 1 s, so idle moves cost next to nothing.
IDLE_WAIT = 0.1
IDLE_WAIT_MAX = 1.0

# Every key RabbitMQ's amqp091 shovel takes, and its value check.
_BOOL = "bool"
_NUM = "number"
_BIN = "binary"
_ANY = "any"
KNOWN: dict[str, str] = {
    "src-uri": _ANY, "src-exchange": _BIN, "src-exchange-key": _BIN, "src-queue": _BIN,
    "src-queue-args": _ANY, "src-consumer-args": _ANY, "src-consumer-name": _BIN,
    "prefetch-count": _NUM, "src-prefetch-count": _NUM, "delete-after": _ANY,
    "src-delete-after": _ANY, "src-delete-after-duration": _ANY, "src-predeclared": _BOOL,
    "dest-uri": _ANY, "dest-exchange": _BIN, "dest-exchange-key": _BIN, "dest-queue": _BIN,
    "dest-queue-args": _ANY, "add-forward-headers": _BOOL, "add-timestamp-header": _BOOL,
    "dest-add-forward-headers": _BOOL, "dest-add-timestamp-header": _BOOL,
    "publish-properties": _ANY, "dest-publish-properties": _ANY, "dest-predeclared": _BOOL,
    "internal": _BOOL, "internal_owner": _ANY, "reconnect-delay": _NUM, "ack-mode": _BIN,
    "src-protocol": _BIN, "dest-protocol": _BIN,
}
ACK_MODES = ("no-ack", "on-publish", "on-confirm")


class ShovelError(ValueError):
    """A parameter refused: 400 ``bad_request`` with this reason."""


def _term(value: Any) -> str:
    """A value as RabbitMQ's messages print it (binaries as <<"...">>)."""
    if isinstance(value, str):
        return f'<<"{value}">>'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def validate(name: str, value: Any) -> None:
    """RabbitMQ's shovel validation (``Validation failed`` and one line per problem)."""
    if not isinstance(value, dict):
        raise ShovelError(f"Validation failed\n\n{_term(value)} is not a proplist\n")
    problems: list[str] = []
    if "src-queue" in value and "src-exchange" in value:
        problems.append("Cannot specify 'src-exchange' and 'src-queue'")
    elif "src-queue" not in value and "src-exchange" not in value:
        problems.append("Must specify 'src-exchange' or 'src-queue'")
    for key in ("dest-uri", "src-uri"):
        if key not in value:
            problems.append(f'Key "{key}" not found in {name}')
    for key, kind in KNOWN.items():
        if key not in value:
            continue
        v = value[key]
        if kind == _BOOL and not isinstance(v, bool):
            problems.append(f"{key} should be a boolean, actually was {_term(v)}")
        elif kind == _NUM and (isinstance(v, bool) or not isinstance(v, int | float)):
            problems.append(f"{key} should be a number, actually was {_term(v)}")
        elif kind == _BIN and not isinstance(v, str):
            problems.append(f"{key} should be binary, actually was {_term(v)}")
    for key in ("src-delete-after", "delete-after"):
        v = value.get(key)
        if v is not None and v not in ("never", "queue-length") and \
                not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            problems.append(f'{key} should be a number greater than or equal to 0, "never" or '
                            f'"queue-length", actually was {_term(v)}')
    mode = value.get("ack-mode")
    if isinstance(mode, str) and mode not in ACK_MODES:
        problems.append(f"ack-mode should be one of {[_term(m) for m in ACK_MODES]}, "
                        f"actually was {_term(mode)}".replace("'", ""))
    for key in ("src-uri", "dest-uri"):
        for uri in _uris(value.get(key)):
            if not isinstance(uri, str):
                problems.append(f"{key} should be a URI, actually was {_term(uri)}")
                continue
            scheme = urlsplit(uri).scheme
            if scheme not in ("amqp", "amqps"):
                problems.append(f'"{uri}" not a valid URI: {{{{unexpected_uri_scheme,"{scheme}"}},'
                                f'"{uri}"}}')
    unknown = [k for k in value if k not in KNOWN]
    if unknown:
        terms = ",".join(f"{{{_term(k)},{_term(value[k])}}}" for k in unknown)
        problems.append(f"Unrecognised terms [{terms}] in {name}")
    if problems:
        raise ShovelError("Validation failed\n\n" + "\n".join(problems) + "\n")


def _uris(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def local_vhost(key: str, value: Any, default: str) -> str:
    """The vhost a local URI names (``amqp://`` alone: ``default``)."""
    uris = _uris(value)
    if len(uris) != 1:
        raise ShovelError(f"{key}: Hutch moves messages within this broker only: give one "
                          f"local URI (amqp:/// or amqp:///VHOST), not {len(uris)}")
    parts = urlsplit(uris[0])
    if parts.scheme != "amqp" or parts.netloc:
        raise ShovelError(f"{key}: Hutch moves messages within this broker only (a local URI "
                          f"such as amqp:/// or amqp:///%2F), not to or from {uris[0]!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return unquote(path) if path else default


@dataclass
class Plan:
    """A validated move: where from, where to, how."""

    src_vhost: str
    src_queue: str
    dest_vhost: str
    dest_queue: str | None
    dest_exchange: str | None
    dest_key: str | None
    count: int | None  # None: the source's length when the move starts
    ack_mode: str
    batch: int
    src_declare: bool
    dest_declare: bool
    src_args: dict[str, Any]
    dest_args: dict[str, Any]


def plan(name: str, vhost: str, value: Mapping[str, Any]) -> Plan:
    """What Hutch will do for this parameter, or a ShovelError naming what it does not do."""
    validate(name, dict(value))
    for key in ("src-protocol", "dest-protocol"):
        if value.get(key, "amqp091") != "amqp091":
            raise ShovelError(f"{key}: Hutch moves messages over AMQP 0-9-1 only (amqp091), "
                              f"not {value[key]}")
    if "src-exchange" in value:
        raise ShovelError("Hutch moves messages from a queue only (src-queue), not from an "
                          "exchange")
    after = value.get("src-delete-after", value.get("delete-after", "never"))
    if after == "never" or "src-delete-after-duration" in value:
        raise ShovelError("Hutch runs one-shot local shovels only (src-delete-after "
                          "queue-length or a number)")
    unsupported = [k for k in ("add-forward-headers", "dest-add-forward-headers",
                               "add-timestamp-header", "dest-add-timestamp-header",
                               "internal") if value.get(k)]
    unsupported += [k for k in ("publish-properties", "dest-publish-properties", "internal_owner")
                    if value.get(k)]
    if value.get("src-consumer-args"):
        unsupported.append("src-consumer-args")
    if unsupported:
        raise ShovelError(f"Hutch's shovel does not support {', '.join(unsupported)}")
    if "dest-queue" in value and "dest-exchange" in value:
        raise ShovelError("Cannot specify 'dest-exchange' and 'dest-queue'")
    for key in ("src-queue", "dest-queue", "dest-exchange"):
        # AMQP's short string: a longer name could never be declared or used by a client.
        if isinstance(value.get(key), str) and len(value[key].encode()) > 255:
            raise ShovelError(f"{key}: a name is at most 255 bytes long")
    for key in ("src-queue-args", "dest-queue-args"):
        if key in value and not isinstance(value[key], dict):
            raise ShovelError(f"{key} should be an object, actually was {_term(value[key])}")
    prefetch = value.get("src-prefetch-count", value.get("prefetch-count", BATCH))
    return Plan(
        src_vhost=local_vhost("src-uri", value["src-uri"], vhost),
        src_queue=value["src-queue"],
        dest_vhost=local_vhost("dest-uri", value["dest-uri"], vhost),
        dest_queue=value.get("dest-queue"),
        dest_exchange=value.get("dest-exchange"),
        dest_key=value.get("dest-exchange-key"),
        count=None if after == "queue-length" else int(after),
        ack_mode=value.get("ack-mode", "on-confirm"),
        batch=max(1, min(int(prefetch), BATCH)),
        src_declare=not value.get("src-predeclared", False),
        dest_declare=not value.get("dest-predeclared", False),
        src_args=dict(value.get("src-queue-args") or {}),
        dest_args=dict(value.get("dest-queue-args") or {}),
    )


def _timestamp() -> str:
    """RabbitMQ's shovel status time: local, ``2026-12-02 5:23:07``."""
    t = datetime.datetime.now()
    return f"{t.year}-{t.month:02}-{t.day:02} {t.hour}:{t.minute:02}:{t.second:02}"


@dataclass
class Move:
    """One shovel parameter and the task moving its messages."""

    vhost: str
    name: str
    value: dict[str, Any]
    plan: Plan
    state: str = "starting"
    reason: str | None = None
    moved: int = 0
    started: str = field(default_factory=_timestamp)
    task: asyncio.Task[None] | None = None

    def parameter(self) -> dict[str, Any]:
        return {"value": self.value, "vhost": self.vhost, "component": "shovel",
                "name": self.name}

    def status(self, node: str) -> dict[str, Any]:
        """An entry of ``GET /api/shovels`` (rabbit_shovel_mgmt's shape)."""
        out: dict[str, Any] = {"node": node, "timestamp": self.started, "name": self.name,
                               "vhost": self.vhost, "type": "dynamic", "state": self.state}
        if self.state == "terminated":
            out["reason"] = self.reason
            return out
        v = self.value
        out.update({"src_uri": _uris(v["src-uri"])[0], "src_protocol": "amqp091",
                    "dest_protocol": "amqp091", "dest_uri": _uris(v["dest-uri"])[0],
                    "src_queue": v["src-queue"]})
        for key in ("dest-queue", "dest-exchange", "dest-exchange-key"):
            if key in v:
                out[key.replace("-", "_")] = v[key]
        return out


class Mover:
    """Runs moves on the broker's loop; ``done`` is called when one finishes."""

    def __init__(self, broker: Any, done: Any) -> None:
        self.broker = broker
        self.done = done

    def start(self, move: Move) -> None:
        move.state = "running"
        move.task = asyncio.get_running_loop().create_task(self._run(move))

    async def _run(self, move: Move) -> None:
        try:
            await self._move(move)
        except asyncio.CancelledError:
            raise
        except (AMQPError, LookupError, OSError) as exc:
            move.state, move.reason = "terminated", _reason(exc)
            log.warning("shovel '%s' in vhost '%s' stopped after %d messages: %s", move.name,
                        move.vhost, move.moved, move.reason)
            return
        except Exception as exc:  # never take the loop down; say why it stopped
            log.exception("shovel '%s' in vhost '%s' failed", move.name, move.vhost)
            move.state, move.reason = "terminated", _reason(exc)
            return
        log.info("shovel '%s' in vhost '%s' moved %d messages and was deleted", move.name,
                 move.vhost, move.moved)
        self.done(move)

    def _vhost(self, name: str) -> Any:
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise LookupError(f"vhost '{name}' does not exist")
        return vhost

    def _ensure_queue(self, vhost: Any, name: str, declare: bool, args: dict[str, Any]) -> Any:
        """RabbitMQ's ``ensure_queue``: the queue, declared durable if missing (or, with
        ``*-predeclared``, NOT_FOUND)."""
        q = vhost.queues.get(name)
        if q is None:
            vhost.declare_queue(name, not declare, True, False, False, args, None)
            q = vhost.queues.get(name)
        return q

    async def _move(self, move: Move) -> None:
        p = move.plan
        src_vhost, dest_vhost = self._vhost(p.src_vhost), self._vhost(p.dest_vhost)
        q = self._ensure_queue(src_vhost, p.src_queue, p.src_declare, p.src_args)
        # Another connection's exclusive queue cannot be consumed (RESOURCE_LOCKED): the
        # shovel terminates and moves nothing, as RabbitMQ's.
        src_vhost.check_exclusive(q, None)
        if p.dest_queue is not None:
            self._ensure_queue(dest_vhost, p.dest_queue, p.dest_declare, p.dest_args)
        remaining = q.message_count if p.count is None else p.count
        store = self.broker.store
        loop = asyncio.get_running_loop()
        idle = IDLE_WAIT
        while remaining > 0:
            if q.deleted:
                raise LookupError(f"source queue '{p.src_queue}' was deleted")
            batch: list[Message] = []
            no_ack = p.ack_mode == "no-ack"
            while len(batch) < min(p.batch, remaining):
                msg = q.get(no_ack=no_ack)
                if msg is None:
                    break
                batch.append(msg)
            if not batch:
                if p.count is None:
                    break  # drained by someone else: the initial length is gone
                await asyncio.sleep(idle)
                idle = min(idle * 2, IDLE_WAIT_MAX)
                continue
            idle = IDLE_WAIT
            since = store.failures if store is not None else 0
            try:
                stored, refused = self._publish(dest_vhost, p, batch)
            except BaseException:
                if not no_ack:
                    q.requeue(batch)
                raise
            if refused and not no_ack:
                q.requeue(refused)
            keep = [m for m in batch if m not in refused] if refused else batch
            if stored and p.ack_mode == "on-confirm" and store is not None:
                fut: asyncio.Future[bool] = loop.create_future()

                def synced(ok: bool, fut: asyncio.Future[bool] = fut) -> None:
                    if not fut.done():
                        fut.set_result(ok)

                store.when_durable(synced, since=since)
                try:
                    ok = await fut
                except BaseException:  # cancelled (shovel deleted): back to the source
                    q.requeue(keep)
                    raise
                if not ok:
                    q.requeue(keep)
                    raise OSError("the destination's store could not write the messages")
            if not no_ack:
                for msg in keep:
                    q.ack(msg)
            move.moved += len(keep)
            remaining -= len(keep)
            if refused:
                raise LookupError(f"the destination refused {len(refused)} messages "
                                  "(deleted, or full with overflow reject-publish); they "
                                  "stay in the source")
            await asyncio.sleep(0)  # let everybody else run between batches

    @staticmethod
    def _publish(vhost: Any, p: Plan, batch: list[Message]) -> tuple[bool, list[Message]]:
        """Publish copies; (any stored, the messages a destination queue did not take)."""
        stored = False
        refused: list[Message] = []
        for msg in batch:
            if p.dest_queue is not None:
                exchange, key = "", p.dest_queue
            else:
                exchange = p.dest_exchange or ""
                key = p.dest_key if p.dest_key is not None else msg.routing_key
            expires_at = None
            # A per-message TTL starts again at the destination, as for any publish
            # (property flags: bit 8 is expiration).
            if int.from_bytes(msg.header[12:14], "big") & 0x0100:
                expiration = message_properties(msg.header).get("expiration")
                try:
                    expires_at = time.monotonic() + int(str(expiration)) / 1000.0
                except (TypeError, ValueError):
                    expires_at = None
            result = vhost.publish(exchange, key, msg.header, bytes(msg.body), msg.persistent,
                                   expires_at, set())
            stored = stored or bool(result & STORED)
            if result & REJECTED or (p.dest_queue is not None and not result & ROUTED):
                refused.append(msg)
        return stored, refused


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "text", None)
    return str(text if text else exc)
