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

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..argtypes import directory, segment_size
from ..broker.alarms import Limit, parse_information_unit, relative_disk_limit, relative_watermark
from ..serve import limit_options as limitargs
from ..serve import ops_options as ops
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


def _alarm_limit(name: str, absolute: Callable[[str], Limit],
                 relative: Callable[[str], Limit]) -> Combine:
    """``NAME.absolute`` / ``NAME.relative`` -> one Limit (broker/alarms.py)."""
    def combine(items: list[tuple[str, Any]]) -> Limit:
        values = dict(items)
        unknown = set(values) - {"absolute", "relative"}
        if unknown:
            raise ValueError(f"Conf file attempted to set unknown variable: "
                             f"{name}.{sorted(unknown)[0]}")
        if "absolute" in values:
            return absolute(values["absolute"])
        return relative(values["relative"])
    return combine


def absolute_memory(text: str) -> Limit:
    return Limit("absolute", parse_information_unit(text))


absolute_disk = absolute_memory


def _listener(value: str) -> str:
    from ..server.listener import parse_listen

    parse_listen(value)
    return value


def _none_listener(value: str) -> list[str]:
    if value != "none":
        raise ValueError(f"invalid value {value!r}: 'none', or set listeners.<tcp|ssl>.<name>")
    return ["none"]


def _mechanism(value: str) -> str:
    from ..server.auth import parse_mechanism

    return parse_mechanism(value)


def _mechanisms(items: list[tuple[str, Any]]) -> list[str]:
    return [v for _suffix, v in items]


def _version(value: str) -> str:
    from ..server.tls import parse_version

    return parse_version(value)


def _no_crl_check(value: str) -> None:
    # Warning and going on would accept revoked client certificates the operator meant
    # to refuse: refuse to start instead.  `false` is what Hutch does anyway.
    if c.boolean(value):
        raise ValueError("Hutch does not check certificate revocation lists; it refuses to start "
                         "rather than accept revoked certificates (set it to false or remove it)")


def _tls_keys(prefix: str, dest: str) -> list[Key]:
    """``ssl_options.*`` and its twins ``management.ssl.*`` / ``prometheus.ssl.*``."""
    return [
        Key(f"{prefix}.certfile", f"{dest}_certfile", c.text, "certificate (chain) PEM file"),
        Key(f"{prefix}.keyfile", f"{dest}_keyfile", c.text, "private key PEM file"),
        Key(f"{prefix}.cacertfile", f"{dest}_cacertfile", c.text, "CA bundle for client certificates"),
        Key(f"{prefix}.password", f"{dest}_password", c.text, "private key password", secret=True),
        Key(f"{prefix}.verify", f"{dest}_verify", c.choice("verify_none", "verify_peer"),
            "ask for and verify client certificates"),
        Key(f"{prefix}.fail_if_no_peer_cert", f"{dest}_fail_if_no_peer_cert", c.boolean,
            "refuse clients without a certificate"),
        Key(f"{prefix}.honor_cipher_order", f"{dest}_honor_cipher_order", c.boolean,
            "prefer the server's cipher order"),
        Key(f"{prefix}.versions.*", f"{dest}_versions", _version, "TLS versions (tlsv1.2, tlsv1.3)"),
        Key(f"{prefix}.ciphers.*", f"{dest}_ciphers", c.text, "TLS 1.2 cipher suites (OpenSSL names)"),
        *([Key(f"{prefix}.crl_check", None, _no_crl_check)]
          if f"{prefix}.crl_check" in RABBITMQ_KEYS else []),
    ]


def _only(accepted: Callable[[str], bool], reason: str) -> Callable[[str], None]:
    """A key Hutch does not implement whose other values would make the broker stricter
    than Hutch is (authentication, HTTPS, limits): accepted at the value that is what
    Hutch does anyway, otherwise the start is refused, since warning and going on would
    run the broker more open than its file says."""
    def check(value: str) -> None:
        try:
            ok = accepted(value)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{value!r} is not supported: {reason}")
    return check


def _false(value: str) -> bool:
    return not c.boolean(value)


def _depth_default(value: str) -> bool:
    return c.integer(0)(value) >= 100


def _refused(pattern: str, accepted: Callable[[str], bool], reason: str) -> Key:
    return Key(pattern, None, _only(accepted, reason))


def _never(value: str) -> bool:
    return False


_NO_HTTPS_3X = ("management.listener.ssl is RabbitMQ 3.x's HTTPS setting: use management.ssl.port, "
                "management.ssl.certfile and management.ssl.keyfile (Hutch refuses rather than serve "
                "plain HTTP on the port meant for HTTPS)")
_NO_LIMIT = "Hutch does not implement this limit and refuses rather than run without it"

