"""Broker objects -> the JSON objects RabbitMQ's management API returns.

Field names and shapes follow RabbitMQ 3.10's management plugin (recorded from
a real node; tests/admin/test_compare_rabbitmq.py compares them key by key).
Fields that only make sense for Erlang (reductions, garbage_collection ...)
are left out; everything a client or script reads is here.
"""

from __future__ import annotations

import base64
import os
import platform
import shutil
import time
from typing import Any
from urllib.parse import quote

from ..broker.alarms import rss
from ..broker.definitions import jsonable
from ..protocol.state import RUNNING
from ..version import RABBITMQ_VERSION, __version__
from .stats import Rates, broker_counts, channel_counts, vhost_counts, with_rates

MESSAGE_OVERHEAD = 96  # rough bytes per queued Message object, for "memory"
PAGED_OVERHEAD = 8  # a paged-out message: one int in the backlog


def node_name() -> str:
    return f"hutch@{platform.node() or 'localhost'}"


# -- queues -------------------------------------------------------------------------
def queue_counts(q: Any) -> dict[str, int]:
    return {"publish": q.published, "deliver_get": q.delivered, "ack": q.acked}


def queue_key(q: Any) -> tuple[str, str, str]:
    return ("queue", q.vhost.name, q.name)


def queue_memory(q: Any) -> int:
    """Bytes the queue holds in memory: a paged-out message is one int (its body
    are on disk)."""
    paged = getattr(q, "paged", 0)
    in_ram = q.message_count - paged + q.unacked_count
    return (q.ready_bytes - getattr(q, "paged_bytes", 0) + q.unacked_bytes
            + in_ram * MESSAGE_OVERHEAD + paged * PAGED_OVERHEAD)


def queue_info(q: Any, rates: Rates) -> dict[str, Any]:
    key = queue_key(q)
    ready, unacked = q.message_count, q.unacked_count
    owner = q.exclusive_owner
    sac = q.single_active_consumer
    info: dict[str, Any] = {
        "arguments": jsonable(q.arguments),
        "auto_delete": q.auto_delete,
        "consumers": len(q.consumers),
        "durable": q.durable,
        "exclusive": q.exclusive,
        "exclusive_consumer_tag": q.exclusive_consumer.tag if q.exclusive_consumer else None,
        "memory": queue_memory(q),
        "message_bytes": q.ready_bytes + q.unacked_bytes,
        "message_bytes_ready": q.ready_bytes,
        "message_bytes_unacknowledged": q.unacked_bytes,
        "message_stats": with_rates(queue_counts(q), rates, key),
        "messages": ready + unacked,
        "messages_details": {"rate": rates.rate(key, "messages")},
        "messages_ready": ready,
        "messages_ready_details": {"rate": rates.rate(key, "messages_ready")},
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": {"rate": rates.rate(key, "messages_unacknowledged")},
        # Paged out = only on disk (a durable queue's backlog beyond its in-memory window).
        "messages_paged_out": q.paged,
        "messages_ram": ready - q.paged + unacked,
        "messages_ready_ram": ready - q.paged,
        "messages_unacknowledged_ram": unacked,
        "name": q.name,
        "node": node_name(),
        # As RabbitMQ: the names (null when none) and the merged definition.
        "policy": q.policy.name if q.policy is not None else None,
        "operator_policy": q.operator_policy.name if q.operator_policy is not None else None,
        "effective_policy_definition": dict(q.effective_policy),
        "single_active_consumer_tag": sac.tag if sac is not None else None,
        "state": "running",
        "type": q.queue_type,
        "vhost": q.vhost.name,
    }
    if owner is not None:
        info["owner_pid_details"] = {"name": owner.name, "peer_host": owner.peer_host}
    return info


def queue_detail(q: Any, rates: Rates) -> dict[str, Any]:
    info = queue_info(q, rates)
    info["consumer_details"] = [consumer_info(c) for c in list(q.consumers)]
    return info


def queue_gauges(q: Any) -> dict[str, float]:
    return {"messages": q.message_count + q.unacked_count, "messages_ready": q.message_count,
            "messages_unacknowledged": q.unacked_count, **queue_counts(q)}


# -- exchanges ------------------------------------------------------------------------
def exchange_key(ex: Any) -> tuple[str, str, str]:
    return ("exchange", ex.vhost.name, ex.name)


