"""The keys of a Hutch configuration file: what each does, and what Hutch says about the
rest of RabbitMQ's keys.

A key is looked up in this order (``classify``):

1. ``KEYS``: Hutch does what RabbitMQ does with it.  Each maps to the ``dest`` of a
   ``hutch serve`` flag, so a flag given on the command line overrides the file.  A
   pattern key (``listeners.tcp.*``) gathers every key it matches; ``combine`` turns
   them into the flag's value.  ``dest=None`` checks the value and does nothing (the
   value is what Hutch does anyway, e.g. ``auth_backends.1 = internal``).
2. ``UNSUPPORTED``: a RabbitMQ key Hutch does not implement, with the reason; warned
   about once at start.  Keys of RabbitMQ's schemas not listed here are warned about
   too, with a reason by kind (``rabbitmq_reason``).
3. Anything else is not a RabbitMQ key at all: the broker refuses to start, naming
   the line (RabbitMQ: "Conf file attempted to set unknown variable").

Each area of the broker registers its keys in its own section below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import ops_options as ops
from ..argtypes import segment_size
from . import convert as c
from .rabbitmq_keys import RABBITMQ_KEYS

Combine = Callable[[list[tuple[str, Any]]], Any]


def in_order(items: list[tuple[str, Any]]) -> list[Any]:
    """The default for pattern keys: the values in file order (``auth_mechanisms.1``,
    ``.2``... RabbitMQ keeps them in file order too, not by the suffix's value)."""
    return [value for _suffix, value in items]


@dataclass(frozen=True)
class Key:
    pattern: str
    dest: str | None
    convert: Callable[[str], Any]
    help: str = ""
    # Shown as ******** by `hutch ctl environment` and in logs.
    secret: bool = False
    # Pattern keys only: [(the part matched by '*', value), ...] -> the dest's value.
    combine: Combine = in_order

    @property
    def is_pattern(self) -> bool:
        return "*" in self.pattern


def _only_internal(value: str) -> None:
    if value not in ("internal", "rabbit_auth_backend_internal"):
        raise ValueError(f"Hutch has only the internal user database, not {value!r}; it refuses to "
                         f"start rather than ignore an authentication backend")


KEYS: list[Key] = [
    # -- lead: listeners of the HTTP side, message and store settings --
    Key("management.tcp.port", "http_port", c.port, "management API port (0 = disabled)"),
    Key("management.tcp.ip", "http_host", c.ip_address, "management API listen address"),
    # RabbitMQ 3.x spelling of the same two keys, still accepted by 4.x.
    Key("management.listener.port", "http_port", c.port),
    Key("management.listener.ip", "http_host", c.ip_address),
    Key("management.http.max_body_size", "http_max_body", c.integer(0),
        "largest management API request body in bytes"),
    Key("prometheus.tcp.port", "prometheus_port", c.port, "Prometheus endpoint port (0 = disabled)"),
    Key("prometheus.tcp.ip", "prometheus_host", c.ip_address, "Prometheus endpoint listen address"),
    Key("max_message_size", "max_message_size", c.integer(1, 536870912),
        "largest message body in bytes (RabbitMQ: at most 512 MiB)"),
    Key("consumer_timeout", "consumer_timeout", c.integer(1),
        "delivery acknowledgement timeout in ms"),
    Key("auth_backends.*", None, _only_internal),
    Key("auth_backends.*.authn", None, _only_internal),
    Key("auth_backends.*.authz", None, _only_internal),
    # Hutch's own keys, in a namespace RabbitMQ does not use.
    Key("hutch.data_dir", "data_dir", c.text, "where durable data lives"),
    Key("hutch.in_memory", "in_memory", c.boolean, "keep nothing on disk"),
    Key("hutch.sync", "sync", c.choice("always", "none"),
        "always: a confirm means fsync'd; none: write without fsync"),
    Key("hutch.segment_size", "segment_size", c.argtype(segment_size),
        "message log segment size (4k ... 1g)"),
    # -- tls --
    # -- alarms --
    # -- limits --
    # -- ops --
    # Logs (RabbitMQ 4.x's log.* keys for the default category; logs.py).
    Key("log.file", "log_file", ops.log_file, "log file path, or false for none"),
    Key("log.file.level", "log_file_level", ops.log_level, "level of the file output"),
    Key("log.file.formatter", "log_file_formatter", ops.log_formatter, "plaintext or json"),
    Key("log.file.rotation.size", "log_file_rotation_size", c.integer(0),
        "rotate the file at this many bytes (0: never)"),
    Key("log.file.rotation.count", "log_file_rotation_count", c.integer(0),
        "rotated files kept, FILE.0 (newest) ... FILE.<count-1>"),
    Key("log.dir", "log_dir", c.text, "directory of a relative log.file"),
    Key("log.console", "log_console", c.boolean, "log to the console"),
    Key("log.console.level", "log_console_level", ops.log_level, "level of the console output"),
    Key("log.console.formatter", "log_console_formatter", ops.log_formatter, "plaintext or json"),
    Key("log.console.stdio", "log_console_stdio", ops.log_stdio, "stdout or stderr"),
    Key("log.default.level", "log_level", ops.log_level, "level of every output without its own"),
    # The first start's user and vhost (broker/defaults.py), loopback-only users.
    Key("default_user", "default_user", ops.non_empty, "user created on a blank node"),
    Key("default_pass", "default_pass", ops.password, "its password", secret=True),
    Key("default_vhost", "default_vhost", ops.non_empty, "vhost created on a blank node"),
    Key("default_permissions.configure", "default_permissions_configure", ops.regex,
        "the default user's configure permission"),
    Key("default_permissions.read", "default_permissions_read", ops.regex,
        "the default user's read permission"),
    Key("default_permissions.write", "default_permissions_write", ops.regex,
        "the default user's write permission"),
    # default_user_tags.TAG = true|false: the tags set to true (replacing administrator).
    Key("default_user_tags.*", "default_user_tags", c.boolean, "the default user's tags",
        combine=lambda items: [tag for tag, on in items if on]),
    # loopback_users.USER = true|false: the users set to true (replacing guest);
    # loopback_users = none: nobody, whatever loopback_users.USER says (rabbit.schema).
    Key("loopback_users", "loopback_users_none", ops.only_none, "none: no loopback-only user"),
    Key("loopback_users.*", "loopback_users", c.boolean, "users who may only connect from "
        "loopback", combine=lambda items: [user for user, on in items if on]),
    # Definitions imported at boot (admin/boot_definitions.py); the 3.x key and 4.x's.
    Key("load_definitions", "load_definitions", c.text, "definitions file or directory "
        "imported at boot"),
    Key("definitions.local.path", "load_definitions", c.text, "definitions file or directory "
        "imported at boot"),
    Key("definitions.import_backend", None, ops.local_backend),
    Key("definitions.skip_if_unchanged", "definitions_skip_if_unchanged", c.boolean,
        "import only if the definitions changed since the last import"),
]


# RabbitMQ keys Hutch does not implement, with the reason the warning gives.  A pattern
# covers every key under it.
UNSUPPORTED: dict[str, str] = {
    "cluster_name": "Hutch reports its node name as the cluster name",
    "collect_statistics_interval": "Hutch's management statistics are sampled every 5 s",
    "management.rates_mode": "Hutch keeps basic message rates only",
    "management.sample_retention_policies.*.*": "Hutch keeps basic message rates only",
    "default_queue_type": "declare the queue type in x-queue-type (or a policy can't: as RabbitMQ 3.x)",
    "vm_memory_calculation_strategy": "Hutch measures the resident memory of its process",
    "proxy_protocol": "Hutch does not read the PROXY protocol header",
    "reverse_dns_lookups": "Hutch shows peer addresses, not names",
    "num_acceptors.tcp": "one event loop accepts connections",
    "num_acceptors.ssl": "one event loop accepts connections",
    "tcp_listen_options.*": "Hutch uses the operating system's socket defaults and TCP_NODELAY",
    # -- ops --
    "log.file.rotation.date": "Hutch rotates by size (log.file.rotation.size) or leaves "
                              "rotation to logrotate",
    "log.file.rotation.compress": "Hutch does not compress rotated files (logrotate can)",
    "default_users.*.*": "Hutch seeds one default user (default_user); add others with "
                         "load_definitions",
}

# Reasons for the rest of RabbitMQ's keys, by the start of the key, then by plugin.
_BY_PREFIX = [
    (("cluster_formation.", "cluster_partition_handling", "cluster_keepalive_interval",
      "cluster_queue_limit", "cluster_tags.", "node_tags.", "net_ticktime", "distribution.",
      "mnesia_", "metadata_store.", "raft.", "delegate_count", "mirroring_",
      "queue_master_locator", "queue_leader_locator", "ha_"),
     "Hutch is a single node; for a cluster, move to RabbitMQ"),
    (("quorum_queue.", "stream.", "classic_queue.", "queue_index_", "message_store_",
      "queue_types.", "lazy_queue_explicit_gc_run_operation_threshold",
      "queue_explicit_gc_run_operation_threshold"),
     "Hutch's queues and store are its own (see the README's Durability section)"),
    (("background_gc_", "hipe_compile", "erlang.", "sysmon_handler.", "socket_writer.",
      "default_worker_pool_size", "msg_store_", "credit_flow_"),
     "an Erlang runtime setting"),
    (("log.",), "a RabbitMQ logging feature Hutch does not have"),
]


def rabbitmq_reason(key: str) -> str | None:
    """Why a key of RabbitMQ's schemas does nothing in Hutch; None if it is not one."""
    plugin = _rabbitmq_plugin(key)
    if plugin is None:
        return None
    for prefixes, reason in _BY_PREFIX:
        if key.startswith(prefixes):
            return reason
    if plugin not in ("rabbit", "rabbitmq_management", "rabbitmq_management_agent",
                      "rabbitmq_prometheus", "rabbitmq_web_dispatch"):
        return f"the {plugin} plugin is not part of Hutch"
    return "not implemented by Hutch"


def matches(pattern: str, key: str) -> str | None:
    """The part of ``key`` a one-``*`` pattern matched ('' for an exact match), or None.
    Patterns with several ``*`` return the matched parts joined by '.'."""
    p, k = pattern.split("."), key.split(".")
    if len(p) != len(k):
        return None
    parts = []
    for ps, ks in zip(p, k, strict=True):
        if ps == "*":
            parts.append(ks)
        elif ps != ks:
            return None
    return ".".join(parts)


def _rabbitmq_plugin(key: str) -> str | None:
    plugin = RABBITMQ_KEYS.get(key)
    if plugin is not None:
        return plugin
    for pattern, plugin in RABBITMQ_KEYS.items():
        if "*" in pattern and matches(pattern, key) is not None:
            return plugin
    return None


def find_key(key: str) -> tuple[Key, str] | None:
    """The Hutch key a file's key sets, and the part its pattern matched."""
    for k in KEYS:
        suffix = matches(k.pattern, key)
        if suffix is not None:
            return k, suffix
    return None


def unsupported_reason(key: str) -> str | None:
    for pattern, reason in UNSUPPORTED.items():
        if matches(pattern, key) is not None:
            return reason
    return rabbitmq_reason(key)