REFUSED: list[Key] = [
    _refused("management.listener.ssl", _false, _NO_HTTPS_3X),
    _refused("management.listener.ssl_opts.*", _never, _NO_HTTPS_3X),
    _refused("management.listener.ssl_opts.*.*", _never, _NO_HTTPS_3X),
    _refused("management.disable_basic_auth", _false,
             "the management API authenticates with HTTP basic auth only (no OAuth 2)"),
    _refused("prometheus.authentication.enabled", _false,
             "the Prometheus endpoint has no authentication; keep it on loopback "
             "(prometheus.tcp.ip) or a private network"),
    _refused("credential_validator.validation_backend", lambda v: v == "accept_everything",
             "passwords are not checked against a policy"),
    _refused("credential_validator.min_length", _never, "passwords are not checked against a policy"),
    _refused("credential_validator.regexp", _never, "passwords are not checked against a policy"),
    _refused("management.restrictions.operator_policy_changes.disabled", _false,
             "operator policies can always be changed by administrators"),
    *(_refused(f"{p}.depth", _depth_default,
               "Python's ssl cannot limit the certificate chain's depth (OpenSSL's 100 applies)")
      for p in ("ssl_options", "management.ssl", "prometheus.ssl")),
    _refused("password_hashing_module", lambda v: v == "rabbit_password_hashing_sha256",
             "Hutch hashes passwords with SHA-256 (rabbit_password_hashing_sha256)"),
    *(_refused(k, lambda v: v == "infinity", _NO_LIMIT)
      for k in ("vhost_max", "channel_max_per_node", "consumer_max_per_channel",
                "cluster_queue_limit", "cluster_exchange_limit")),
]


# management.headers.* (rabbit_mgmt_headers) -> the header each one sets.
MANAGEMENT_HEADERS = {
    "content_type_options": "X-Content-Type-Options",
    "xss_protection": "X-XSS-Protection",
    "frame_options": "X-Frame-Options",
    "referrer_policy": "Referrer-Policy",
}


def _management_headers(items: list[tuple[str, Any]]) -> dict[str, str]:
    """``management.headers.NAME = VALUE`` -> {header name: value} (admin/web_security.py)."""
    out: dict[str, str] = {}
    for suffix, value in items:
        if suffix not in MANAGEMENT_HEADERS:
            raise ValueError(f"Conf file attempted to set unknown variable: "
                             f"management.headers.{suffix}")
        out[MANAGEMENT_HEADERS[suffix]] = value
    return out


