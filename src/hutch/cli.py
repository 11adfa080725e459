"""Command line: ``hutch serve | ctl | publish | work | demo | perf``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
from typing import Any
from urllib.parse import quote

from .argtypes import consumer_timeout, directory, from_value_error, segment_size, size
from .broker.alarms import disk_free_limit, memory_watermark
from .broker.defaults import seed
from .broker.node import Node
from .config import ConfigError, Loaded
from .config import load as load_config
from .config.environment import given_dests, report
from .datadir import default_data_dir, lock_data_dir
from .serve.limit_options import add_serve_arguments as add_limit_arguments
from .serve.limit_options import apply_serve_arguments as apply_limit_arguments
from .serve.logs import log_files, reopen_logs, setup_logging
from .serve.ops_options import (
    add_ops_arguments,
    default_data,
    log_settings,
    loopback_users,
    settle,
)
from .serve.systemd import notify
from .serve.tls_options import (
    DefaultPort,
    add_tls_arguments,
    amqp_listeners,
    amqp_tls,
    auth_settings,
    http_tls,
)
from .server.listener import ListenError, Server, check_can_listen
from .version import RABBITMQ_VERSION, __version__

_arg = from_value_error


def _no_flag(text: str) -> Any:
    raise ValueError("set by the configuration file's management.headers.* keys only")


def build_parser(serve_defaults: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """The command line; ``serve_defaults`` (a configuration file's values) replace the
    built-in defaults of ``hutch serve``'s flags, so a flag given still wins."""
    p = argparse.ArgumentParser(prog="hutch", description="A RabbitMQ-compatible work-queue broker")
    p.add_argument("--version", action="version",
                   version=f"hutch {__version__} (follows RabbitMQ {RABBITMQ_VERSION})")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="run the broker")
    s.add_argument("--host", default="localhost",
                   help="address to listen on (default: localhost = 127.0.0.1 and ::1)")
    s.add_argument("--port", type=int, default=5672, help="AMQP port (default 5672; 0 = any free)")
    s.add_argument("--http-port", type=int, default=DefaultPort(15672),
                   help="management HTTP API port (default 15672 unless --http-tls-port is "
                        "given; 0 = disabled)")
    s.add_argument("--http-host", default="localhost",
                   help="management API listen address (default: localhost = loopback only)")
    s.add_argument("--prometheus-port", type=int, default=DefaultPort(15692),
                   help="Prometheus metrics port, as RabbitMQ's rabbitmq_prometheus plugin "
                        "(default 15692 unless --prometheus-tls-port is given; 0 = disabled)")
    s.add_argument("--prometheus-host", default="localhost",
                   help="Prometheus metrics listen address (default: localhost = loopback only)")
    s.add_argument("--http-max-body", type=size, default=20_000_000,
                   help="largest management API request body in bytes; larger ones get 413 "
                        "(default 20000000, RabbitMQ's management.http.max_body_size)")
    s.add_argument("--data-dir", type=directory, default=None,
                   help="where durable queues, exchanges, users and persistent messages live "
                        "(default: $HUTCH_DATA_DIR or ~/.local/share/hutch)")
    s.add_argument("--in-memory", action=argparse.BooleanOptionalAction, default=False,
                   help="keep nothing on disk: every queue behaves as non-durable")
    s.add_argument("--sync", choices=["always", "none"], default="always",
                   help="always (default): a confirm means fsync'd; none: write without fsync, "
                        "like RabbitMQ classic queues")
    s.add_argument("--segment-size", type=segment_size, default=64 * 1024 * 1024,
                   help="size at which the message log starts a new segment file (default 64MiB; "
                        "small values make tests exercise rollover and reclaim)")
    s.add_argument("--consumer-timeout", type=consumer_timeout, default=None, metavar="MS",
                   help="delivery acknowledgement timeout in ms for every queue without its "
                        "own (RabbitMQ's consumer_timeout; default: none, a task may take as "
                        "long as it needs)")
    s.add_argument("--config", default=None, metavar="FILE",
                   help="configuration file in RabbitMQ's rabbitmq.conf format (default: "
                        "$HUTCH_CONFIG_FILE; flags given on the command line override it)")
    s.add_argument("--max-message-size", type=size, default=128 * 1024 * 1024,
                   help="largest accepted message body (default 128MiB, like RabbitMQ 3.x)")
    s.add_argument("--memory-high-watermark", type=_arg(memory_watermark), default=None,
                   metavar="FRACTION|SIZE",
                   help="resident memory above which publishers are blocked: a fraction of "
                        "total memory (machine or cgroup) such as 0.6, the default as in "
                        "RabbitMQ 4.x, or a size such as 2GB, 1024MiB "
                        "(vm_memory_high_watermark.relative / .absolute)")
    s.add_argument("--disk-free-limit", type=_arg(disk_free_limit), default=None,
                   metavar="SIZE|mem_relative:F",
                   help="free disk space on the data dir's filesystem below which publishers "
                        "are blocked: a size (default 50MB, as RabbitMQ) or mem_relative:1.5 "
                        "times total memory (disk_free_limit.absolute / .relative)")
    # Set by the configuration file's management.csp.policy, management.hsts.policy and
    # management.headers.* keys (admin/web_security.py).
    for flag in ("--http-csp-policy", "--http-hsts-policy"):
        s.add_argument(flag, default=None, help=argparse.SUPPRESS)
    s.add_argument("--http-headers", default=None, type=_no_flag, help=argparse.SUPPRESS)
    add_limit_arguments(s)
    add_ops_arguments(s)
    add_tls_arguments(s)
    if serve_defaults:
        s.set_defaults(**serve_defaults)
    from .admin.ctl import add_ctl_parser

    add_ctl_parser(sub)
    from .tools import add_tool_parsers

    add_tool_parsers(sub)
    from .perf import add_perf_parser

    add_perf_parser(sub)
    return p


