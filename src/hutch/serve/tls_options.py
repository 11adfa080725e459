"""``hutch serve``'s listener, TLS and SASL options, and what they turn into.

Each flag is the twin of a rabbitmq.conf key (config/keys.py maps the keys to
these dests): ``--listen`` = ``listeners.tcp.*``, ``--tls-listen`` =
``listeners.ssl.*``, ``--tls-*`` = ``ssl_options.*``, ``--http-tls-*`` =
``management.ssl.*``, ``--prometheus-tls-*`` = ``prometheus.ssl.*``,
``--auth-mechanisms`` = ``auth_mechanisms.*``, ``--ssl-cert-login-from``.
List values on the command line are comma-separated.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..argtypes import from_value_error
from ..server.auth import AuthSettings, parse_cert_login_from, parse_mechanism
from ..server.listener import ListenSpec, parse_listen
from ..server.tls import (
    TlsConfigError,
    TlsContext,
    TlsSettings,
    parse_verify,
    parse_version,
)


class DefaultPort(int):
    """A built-in default port (management 15672, Prometheus 15692), told apart from the
    same number given by a flag or the file: RabbitMQ starts the plain listener by
    default only when no TLS one is configured."""


_arg = from_value_error


def listen_value(text: str) -> str:
    """``none`` or a listener address (validated now, kept as text)."""
    if text.strip().lower() != "none":
        parse_listen(text)
    return text.strip()


def comma_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def versions_list(text: str | list[str]) -> list[str]:
    items = comma_list(text) if isinstance(text, str) else text
    return [parse_version(v) for v in items]


def mechanisms_list(text: str | list[str]) -> list[str]:
    items = comma_list(text) if isinstance(text, str) else text
    return [parse_mechanism(v) for v in items]


def boolean(text: str) -> bool:
    t = text.strip().lower()
    if t in ("true", "yes", "1", "on"):
        return True
    if t in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"invalid boolean {text!r} (expected true or false)")


class _Listeners(argparse.Action):
    """``append``, except that the first flag replaces a list the configuration file
    set (flags override the file, config/load.py) instead of adding to it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = getattr(namespace, self.dest, None)
        items = [] if items is None or items is self.default else list(items)
        items.append(values)
        setattr(namespace, self.dest, items)


def _tls_group(s: argparse.ArgumentParser, flag: str, dest: str, what: str) -> None:
    s.add_argument(f"--{flag}-certfile", dest=f"{dest}_certfile", default=None, metavar="PEM",
                   help=f"{what}: server certificate (chain) file")
    s.add_argument(f"--{flag}-keyfile", dest=f"{dest}_keyfile", default=None, metavar="PEM",
                   help=f"{what}: private key file (default: in the certfile)")
    s.add_argument(f"--{flag}-cacertfile", dest=f"{dest}_cacertfile", default=None, metavar="PEM",
                   help=f"{what}: CA bundle to verify client certificates with")
    s.add_argument(f"--{flag}-password", dest=f"{dest}_password", default=None,
                   help=f"{what}: password of an encrypted private key")
    s.add_argument(f"--{flag}-verify", dest=f"{dest}_verify", default="verify_none",
                   type=_arg(parse_verify), metavar="verify_none|verify_peer",
                   help=f"{what}: ask for and verify client certificates (default verify_none)")
    s.add_argument(f"--{flag}-fail-if-no-peer-cert", dest=f"{dest}_fail_if_no_peer_cert",
                   type=_arg(boolean), default=False, metavar="BOOL",
                   help=f"{what}: with verify_peer, refuse clients without a certificate")
    s.add_argument(f"--{flag}-versions", dest=f"{dest}_versions", type=_arg(versions_list),
                   default=None, metavar="LIST",
                   help=f"{what}: TLS versions, comma-separated (default tlsv1.2,tlsv1.3)")
    s.add_argument(f"--{flag}-ciphers", dest=f"{dest}_ciphers", type=comma_list, default=None,
                   metavar="LIST", help=f"{what}: TLS 1.2 cipher suites (OpenSSL names)")
    s.add_argument(f"--{flag}-honor-cipher-order", dest=f"{dest}_honor_cipher_order",
                   type=_arg(boolean), default=False, metavar="BOOL",
                   help=f"{what}: prefer the server's cipher order")