def exchange_counts(ex: Any) -> dict[str, int]:
    return {"publish_in": ex.publish_in, "publish_out": ex.publish_out}


def exchange_info(ex: Any, rates: Rates | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "arguments": jsonable(ex.arguments),
        "auto_delete": ex.auto_delete,
        "durable": ex.durable,
        "internal": ex.internal,
        "name": ex.name,
        "type": ex.type_name,
        "vhost": ex.vhost.name,
    }
    if ex.policy is not None:  # RabbitMQ shows the key only when one applies
        info["policy"] = ex.policy.name
    if ex.delays:  # the plugin's info/2 item, shown for its exchanges only
        info["messages_delayed"] = ex.store.count
    # As RabbitMQ: message_stats appear once the exchange has seen a publish.
    if rates is not None and (ex.publish_in or ex.publish_out):
        info["message_stats"] = with_rates(exchange_counts(ex), rates, exchange_key(ex))
    return info


# -- bindings --------------------------------------------------------------------------
def properties_key(routing_key: str, arguments: dict[str, Any]) -> str:
    """RabbitMQ's binding id in URLs: the quoted key, plus ``~`` and a hash when
    the binding has arguments."""
    key = quote(routing_key, safe="") if routing_key else "~"
    if arguments:
        digest = base64.urlsafe_b64encode(
            repr(sorted(jsonable(arguments).items())).encode()).decode()[:22]
        key += "~" + digest
    return key


def binding_info(vhost: str, source: str, destination: str, dest_type: str, routing_key: str,
                 arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": dest_type,
        "routing_key": routing_key,
        "arguments": jsonable(arguments),
        "properties_key": properties_key(routing_key, arguments),
    }


def vhost_bindings(vhost: Any) -> list[dict[str, Any]]:
    """Every binding in a vhost, the default exchange's implicit ones first, as RabbitMQ lists them."""
    out = [binding_info(vhost.name, "", q.name, "queue", q.name, {})
           for q in list(vhost.queues.values())]
    for ex in list(vhost.exchanges.values()):
        if not ex.name:
            continue
        for b in list(ex.bindings.values()):
            dest = b.destination
            out.append(binding_info(vhost.name, ex.name, dest.name,
                                    "exchange" if dest.is_exchange else "queue",
                                    b.routing_key, b.arguments))
    return out


# -- connections, channels, consumers ------------------------------------------------------
def _peer(conn: Any) -> tuple[str, int, str, int]:
    transport = conn.transport
    peer = transport.get_extra_info("peername") if transport else None
    sock = transport.get_extra_info("sockname") if transport else None
    peer = peer or ("", 0)
    sock = sock or ("", 0)
    return str(peer[0]), int(peer[1]), str(sock[0]), int(sock[1])


def connection_state(conn: Any) -> str:
    return str(conn.flow.api_state)  # running, flow, blocked, closing (server/flow.py)


def connection_key(conn: Any) -> tuple[str, int]:
    return ("connection", id(conn))


def connection_counts(conn: Any) -> dict[str, int]:
    return {"recv_oct": conn.recv_oct, "recv_cnt": conn.recv_cnt,
            "send_oct": conn.send_oct, "send_cnt": conn.send_cnt}


# Python's names for the TLS versions -> Erlang's, which RabbitMQ reports.
_TLS_NAMES = {"TLSv1.3": "tlsv1.3", "TLSv1.2": "tlsv1.2"}


def _tls_info(conn: Any) -> dict[str, Any]:
    """RabbitMQ's ssl_* fields: null on a plain connection.  The cipher is OpenSSL's
    name (RabbitMQ gives Erlang's split into key exchange, cipher and hash)."""
    obj = conn.transport.get_extra_info("ssl_object") if conn.transport else None
    if obj is None:
        return {"ssl_protocol": None, "ssl_cipher": None, "ssl_key_exchange": None,
                "ssl_hash": None}
    cipher = obj.cipher()
    return {"ssl_protocol": _TLS_NAMES.get(obj.version() or "", obj.version()),
            "ssl_cipher": cipher[0] if cipher else None, "ssl_key_exchange": None,
            "ssl_hash": None}