KEYS: list[Key] = [
    # -- lead: listeners of the HTTP side, message and store settings --
    Key("management.tcp.port", "http_port", c.port, "management API port (0 = disabled)"),
    Key("management.tcp.ip", "http_host", c.ip_address, "management API listen address"),
    # RabbitMQ 3.x spelling of the same two keys, still accepted by 4.x.
    Key("management.listener.port", "http_port", c.port),
    Key("management.listener.ip", "http_host", c.ip_address),
    Key("management.http.max_body_size", "http_max_body", c.integer(0),
        "largest management API request body in bytes"),
    # The headers of every management reply (Hutch has safe defaults; these replace them).
    Key("management.csp.policy", "http_csp_policy", c.text, "Content-Security-Policy header"),
    Key("management.hsts.policy", "http_hsts_policy", c.text, "Strict-Transport-Security header"),
    Key("management.headers.*", "http_headers", c.text,
        "X-Content-Type-Options, X-XSS-Protection, X-Frame-Options, Referrer-Policy headers",
        combine=_management_headers),
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
    Key("hutch.data_dir", "data_dir", c.argtype(directory), "where durable data lives"),
    Key("hutch.in_memory", "in_memory", c.boolean, "keep nothing on disk"),
    Key("hutch.sync", "sync", c.choice("always", "none"),
        "always: a confirm means fsync'd; none: write without fsync"),
    Key("hutch.segment_size", "segment_size", c.argtype(segment_size),
        "message log segment size (4k ... 1g)"),
    # -- tls -- (converters in serve/tls_options.py / server/tls.py; README "TLS")
    Key("listeners.tcp", "listen", _none_listener, "'none' disables plain AMQP"),
    Key("listeners.tcp.*", "listen", _listener, "plain AMQP listener: PORT, IP:PORT, [IPv6]:PORT"),
    Key("listeners.ssl", "tls_listen", _none_listener, "'none': no AMQPS listener"),
    Key("listeners.ssl.*", "tls_listen", _listener, "AMQPS listener: PORT, IP:PORT, [IPv6]:PORT"),
    *_tls_keys("ssl_options", "tls"),
    Key("ssl_handshake_timeout", "ssl_handshake_timeout", c.integer(1),
        "TLS handshake timeout in ms"),
    Key("ssl_cert_login_from", "ssl_cert_login_from",
        c.choice("distinguished_name", "common_name"), "EXTERNAL: the user name's source"),
    Key("auth_mechanisms.*", "auth_mechanisms", _mechanism, "SASL mechanisms offered",
        combine=_mechanisms),
    Key("management.ssl.port", "http_tls_port", c.port, "management API HTTPS port"),
    Key("management.ssl.ip", "http_tls_host", c.ip_address, "management HTTPS listen address"),
    *_tls_keys("management.ssl", "http_tls"),
    Key("prometheus.ssl.port", "prometheus_tls_port", c.port, "Prometheus HTTPS port"),
    Key("prometheus.ssl.ip", "prometheus_tls_host", c.ip_address, "Prometheus HTTPS address"),
    *_tls_keys("prometheus.ssl", "prometheus_tls"),
    # -- alarms --
    # .absolute and .relative set one threshold; with both, absolute wins (RabbitMQ's
    # schema translation does the same, with a warning).
    Key("vm_memory_high_watermark.*", "memory_high_watermark", c.text,
        "memory alarm threshold: .relative = fraction of total memory, .absolute = size",
        combine=_alarm_limit("vm_memory_high_watermark", absolute_memory, relative_watermark)),
    Key("disk_free_limit.*", "disk_free_limit", c.text,
        "disk alarm threshold: .absolute = size, .relative = times total memory",
        combine=_alarm_limit("disk_free_limit", absolute_disk, relative_disk_limit)),
    # -- limits --
    # connection_max and handshake_timeout take ``infinity``; frame_max is cuttlefish's
    # bytesize (131072, 128KB: powers of 1024); 0 is no limit for channel_max/frame_max.
    # max_connections is RabbitMQ 4.x's name for it (connection_max its alias there).
    *(Key(name, "connection_max", c.argtype(limitargs.connection_max),
          "connections the node accepts at once (infinity = no limit)")
      for name in ("connection_max", "max_connections")),
    Key("channel_max", "channel_max", c.argtype(limitargs.channel_max),
        "channels per connection proposed in connection.tune (0 = no limit)"),
    Key("frame_max", "frame_max", c.argtype(limitargs.frame_max_bytesize),
        "largest frame proposed in connection.tune (0 = no limit)"),
    Key("heartbeat", "heartbeat", c.argtype(limitargs.heartbeat),
        "heartbeat timeout in seconds proposed in connection.tune (0 = off)"),
    Key("handshake_timeout", "handshake_timeout", c.argtype(limitargs.handshake_timeout),
        "ms a new connection has to complete the AMQP handshake (or infinity)"),
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
    *REFUSED,
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
    # -- alarms --
    "vm_memory_high_watermark_paging_ratio": "not used since RabbitMQ 4.0; Hutch pages "
                                             "queues by its own rule (in-memory window)",
    "memory_monitor_interval": "not used since RabbitMQ 4.0; Hutch samples its memory every 0.5 s",
    "total_memory_available_override_value": "Hutch reads total memory from the machine and "
                                             "its cgroup's limit; use "
                                             "vm_memory_high_watermark.absolute",
    "proxy_protocol": "Hutch does not read the PROXY protocol header",
    "reverse_dns_lookups": "Hutch shows peer addresses, not names",
    "num_acceptors.tcp": "one event loop accepts connections",
    "num_acceptors.ssl": "one event loop accepts connections",
    "tcp_listen_options.*": "Hutch uses the operating system's socket defaults and TCP_NODELAY",
    # -- tls --
    **{f"{p}.{k}": reason for p in ("ssl_options", "management.ssl", "prometheus.ssl")
       for k, reason in (
           ("cacerts.*", "give the CA bundle as a file: cacertfile"),
           ("cert", "give the certificate as a file: certfile"),
           ("key.*", "give the key as a file: keyfile"),
           ("dh", "TLS 1.2/1.3 use ECDHE; no DH parameters are needed"),
           ("dhfile", "TLS 1.2/1.3 use ECDHE; no DH parameters are needed"),
           ("honor_ecc_order", "OpenSSL chooses the curve"),
           ("client_renegotiation", "OpenSSL's default applies (no client renegotiation "
                                    "in TLS 1.3)"),
           ("secure_renegotiate", "OpenSSL always uses secure renegotiation"),
           ("reuse_sessions", "OpenSSL's session cache applies"),
           ("log_alert", "failed handshakes are always logged, one line each"),
           ("sni", "a server-side listener has one certificate"),
           ("psk_identity", "pre-shared keys are not supported"),
           ("bypass_pem_cache", "certificate files are read at start and on SIGHUP"),
           ("hostname_verification", "a server does not verify client host names"),
       )},
    "ssl_cert_login_san_type": "EXTERNAL takes the user name from the subject "
                               "(distinguished_name or common_name), not a SAN",
    "ssl_cert_login_san_index": "EXTERNAL takes the user name from the subject "
                                "(distinguished_name or common_name), not a SAN",
    "ssl_allow_poodle_attack": "SSLv3 is never enabled: Hutch speaks TLS 1.2 and 1.3 only",
    "num_ssl_acceptors": "one event loop accepts connections",
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


_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def segments(key: str) -> list[str]:
    """A file's key split as cuttlefish splits it: ``loopback_users.app\\.user`` is
    ``["loopback_users", "app.user"]``."""
    return [s.replace("\\.", ".") for s in _UNESCAPED_DOT.split(key)]


def matches(pattern: str, key: str) -> str | None:
    """The part of ``key`` a one-``*`` pattern matched ('' for an exact match), or None.
    Patterns with several ``*`` return the matched parts joined by '.'."""
    p, k = pattern.split("."), segments(key)
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