def _listen_failure(exc: ListenError, option: str) -> SystemExit:
    """One line naming the address and what to do: people trying Hutch often have a
    RabbitMQ already listening on 5672 and 15672."""
    if exc.in_use:
        return SystemExit(f"hutch: cannot listen on {exc.address}: address already in use — "
                          f"is RabbitMQ or another hutch running? use {option}")
    return SystemExit(f"hutch: {exc}")


def _check_ports(args: argparse.Namespace) -> None:
    """Fail on a taken port before anything is created on disk."""
    for spec in args._listeners:
        try:
            check_can_listen(spec.host, spec.port)
        except ListenError as exc:
            raise _listen_failure(exc, "--tls-port" if spec.tls else "--port") from None
    if args.http_port:
        try:
            check_can_listen(args.http_host, args.http_port)
        except ListenError as exc:
            raise _listen_failure(exc, "--http-port") from None
    if args.prometheus_port:
        try:
            check_can_listen(args.prometheus_host, args.prometheus_port)
        except ListenError as exc:
            raise _listen_failure(exc, "--prometheus-port") from None
    for cfg, option in ((args._http_tls, "--http-tls-port"),
                        (args._prometheus_tls, "--prometheus-tls-port")):
        if cfg is not None:
            try:
                check_can_listen(cfg.host, cfg.port)
            except ListenError as exc:
                raise _listen_failure(exc, option) from None


def _tls_setup(args: argparse.Namespace) -> None:
    """Listeners, TLS contexts and SASL settings from the flags (serve/tls_options.py); a bad
    certificate or option stops the start here with one line."""
    # RabbitMQ starts the plain management/Prometheus listener by default only when no
    # TLS one is configured (the two may coexist when both are set).
    if isinstance(args.http_port, DefaultPort) and args.http_tls_port is not None:
        args.http_port = 0
    if isinstance(args.prometheus_port, DefaultPort) and args.prometheus_tls_port is not None:
        args.prometheus_port = 0
    args._listeners = amqp_listeners(args)
    args._tls = amqp_tls(args, args._listeners)
    args._auth = auth_settings(args)
    args._http_tls = http_tls(args, "http_tls", "management")
    args._prometheus_tls = http_tls(args, "prometheus_tls", "Prometheus")


def _on_sighup(server: Server) -> None:
    """SIGHUP: reopen the log file (logs.py) and reload the TLS certificates
    (server.reload_tls); each logs its own failure and keeps what it had."""
    reopen_logs()
    server.reload_tls()


async def serve(args: argparse.Namespace) -> int:
    _tls_setup(args)
    _check_ports(args)
    args._boot_definitions = None
    if args.load_definitions:  # read and checked before anything is created on disk
        from .admin.boot_definitions import BootDefinitions, BootDefinitionsError

        try:
            args._boot_definitions = BootDefinitions(args.load_definitions)
        except BootDefinitionsError as exc:
            raise SystemExit(f"hutch: {exc}") from None
    args._created_data_dir = None
    try:
        return await _serve(args)
    except SystemExit:
        # A start that failed before listening (a port taken between the check and
        # the listen, an unreadable store) leaves no data dir behind that it created.
        if args._created_data_dir is not None:
            shutil.rmtree(args._created_data_dir, ignore_errors=True)
        raise