def connection_info(conn: Any, rates: Rates | None = None) -> dict[str, Any]:
    peer_host, peer_port, host, port = _peer(conn)
    counts: dict[str, Any] = connection_counts(conn)
    if rates is not None:
        key = connection_key(conn)
        for name in ("recv_oct", "send_oct"):
            counts[name + "_details"] = {"rate": rates.rate(key, name)}
    info = {
        **counts,
        **_tls_info(conn),
        "auth_mechanism": getattr(conn, "auth_mechanism", ""),
        "channel_max": conn.channel_max,
        "channels": len(conn.channels),
        "client_properties": jsonable(conn.client_properties),
        "connected_at": int(conn.connected_at * 1000),
        "frame_max": conn.frame_max,
        "host": host,
        "name": conn.name,
        "node": node_name(),
        "peer_host": peer_host,
        "peer_port": peer_port,
        "port": port,
        "protocol": "AMQP 0-9-1",
        "ssl": bool(getattr(conn, "tls", False)),
        "state": connection_state(conn),
        "timeout": conn.heartbeat,
        "type": "network",
        "user": conn.user.name if conn.user else "",
        "vhost": conn.vhost.name if conn.vhost else "",
    }
    # RabbitMQ shows the name a client gave its connection (client property
    # connection_name) as user_provided_name, when there is one.
    provided = conn.client_properties.get("connection_name")
    if isinstance(provided, bytes | str) and provided:
        info["user_provided_name"] = provided.decode() if isinstance(provided, bytes) else provided
    return info


def channel_name(ch: Any) -> str:
    return f"{ch.conn.name} ({ch.number})"


def channel_info(ch: Any, rates: Rates) -> dict[str, Any]:
    conn = ch.conn
    peer_host, peer_port, _h, _p = _peer(conn)
    key = ("channel", id(ch))
    counts = channel_counts(ch)
    counts["deliver_get"] = (counts["deliver"] + counts["deliver_no_ack"] + counts["get"]
                             + counts["get_no_ack"])
    return {
        "acks_uncommitted": ch.acks_uncommitted,
        "confirm": ch.confirm,
        "connection_details": {"name": conn.name, "peer_host": peer_host, "peer_port": peer_port},
        "consumer_count": len(ch.consumers),
        "global_prefetch_count": ch.prefetch_global,
        "message_stats": with_rates(counts, rates, key),
        "messages_unacknowledged": len(ch.unacked),
        "messages_uncommitted": ch.messages_uncommitted,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "name": channel_name(ch),
        "node": node_name(),
        "number": ch.number,
        "prefetch_count": ch.prefetch_consumer,
        "state": "closing" if ch.closing else "running",
        "transactional": ch.tx,
        "user": conn.user.name if conn.user else "",
        "vhost": conn.vhost.name if conn.vhost else "",
    }


def consumer_info(c: Any) -> dict[str, Any]:
    ch = c.channel
    conn = ch.conn
    peer_host, peer_port, _h, _p = _peer(conn)
    active = c.queue.consumer_is_active(c)
    return {
        "arguments": jsonable(c.arguments),
        "ack_required": not c.no_ack,
        # RabbitMQ 4.3 (rabbit_queue_consumers:all): "up" without single active consumer
        # (released versions never report a prefetch-blocked consumer as "blocked"),
        # else "single_active" for the active one and "waiting" for the others.
        "active": active,
        "activity_status": ("single_active" if active else "waiting")
                           if c.queue.settings.single_active else "up",
        "channel_details": {
            "connection_name": conn.name,
            "name": channel_name(ch),
            "node": node_name(),
            "number": ch.number,
            "peer_host": peer_host,
            "peer_port": peer_port,
            "user": conn.user.name if conn.user else "",
        },
        "consumer_tag": c.tag,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch,
        "queue": {"name": c.queue.name, "vhost": c.queue.vhost.name},
    }


# -- users, vhosts, permissions --------------------------------------------------------------
def vhost_info(broker: Any, vhost: Any, rates: Rates) -> dict[str, Any]:
    ready = sum(q.message_count for q in vhost.queues.values())
    unacked = sum(q.unacked_count for q in vhost.queues.values())
    key = ("vhost", vhost.name)
    description, tags = vhost.description, list(vhost.tags)
    return {
        "cluster_state": {node_name(): "running"},
        "default_queue_type": "undefined",
        "description": description,
        "messages": ready + unacked,
        "messages_details": {"rate": rates.rate(key, "messages")},
        "messages_ready": ready,
        "messages_ready_details": {"rate": rates.rate(key, "messages_ready")},
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": {"rate": rates.rate(key, "messages_unacknowledged")},
        "message_stats": with_rates(vhost_counts(broker, vhost), rates, key),
        "metadata": {"description": description, "tags": tags},
        "name": vhost.name,
        "tags": tags,
        "tracing": False,
    }