def add_tls_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--listen", action=_Listeners, default=None, type=_arg(listen_value),
                   metavar="HOST:PORT",
                   help="plain AMQP listener, repeatable: PORT (every interface), HOST:PORT or "
                        "[IPv6]:PORT; replaces --host/--port; 'none' disables plain AMQP "
                        "(listeners.tcp.*)")
    s.add_argument("--tls-port", type=int, default=None, metavar="PORT",
                   help="AMQPS listener on --host at PORT (RabbitMQ's is 5671; 0 = any free)")
    s.add_argument("--tls-listen", action=_Listeners, default=None, type=_arg(listen_value),
                   metavar="HOST:PORT", help="AMQPS listener, repeatable (listeners.ssl.*)")
    _tls_group(s, "tls", "tls", "AMQPS (ssl_options)")
    s.add_argument("--ssl-handshake-timeout", type=int, default=5000, metavar="MS",
                   help="drop a TLS connection whose handshake takes longer (default 5000, "
                        "RabbitMQ's ssl_handshake_timeout)")
    s.add_argument("--auth-mechanisms", type=_arg(mechanisms_list), default=None, metavar="LIST",
                   help="SASL mechanisms offered, comma-separated: PLAIN, AMQPLAIN, EXTERNAL "
                        "(default PLAIN,AMQPLAIN; auth_mechanisms.*)")
    s.add_argument("--ssl-cert-login-from", type=_arg(parse_cert_login_from),
                   default="distinguished_name", metavar="distinguished_name|common_name",
                   help="EXTERNAL: the user name is the client certificate's subject DN "
                        "(default) or its CN")
    s.add_argument("--http-tls-port", type=int, default=None, metavar="PORT",
                   help="management API over HTTPS on this port (management.ssl.port)")
    s.add_argument("--http-tls-host", default="localhost",
                   help="management HTTPS listen address (default localhost)")
    _tls_group(s, "http-tls", "http_tls", "management HTTPS (management.ssl)")
    s.add_argument("--prometheus-tls-port", type=int, default=None, metavar="PORT",
                   help="Prometheus metrics over HTTPS on this port (prometheus.ssl.port)")
    s.add_argument("--prometheus-tls-host", default="localhost",
                   help="Prometheus HTTPS listen address (default localhost)")
    _tls_group(s, "prometheus-tls", "prometheus_tls", "Prometheus HTTPS (prometheus.ssl)")


def settings(args: argparse.Namespace, dest: str) -> TlsSettings:
    g = vars(args)
    return TlsSettings(
        certfile=g.get(f"{dest}_certfile"), keyfile=g.get(f"{dest}_keyfile"),
        cacertfile=g.get(f"{dest}_cacertfile"), password=g.get(f"{dest}_password"),
        verify=g.get(f"{dest}_verify") or "verify_none",
        fail_if_no_peer_cert=bool(g.get(f"{dest}_fail_if_no_peer_cert")),
        versions=g.get(f"{dest}_versions") or ["tlsv1.2", "tlsv1.3"],
        ciphers=g.get(f"{dest}_ciphers") or [],
        honor_cipher_order=bool(g.get(f"{dest}_honor_cipher_order")))


def amqp_listeners(args: argparse.Namespace) -> list[ListenSpec]:
    """--listen (or --host/--port) and --tls-listen / --tls-port, in that order."""
    plain = args.listen
    specs: list[ListenSpec] = []
    if plain is None:
        specs.append(ListenSpec(args.host, args.port))
    elif not any(p.lower() == "none" for p in plain):
        specs += [parse_listen(p) for p in plain]
    if args.tls_port is not None:
        specs.append(ListenSpec(args.host, args.tls_port, tls=True))
    for t in args.tls_listen or []:
        if t.lower() != "none":
            specs.append(parse_listen(t, tls=True))
    if not specs:
        raise SystemExit("hutch: no AMQP listener: plain TCP is disabled (listeners.tcp = none) "
                         "and no TLS listener is set")
    return specs


def _context(args: argparse.Namespace, dest: str, what: str) -> TlsContext:
    try:
        return TlsContext(settings(args, dest), what, args.ssl_handshake_timeout / 1000)
    except TlsConfigError as exc:
        raise SystemExit(f"hutch: {what} TLS: {exc}") from None


def amqp_tls(args: argparse.Namespace, specs: list[ListenSpec]) -> TlsContext | None:
    if not any(s.tls for s in specs):
        return None  # ssl_options without a TLS listener: unused, as in RabbitMQ
    return _context(args, "tls", "AMQP")


def auth_settings(args: argparse.Namespace) -> AuthSettings:
    mechanisms = tuple(args.auth_mechanisms) if args.auth_mechanisms else ("PLAIN", "AMQPLAIN")
    return AuthSettings(mechanisms=mechanisms, cert_login_from=args.ssl_cert_login_from,
                        verify_peer=args.tls_verify == "verify_peer")


def http_tls(args: argparse.Namespace, dest: str, what: str) -> Any:
    """The HttpsConfig of ``--http-tls-*`` / ``--prometheus-tls-*``, or None."""
    port = getattr(args, f"{dest}_port")
    if port is None:
        return None
    from ..admin.https import HttpsConfig  # aiohttp only when an HTTP listener is on

    return HttpsConfig(_context(args, dest, what), getattr(args, f"{dest}_host"), port)