async def _serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    broker = Node(loop, max_message_size=args.max_message_size,
                  memory_high_watermark=args.memory_high_watermark,
                  disk_free_limit=args.disk_free_limit, defaults=None)
    broker.consumer_timeout = args.consumer_timeout
    apply_limit_arguments(args, broker.limits)
    broker.log_files = log_files()
    if args._config is not None:
        broker.config_files = [os.path.abspath(args._config.path)]
    broker.environment = args._environment
    broker.users.loopback_only = loopback_users(args)
    defaults = default_data(args)
    lock = None
    if args.in_memory and defaults is not None:
        seed(broker, defaults)  # in memory, every start is a first start
    if not args.in_memory:
        data_dir = default_data_dir() if args.data_dir is None else args.data_dir
        if not os.path.exists(data_dir):
            args._created_data_dir = data_dir
        lock = lock_data_dir(data_dir)
        try:
            await broker.open_store(data_dir, sync=args.sync, segment_size=args.segment_size,
                                    defaults=defaults)
        except OSError as exc:
            # The disk refused a read, a rename or a write of recovery: nothing was
            # changed that a later start cannot redo, so say it in one line and stop.
            where = f" ({exc.filename})" if exc.filename else ""
            raise SystemExit(f"hutch: cannot open the message store in {data_dir}: "
                             f"{exc.strerror or exc}{where}") from None
    if args._boot_definitions is not None:
        from .admin.boot_definitions import BootDefinitionsError, load_at_boot

        try:
            await load_at_boot(broker, args._boot_definitions,
                               None if args.in_memory else data_dir,
                               args.definitions_skip_if_unchanged)
        except BootDefinitionsError as exc:
            await broker.close_store()
            raise SystemExit(f"hutch: {exc}") from None
    server = Server(broker, args.host, args.port, listeners=args._listeners, tls=args._tls,
                    auth=args._auth)
    for extra in (args._http_tls, args._prometheus_tls):
        if extra is not None:
            server.tls_contexts.append(extra.tls)
    try:
        await server.start()
    except ListenError as exc:
        await server.stop()
        await broker.close_store()
        raise _listen_failure(exc, "--port") from None
    try:
        management = await _start_management(broker, server, args)
    except ListenError as exc:
        await server.stop()
        await broker.close_store()
        raise _listen_failure(exc, "--http-port") from None
    prometheus = None
    try:
        if args.prometheus_port or args._prometheus_tls:  # aiohttp only imported when needed
            from .admin.prometheus import start_prometheus

            prometheus = await start_prometheus(broker, args.prometheus_host, args.prometheus_port,
                                                None if args.in_memory else data_dir,
                                                https=args._prometheus_tls)
    except SystemExit:
        # A taken --prometheus-port (one line already): stop what was started first.
        if management is not None:
            await management.stop()
        await server.stop()
        await broker.close_store()
        raise
    args._created_data_dir = None  # listening: the data dir is the broker's now
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP (systemd's ExecReload, logrotate's postrotate): reopen the log file and
    # reload the TLS certificates.
    loop.add_signal_handler(signal.SIGHUP, _on_sighup, server)
    log = logging.getLogger("hutch")
    if server.addresses:
        log.info("started TCP listener on %s", ", ".join(server.addresses))
    if server.tls_addresses:
        log.info("started TLS (SSL) listener on %s", ", ".join(server.tls_addresses))
    # Clients are told product "RabbitMQ" (server/connection.py): say so where people look.
    log.info("Hutch %s: tells clients it is RabbitMQ %s, whose behaviour it follows",
             __version__, RABBITMQ_VERSION)
    # The line tests and scripts wait for; keep the word "ready" and the port in it
    # (tests/brokerproc.py reads "amqp://...localhost:PORT/" and "amqps://localhost:PORT/").
    urls = []
    if server.servers:
        urls.append(f"{_ready_url(args)}localhost:{server.port}/")
    if server.tls_servers:
        urls.append(f"amqps://localhost:{server.tls_port}/")
    listening = server.addresses + [f"TLS {a}" for a in server.tls_addresses]
    print(f"hutch {__version__} ready: {' '.join(urls)} (listening on {', '.join(listening)})",
          flush=True)
    # Every listener accepts connections: a Type=notify unit is started (serve/systemd.py).
    notify(f"READY=1\nSTATUS=listening on {', '.join(listening)}\nMAINPID={os.getpid()}")
    await stop.wait()
    notify("STOPPING=1")
    if management is not None:
        await management.stop()
    if prometheus is not None:
        await prometheus.stop()
    log.info("stopping: closing connections")
    await server.stop()
    # Write the acks and requeues of the closing connections before exiting.
    await broker.close_store()
    if lock is not None:
        lock.close()
    log.info("stopped")
    return 0