# -- overview and node ---------------------------------------------------------------------------
def object_totals(broker: Any) -> dict[str, int]:
    conns = [c for c in list(broker.connections) if c.state is RUNNING]
    queues = [q for v in broker.vhosts.values() for q in v.queues.values()]
    return {
        "channels": sum(len(c.channels) for c in conns),
        "connections": len(conns),
        "consumers": sum(len(q.consumers) for q in queues),
        "exchanges": sum(len(v.exchanges) for v in broker.vhosts.values()),
        "queues": len(queues),
    }


def queue_totals(broker: Any) -> dict[str, int]:
    queues = [q for v in broker.vhosts.values() for q in v.queues.values()]
    ready = sum(q.message_count for q in queues)
    unacked = sum(q.unacked_count for q in queues)
    return {"messages": ready + unacked, "messages_ready": ready,
            "messages_unacknowledged": unacked}


def overview(broker: Any, rates: Rates, listeners: list[dict[str, Any]]) -> dict[str, Any]:
    counts = broker_counts(broker)
    msg_counts = {k: counts[k] for k in ("publish", "confirm", "deliver", "deliver_no_ack",
                                         "deliver_get", "get", "get_no_ack", "get_empty", "ack",
                                         "redeliver", "return_unroutable", "drop_unroutable")}
    totals = queue_totals(broker)
    key = ("overview",)
    return {
        "management_version": __version__,
        "rates_mode": "basic",
        "exchange_types": [
            *({"name": t, "description": f"AMQP {t} exchange, as per the AMQP specification",
               "enabled": True} for t in ("direct", "fanout", "headers", "topic")),
            {"name": "x-delayed-message", "description": "Delayed Message Exchange.",
             "enabled": True}],
        "product_version": __version__,
        "product_name": "Hutch",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": node_name(),
        "node": node_name(),
        "message_stats": with_rates(msg_counts, rates, key),
        "queue_totals": {
            **totals,
            **{f"{k}_details": {"rate": rates.rate(key, k)} for k in totals},
        },
        "object_totals": object_totals(broker),
        "listeners": listeners,
        "contexts": [],
    }


def disk_free(path: str | None) -> int:
    try:
        return shutil.disk_usage(path or os.getcwd()).free
    except OSError:
        return 0


def node_info(broker: Any, listeners: list[dict[str, Any]], data_dir: str | None) -> dict[str, Any]:
    res = broker.resources  # broker/alarms.py
    return {
        "name": node_name(),
        "type": "disc" if data_dir else "ram",
        "running": True,
        "os_pid": str(os.getpid()),
        "uptime": int((time.time() - broker.started_at) * 1000),
        # RabbitMQ's fields: RSS and the watermark in bytes, the alarms in effect.
        "mem_used": rss(),
        "mem_limit": res.mem_limit,
        "mem_alarm": "memory" in res.alarms,
        "mem_calculation_strategy": "rss",
        "disk_free": res.disk_free if res.disk_free is not None else disk_free(data_dir),
        "disk_free_limit": res.disk_limit,
        "disk_free_alarm": "disk" in res.alarms,
        # Hutch's: the settings as given (rabbitmqctl status shows them), what they are
        # relative to, and the message bytes held in memory (the alarm's estimate).
        "vm_memory_high_watermark": res.memory.setting(),
        "disk_free_limit_setting": res.disk.setting(),
        "total_memory": res.total_memory,
        "queued_message_bytes": broker.queued_bytes,
        "db_dir": data_dir or "",
        # RabbitMQ's: the configuration file(s) read at start, the log file(s) written.
        "config_files": list(broker.config_files),
        "log_files": list(broker.log_files),
        "rates_mode": "basic",
        "listeners": listeners,
        "product_name": "Hutch",
        "product_version": __version__,
        "python_version": platform.python_version(),
        "connections": len([c for c in list(broker.connections) if c.state is RUNNING]),
        "queues": sum(len(v.queues) for v in broker.vhosts.values()),
        "messages": queue_totals(broker)["messages"],
    }