def _ready_url(args: argparse.Namespace) -> str:
    """``amqp://guest:guest@`` as always for the default user; another one is named
    without its password (the ready line ends up in logs)."""
    if args.load_definitions:
        return "amqp://"
    if (args.default_user, args.default_pass) == ("guest", "guest"):
        return "amqp://guest:guest@"
    return f"amqp://{quote(args.default_user, safe='')}@"


async def _start_management(broker: Node, server: Server, args: argparse.Namespace) -> Any:
    """The management HTTP API on the broker's loop; ``--http-port 0`` disables it (the
    HTTPS one is ``--http-tls-port``)."""
    if not args.http_port and args._http_tls is None:
        return None
    from .admin.http_api import ManagementApi  # aiohttp is only imported when enabled
    from .admin.web_security import SecurityHeaders

    amqp = [(s.getsockname()[0], s.getsockname()[1]) for srv in server.servers for s in srv.sockets]
    amqps = [(s.getsockname()[0], s.getsockname()[1])
             for srv in server.tls_servers for s in srv.sockets]
    data_dir = None if args.in_memory else (args.data_dir or default_data_dir())
    security = SecurityHeaders()
    security.configure(csp=args.http_csp_policy, hsts=args.http_hsts_policy,
                       extra=args.http_headers)
    api = ManagementApi(broker, args.http_host, args.http_port, data_dir=data_dir,
                        amqp_listeners=amqp, max_body=args.http_max_body,
                        plain_http=bool(args.http_port), https=args._http_tls,
                        amqps_listeners=amqps, security=security)
    await api.start()
    log = logging.getLogger("hutch")
    # Lines of their own (tests parse them); printed before the "ready" line.
    who = "" if args.load_definitions else f", user {args.default_user}"
    if api.http_listeners:
        log.info("started HTTP listener for the management API on %s",
                 ", ".join(f"{h}:{p}" for h, p in api.http_listeners))
        print(f"hutch management API: {api.url} (HTTP basic auth{who})", flush=True)
        print(f"hutch web UI: {api.url}", flush=True)
    if api.https.addresses:
        log.info("started HTTPS listener for the management API on %s",
                 ", ".join(f"{h}:{p}" for h, p in api.https.addresses))
        print(f"hutch management API: {api.https.url} (HTTP basic auth{who})", flush=True)
        print(f"hutch web UI: {api.https.url}", flush=True)
    return api


def _flags_win(args: argparse.Namespace, given: set[str]) -> None:
    """A flag overrides the file also where the file says the same thing with another
    setting: ``--host``/``--port`` against its ``listeners.tcp.*`` list, ``--loopback-users``
    against its ``loopback_users = none``."""
    if given & {"host", "port"} and "listen" not in given:
        args.listen = None
    if "loopback_users" in given:
        args.loopback_users_none = False


def _read_config(args: argparse.Namespace) -> Loaded | None:
    """``--config FILE`` or ``$HUTCH_CONFIG_FILE``, checked before anything starts: a bad
    file is one line naming file and line, and no broker (RabbitMQ refuses to boot too)."""
    path = args.config or os.environ.get("HUTCH_CONFIG_FILE") or None
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(f"hutch: configuration file {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ctl":
        from .admin.ctl import run_ctl

        return run_ctl(args)
    if args.command in ("publish", "work", "demo"):
        from .tools import run_tool

        return run_tool(args)
    if args.command == "perf":
        from .perf import run_perf

        return run_perf(args)
    if args.command != "serve":
        build_parser().print_help()
        return 2
    config = _read_config(args)
    if config is not None:
        args = build_parser(config.values).parse_args(argv)
        _flags_win(args, given_dests(build_parser(), list(argv if argv is not None else sys.argv[1:])))
    args._config = config
    settle(args)
    args._environment = report(build_parser(), list(argv if argv is not None else sys.argv[1:]),
                               args, config)
    try:
        setup_logging(log_settings(args))
    except OSError as exc:
        raise SystemExit(f"hutch: cannot open log file {exc.filename}: {exc.strerror}") from None
    log = logging.getLogger("hutch")
    if config is not None:
        log.info("configuration file: %s", config.path)
        for warning in config.warnings:
            log.warning("%s", warning)
    if args.default_user != "guest" and args.default_pass == "guest":
        log.warning("default_user '%s' gets the password 'guest' (default_pass is not set): "
                    "anyone who guesses it can log in from anywhere", args.default_user)
    # Until the serve loop installs its handler (after recovery and the listeners), a
    # SIGHUP from logrotate or `systemctl reload` must not end the start (its default).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        import uvloop
        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(serve(args))
