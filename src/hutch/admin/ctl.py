"""``hutch ctl``: rabbitmqctl's commands and output, over the management HTTP API.

Output follows rabbitmqctl 3.10 so scripts and habits carry over: an
informational banner (``Listing queues for vhost / ...``) that ``-q`` drops,
then a header line of column names (``--no-table-headers`` drops it; like
rabbitmqctl, an empty listing prints no header) and one tab-separated row per
object; ``--formatter json`` prints a JSON array instead.  Errors are one
``Error: ...`` line on stderr with rabbitmqctl's exit codes (64 usage, 65 data,
67 no such user, 69 unavailable / not found, 70 already exists, 77 refused).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from ..datadir import default_data_dir
from .ctl_alarms import ALARM_COMMANDS, AlarmCommands
from .ctl_environment import EnvironmentCommands
from .ctl_io import (
    DEFAULT_URL,
    EX_DATAERR,
    EX_NOPERM,
    EX_NOUSER,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    Client,
    CtlError,
    HttpError,
    Output,
    q,
)
from .ctl_limits import LIMIT_COMMANDS, LimitCommands
from .ctl_policies import POLICY_COMMANDS, PolicyCommands

# -- listing columns ------------------------------------------------------------------------------------
QUEUE_COLUMNS = ["name", "durable", "auto_delete", "arguments", "policy", "pid", "owner_pid",
                 "exclusive", "exclusive_consumer_pid", "exclusive_consumer_tag",
                 "messages_ready", "messages_unacknowledged", "messages", "messages_ready_ram",
                 "messages_unacknowledged_ram", "messages_ram", "messages_persistent",
                 "message_bytes", "message_bytes_ready", "message_bytes_unacknowledged",
                 "message_bytes_ram", "message_bytes_persistent", "head_message_timestamp",
                 "disk_reads", "disk_writes", "consumers", "consumer_utilisation",
                 "consumer_capacity", "memory", "slave_pids", "synchronised_slave_pids", "state",
                 "type", "leader", "members", "online"]


def queue_row(info: dict[str, Any]) -> dict[str, Any]:
    row = dict(info)
    row.setdefault("messages_ready_ram", info.get("messages_ready"))
    row.setdefault("messages_unacknowledged_ram", info.get("messages_unacknowledged"))
    row.setdefault("messages_ram", info.get("messages"))
    row.setdefault("messages_persistent", 0)
    row.setdefault("message_bytes_ram", info.get("message_bytes"))
    row.setdefault("message_bytes_persistent", 0)
    row.setdefault("pid", info.get("node", ""))
    row.setdefault("owner_pid", (info.get("owner_pid_details") or {}).get("name", ""))
    row.setdefault("consumer_utilisation", "")
    row.setdefault("consumer_capacity", "")
    row.setdefault("disk_reads", 0)
    row.setdefault("disk_writes", 0)
    row.setdefault("leader", info.get("node", ""))
    row.setdefault("members", [info.get("node", "")])
    row.setdefault("online", [info.get("node", "")])
    row.setdefault("slave_pids", "")
    row.setdefault("synchronised_slave_pids", "")
    row.setdefault("exclusive_consumer_pid", "")
    row.setdefault("head_message_timestamp", "")
    return row


def check_columns(requested: list[str], allowed: list[str], usage: str) -> list[str]:
    bad = [c for c in requested if c not in allowed]
    if bad:
        raise CtlError(f"Error (argument validation): Info key(s) {','.join(bad)} are not "
                       f"supported\nValid columns: {', '.join(allowed)}\nUsage: {usage}", EX_USAGE)
    return requested


# -- the commands ---------------------------------------------------------------------------------
class Ctl(PolicyCommands, LimitCommands, AlarmCommands, EnvironmentCommands):
    def __init__(self, client: Client, out: Output, vhost: str,
                 connect: Callable[[], Client | None] | None = None) -> None:
        self.client = client
        self.out = out
        self.vhost = vhost
        # A fresh client (URL and cookie looked up again), for commands that wait for
        # a broker that may not be running yet; None: nothing to try yet.
        self.connect = connect or (lambda: self.client)

    def _exists(self, path: str) -> bool:
        try:
            self.client.get(path)
        except HttpError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _need_user(self, name: str, message: str | None = None) -> dict[str, Any]:
        try:
            return self.client.get(f"users/{q(name)}")
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError(message or f'User "{name}" does not exist', EX_NOUSER) from None
            raise

    def _need_vhost(self, name: str) -> None:
        if not self._exists(f"vhosts/{q(name)}"):
            raise CtlError(f"Virtual host {name} does not exist", EX_UNAVAILABLE)

    # listings
    def list_queues(self, cols: list[str]) -> None:
        cols = check_columns(cols or ["name", "messages"], QUEUE_COLUMNS,
                             "list_queues [-p <vhost>] [<column> ...]")
        self._need_vhost(self.vhost)
        self.out.info(f"Timeout: {self.client.timeout} seconds ...")
        self.out.info(f"Listing queues for vhost {self.vhost} ...")
        rows = [queue_row(i) for i in self.client.get(f"queues/{q(self.vhost)}")]
        self.out.table(cols, rows)

    def list_exchanges(self, cols: list[str]) -> None:
        cols = check_columns(cols or ["name", "type"],
                             ["name", "type", "durable", "auto_delete", "internal", "arguments",
                              "policy", "messages_delayed"],
                             "list_exchanges [-p <vhost>] [<column> ...]")
        self._need_vhost(self.vhost)
        self.out.info(f"Listing exchanges for vhost {self.vhost} ...")
        # messages_delayed: the delayed-message exchange's info item (blank for others).
        self.out.table(cols, [dict(e, policy=e.get("policy", ""),
                                   messages_delayed=e.get("messages_delayed", ""))
                              for e in self.client.get(f"exchanges/{q(self.vhost)}")])

    def list_bindings(self, cols: list[str]) -> None:
        allowed = ["source_name", "source_kind", "destination_name", "destination_kind",
                   "routing_key", "arguments"]
        cols = check_columns(cols or allowed, allowed, "list_bindings [-p <vhost>] [<column> ...]")
        self._need_vhost(self.vhost)
        self.out.info(f"Listing bindings for vhost {self.vhost}...")
        rows = [{"source_name": b["source"], "source_kind": "exchange",
                 "destination_name": b["destination"], "destination_kind": b["destination_type"],
                 "routing_key": b["routing_key"], "arguments": b["arguments"] or []}
                for b in self.client.get(f"bindings/{q(self.vhost)}")]
        self.out.table(cols, rows)

    def list_connections(self, cols: list[str]) -> None:
        allowed = ["name", "user", "vhost", "peer_host", "peer_port", "host", "port", "state",
                   "channels", "protocol", "auth_mechanism", "timeout", "frame_max",
                   "channel_max", "client_properties", "connected_at", "ssl", "type", "pid",
                   "node"]
        cols = check_columns(cols or ["user", "peer_host", "peer_port", "state"], allowed,
                             "list_connections [<column> ...]")
        self.out.info("Listing connections ...")
        self.out.table(cols, [dict(c, pid=c["name"]) for c in self.client.get("connections")])

    def list_channels(self, cols: list[str]) -> None:
        allowed = ["pid", "name", "connection", "number", "user", "vhost", "transactional",
                   "confirm", "consumer_count", "messages_unacknowledged",
                   "messages_uncommitted", "acks_uncommitted", "messages_unconfirmed",
                   "prefetch_count", "global_prefetch_count", "state"]
        cols = check_columns(cols or ["pid", "user", "consumer_count", "messages_unacknowledged"],
                             allowed, "list_channels [<column> ...]")
        self.out.info("Listing channels ...")
        rows = [dict(c, pid=c["name"], connection=c["connection_details"]["name"])
                for c in self.client.get("channels")]
        self.out.table(cols, rows)

    def list_consumers(self, cols: list[str]) -> None:
        allowed = ["queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count",
                   "active", "activity_status", "arguments"]
        cols = check_columns(cols or ["queue_name", "channel_pid", "consumer_tag", "ack_required",
                                      "prefetch_count", "active", "arguments"], allowed,
                             "list_consumers [-p <vhost>] [<column> ...]")
        self._need_vhost(self.vhost)
        self.out.info(f"Listing consumers in vhost {self.vhost} ...")
        rows = [dict(c, queue_name=c["queue"]["name"], channel_pid=c["channel_details"]["name"],
                     arguments=c["arguments"] or [])
                for c in self.client.get(f"consumers/{q(self.vhost)}")]
        self.out.table(cols, rows)

    def list_users(self, args: list[str]) -> None:
        self.out.info("Listing users ...")
        rows = [{"user": u["name"], "tags": "[" + ", ".join(u["tags"]) + "]"}
                for u in self.client.get("users")]
        self.out.table(["user", "tags"], rows, fmt=lambda c, v: str(v))

    def list_vhosts(self, cols: list[str]) -> None:
        cols = check_columns(cols or ["name"], ["name", "description", "tags", "tracing",
                                                "cluster_state", "default_queue_type"],
                             "list_vhosts [<column> ...]")
        self.out.info("Listing vhosts ...")
        self.out.table(cols, self.client.get("vhosts"))

    def list_permissions(self, args: list[str]) -> None:
        self._need_vhost(self.vhost)
        self.out.info(f'Listing permissions for vhost "{self.vhost}" ...')
        self.out.table(["user", "configure", "write", "read"],
                       self.client.get(f"vhosts/{q(self.vhost)}/permissions"),
                       fmt=lambda c, v: str(v))

    def list_user_permissions(self, args: list[str]) -> None:
        (user,) = args
        self._need_user(user)
        self.out.info(f'Listing permissions for user "{user}" ...')
        self.out.table(["vhost", "configure", "write", "read"],
                       self.client.get(f"users/{q(user)}/permissions"), fmt=lambda c, v: str(v))

    # users
    def add_user(self, args: list[str]) -> None:
        user, password = args
        self.out.info(f'Adding user "{user}" ...')
        if self._exists(f"users/{q(user)}"):
            raise CtlError(f'User "{user}" already exists', EX_SOFTWARE)
        self.client.request("PUT", f"users/{q(user)}", {"password": password, "tags": ""})
        self.out.message("Done. Don't forget to grant the user permissions to some virtual "
                         "hosts! See 'hutch ctl help set_permissions' to learn more.",
                         quiet_drops=True)

    def delete_user(self, args: list[str]) -> None:
        (user,) = args
        self.out.info(f'Deleting user "{user}" ...')
        self._need_user(user)
        self.client.request("DELETE", f"users/{q(user)}")

    def change_password(self, args: list[str]) -> None:
        user, password = args
        self.out.info(f'Changing password for user "{user}" ...')
        info = self._need_user(user)
        self.client.request("PUT", f"users/{q(user)}",
                            {"password": password, "tags": ",".join(info["tags"])})

    def clear_password(self, args: list[str]) -> None:
        (user,) = args
        self.out.info(f'Clearing password for user "{user}" ...')
        info = self._need_user(user)
        self.client.request("PUT", f"users/{q(user)}",
                            {"password_hash": "", "tags": ",".join(info["tags"])})

    def authenticate_user(self, args: list[str]) -> None:
        user, password = args
        self.out.info(f'Authenticating user "{user}" ...')
        try:
            self.client.request("GET", "whoami", auth=(user, password))
        except HttpError as exc:
            # "Not management user" still proves the password right.
            if exc.reason == "Login failed" or exc.status != 401:
                raise CtlError(f'failed to authenticate user "{user}": user \'{user}\' - '
                               "invalid credentials", EX_DATAERR) from None
        self.out.message("Success")

    def set_user_tags(self, args: list[str]) -> None:
        if not args:
            raise CtlError("usage: set_user_tags <username> <tag> [...]", EX_USAGE)
        user, tags = args[0], args[1:]
        self.out.info(f'Setting tags for user "{user}" to [{", ".join(tags)}] ...')
        info = self._need_user(user)
        self.client.request("PUT", f"users/{q(user)}",
                            {"password_hash": info["password_hash"],
                             "hashing_algorithm": info["hashing_algorithm"],
                             "tags": ",".join(tags)})

    # vhosts and permissions
    def add_vhost(self, args: list[str]) -> None:
        (name,) = args
        self.out.info(f'Adding vhost "{name}" ...')
        existed = self._exists(f"vhosts/{q(name)}")
        self.client.request("PUT", f"vhosts/{q(name)}", {})
        if not existed:
            # The HTTP API grants the creating user full permissions (RabbitMQ does
            # the same); rabbitmqctl add_vhost grants none, so neither do we.
            self.client.request("DELETE", f"permissions/{q(name)}/{q(self.client.user)}")

    def delete_vhost(self, args: list[str]) -> None:
        (name,) = args
        self.out.info(f'Deleting vhost "{name}" ...')
        try:
            self.client.request("DELETE", f"vhosts/{q(name)}")
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError(f"Virtual host '{name}' does not exist", EX_DATAERR) from None
            raise

    def set_permissions(self, args: list[str]) -> None:
        user, conf, write, read = args
        self.out.info(f'Setting permissions for user "{user}" in vhost "{self.vhost}" ...')
        self._need_vhost(self.vhost)
        self._need_user(user, f"User {user} does not exist")
        try:
            self.client.request("PUT", f"permissions/{q(self.vhost)}/{q(user)}",
                                {"configure": conf, "write": write, "read": read})
        except HttpError as exc:
            if exc.status == 400:
                raise CtlError(exc.reason, EX_UNAVAILABLE) from None
            raise

    def clear_permissions(self, args: list[str]) -> None:
        (user,) = args
        self.out.info(f'Clearing permissions for user "{user}" in vhost "{self.vhost}" ...')
        self._need_vhost(self.vhost)
        self._need_user(user)
        try:
            self.client.request("DELETE", f"permissions/{q(self.vhost)}/{q(user)}")
        except HttpError as exc:
            if exc.status != 404:
                raise

    # queues and connections
    def _queue_or_fail(self, name: str) -> dict[str, Any]:
        try:
            return self.client.get(f"queues/{q(self.vhost)}/{q(name)}")
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError(f"queue '{name}' in vhost '{self.vhost}' not found",
                               EX_UNAVAILABLE) from None
            raise

    def purge_queue(self, args: list[str]) -> None:
        (name,) = args
        self.out.info(f"Purging queue '{name}' in vhost '{self.vhost}' ...")
        self._queue_or_fail(name)
        self.client.request("DELETE", f"queues/{q(self.vhost)}/{q(name)}/contents")

    def delete_queue(self, args: list[str]) -> None:
        flags = {a for a in args if a.startswith("-")}
        names = [a for a in args if not a.startswith("-")]
        (name,) = names
        self.out.info(f"Deleting queue '{name}' on vhost '{self.vhost}' ...")
        info = self._queue_or_fail(name)
        params = []
        if flags & {"-e", "--if-empty"}:
            params.append("if-empty=true")
        if flags & {"-u", "--if-unused"}:
            params.append("if-unused=true")
        query = ("?" + "&".join(params)) if params else ""
        try:
            self.client.request("DELETE", f"queues/{q(self.vhost)}/{q(name)}{query}")
        except HttpError as exc:
            if exc.status == 400:
                raise CtlError(exc.reason, EX_DATAERR) from None
            raise
        self.out.message(f"Queue was successfully deleted with {info['messages_ready']} ready "
                         "messages")

    def close_connection(self, args: list[str]) -> None:
        name, reason = args
        self.out.info(f"Closing connection {name}, reason: {reason}...")
        try:
            self.client.request("DELETE", f"connections/{q(name)}", headers={"X-Reason": reason})
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError(f"connection '{name}' not found (see list_connections name)",
                               EX_UNAVAILABLE) from None
            raise

    def close_all_connections(self, args: list[str]) -> None:
        (reason,) = args
        self.out.info(f"Closing all connections in vhost {self.vhost}, reason: {reason} ...")
        for c in self.client.get(f"vhosts/{q(self.vhost)}/connections"):
            self.client.request("DELETE", f"connections/{q(c['name'])}",
                                headers={"X-Reason": reason})

    # definitions
    def export_definitions(self, args: list[str]) -> None:
        (path,) = args
        defs = self.client.get("definitions")
        text = json.dumps(defs, indent=2, sort_keys=True)
        if path == "-":
            print(text)
            return
        self.out.info(f'Exporting definitions in JSON to a file at "{path}" ...')
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")

    def import_definitions(self, args: list[str]) -> None:
        (path,) = args
        try:
            raw = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        except OSError as exc:
            raise CtlError(f"cannot read {path}: {exc.strerror}", EX_DATAERR) from None
        try:
            defs = json.loads(raw)
        except ValueError as exc:
            raise CtlError(f"{path} is not valid JSON: {exc}", EX_DATAERR) from None
        source = "standard input" if path == "-" else f'a file at "{path}"'
        self.out.info(f"Importing definitions in JSON from {source} ...")
        self.client.request("POST", "definitions", defs)
        self.out.message("Successfully started definition import. This process is "
                         "asynchronous and can take some time.", quiet_drops=True)

    # node
    def status(self, args: list[str]) -> None:
        from .status import render_status

        node = self.client.get("nodes")[0]
        overview = self.client.get("overview")
        if self.out.formatter == "json":
            print(json.dumps({"node": node, "object_totals": overview["object_totals"],
                              "queue_totals": overview["queue_totals"]}))
            return
        print(render_status(node, overview, quiet=self.out.quiet))

    def await_startup(self, args: list[str]) -> None:
        """Wait until the broker answers (``hutch serve & hutch ctl await_startup``).

        rabbitmqctl's needs the node's Erlang VM up; this one also waits for the
        process to start listening, re-reading the data dir's cookie each time (a
        starting broker writes a new one, once its API listens)."""
        timeout = self.client.timeout
        deadline = time.monotonic() + timeout
        last = "not started"
        while True:
            client = self.connect()
            if client is not None:
                client.timeout = max(0.5, min(5.0, deadline - time.monotonic()))
                try:
                    client.get("healthchecks/node")
                    return
                except CtlError as exc:
                    last = str(exc)
                except HttpError as exc:
                    if exc.status != 401 or client.cookie is None:
                        raise
                    last = "the data dir's cookie is not this broker's (yet)"
            if time.monotonic() >= deadline:
                raise CtlError(f"Hutch did not start within {timeout:g} seconds: {last}",
                               EX_TEMPFAIL)
            time.sleep(0.2)

    def ping(self, args: list[str]) -> None:
        self.out.info("Will ping the Hutch node ...")
        self.client.get("healthchecks/node")
        self.out.message("Ping succeeded")


LISTINGS = {"list_queues", "list_exchanges", "list_bindings", "list_connections",
            "list_channels", "list_consumers", "list_vhosts"}
ARITY = {"list_users": 0, "list_permissions": 0, "list_user_permissions": 1, "add_user": 2,
         "delete_user": 1, "change_password": 2, "clear_password": 1, "authenticate_user": 2,
         "add_vhost": 1, "delete_vhost": 1, "set_permissions": 4, "clear_permissions": 1,
         "purge_queue": 1, "close_connection": 2, "close_all_connections": 1,
         "export_definitions": 1, "import_definitions": 1, "status": 0, "ping": 0, "environment": 0,
         "await_startup": 0}
# rabbitmqctl's defaults: await_startup waits 300 s (AwaitStartupCommand's
# @default_timeout), everything else 60 s.
DEFAULT_TIMEOUTS = {"await_startup": 300.0}
COMMANDS = sorted(LISTINGS | set(ARITY) | {"set_user_tags", "delete_queue"} | POLICY_COMMANDS
                  | LIMIT_COMMANDS | ALARM_COMMANDS)


# -- argument parsing ------------------------------------------------------------------------------
def add_ctl_parser(sub: Any) -> None:
    c = sub.add_parser("ctl", help="manage a running Hutch (rabbitmqctl's commands)",
                       description="rabbitmqctl-compatible commands, over the management API. "
                       "Commands: " + ", ".join(COMMANDS))
    c.add_argument("--url", default=os.environ.get("HUTCH_URL"),
                   help=f"management API URL (env HUTCH_URL; default: the local broker's, "
                        f"else {DEFAULT_URL})")
    c.add_argument("--user", "-u", default=os.environ.get("HUTCH_USER"),
                   help="API user (env HUTCH_USER; default: the local broker's cookie, else guest)")
    c.add_argument("--password", default=os.environ.get("HUTCH_PASSWORD"),
                   help="API password (env HUTCH_PASSWORD; default guest)")
    c.add_argument("--data-dir", default=None,
                   help="data dir of a local broker, whose ctl.cookie lets you in without a "
                        "password like rabbitmqctl's Erlang cookie (default: $HUTCH_DATA_DIR "
                        "or ~/.local/share/hutch)")
    # rabbitmqctl's global options may also come before the command.
    c.add_argument("-q", "--quiet", action="store_true", help="no informational banner lines")
    c.add_argument("-p", "--vhost", default=None, help="virtual host (default /)")
    c.add_argument("--formatter", default=None, choices=["table", "json"], help="output format")
    c.add_argument("--no-table-headers", action="store_true", help="omit the column header line")
    c.add_argument("-t", "--timeout", default=None, metavar="SECONDS",
                   help="how long to wait for the broker (default 60; await_startup 300, as "
                        "rabbitmqctl)")
    c.add_argument("-n", "--node", default=None, help="accepted for rabbitmqctl compatibility")
    c.add_argument("ctl_args", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS ...]",
                   help="e.g. list_queues name messages_ready messages_unacknowledged")


def split_options(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """rabbitmqctl accepts its options anywhere on the line: pull them out."""
    opts: dict[str, Any] = {"vhost": "/", "quiet": False, "formatter": "table", "headers": True,
                            "timeout": None}
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--":
            rest.extend(it)
            break
        if arg in ("-p", "--vhost"):
            opts["vhost"] = next(it, "/")
        elif arg.startswith("--vhost="):
            opts["vhost"] = arg.split("=", 1)[1]
        elif arg in ("-q", "--quiet", "-s", "--silent"):
            opts["quiet"] = True
        elif arg == "--formatter":
            opts["formatter"] = next(it, "table")
        elif arg.startswith("--formatter="):
            opts["formatter"] = arg.split("=", 1)[1]
        elif arg == "--no-table-headers":
            opts["headers"] = False
        elif arg in ("-t", "--timeout") or arg.startswith("--timeout="):
            value = arg.split("=", 1)[1] if "=" in arg else next(it, "")
            try:
                opts["timeout"] = float(value)
            except ValueError:
                raise CtlError(f"invalid timeout '{value}': a number of seconds",
                               EX_USAGE) from None
        elif arg in ("-n", "--node"):
            next(it, None)  # one node only: accepted for script compatibility
        else:
            rest.append(arg)
    return opts, rest


def ctl_main(argv: list[str]) -> int:
    """``hutch ctl ARGV`` without the rest of the command line (the embedded broker's ctl())."""
    parser = argparse.ArgumentParser(prog="hutch")
    add_ctl_parser(parser.add_subparsers(dest="command"))
    return run_ctl(parser.parse_args(["ctl", *argv]))


def run_ctl(args: argparse.Namespace) -> int:
    before = [] if args.timeout is None else ["--timeout", args.timeout]
    try:
        opts, rest = split_options(before + list(args.ctl_args))
    except CtlError as exc:
        return _fail(str(exc), exc.code)
    if args.quiet:
        opts["quiet"] = True
    if args.no_table_headers:
        opts["headers"] = False
    if args.vhost is not None and "-p" not in args.ctl_args and "--vhost" not in args.ctl_args:
        opts["vhost"] = args.vhost
    if args.formatter is not None and "--formatter" not in args.ctl_args:
        opts["formatter"] = args.formatter
    if not rest or rest[0] in ("help", "-h", "--help"):
        print("usage: hutch ctl [--url URL] [--user USER] [--password PASSWORD] [-q] "
              "[--formatter json] COMMAND [ARGS ...]\n\ncommands:\n  " + "\n  ".join(COMMANDS))
        return 0 if rest else EX_USAGE
    command, cmd_args = rest[0], rest[1:]
    if opts["formatter"] not in ("table", "json"):
        return _fail(f"unsupported formatter '{opts['formatter']}' (table, json)", EX_USAGE)
    if command not in COMMANDS:
        return _fail(f"unknown command '{command}'. Commands: {', '.join(COMMANDS)}", EX_USAGE)
    if command in ARITY and len(cmd_args) != ARITY[command]:
        return _fail(f"{command} takes {ARITY[command]} argument(s), got {len(cmd_args)}",
                     EX_USAGE)
    timeout = opts["timeout"]
    if timeout is None:
        timeout = DEFAULT_TIMEOUTS.get(command, 60.0)

    def connect(waiting: bool = False) -> Client | None:
        url, cookie = args.url, None
        if args.user is None and args.password is None:
            local = read_cookie(args.data_dir)
            if local is not None and (url is None or url.rstrip("/") == local["url"].rstrip("/")):
                url, cookie = local["url"], local["cookie"]
            elif waiting and url is None and args.data_dir is not None:
                return None  # that broker has not written its cookie (and URL) yet
        return Client(url or DEFAULT_URL, args.user or "guest", args.password or "guest",
                      timeout, cookie=cookie)

    client = connect() or Client(DEFAULT_URL, "guest", "guest", timeout)
    ctl = Ctl(client, Output(opts["quiet"], opts["formatter"], opts["headers"]), opts["vhost"],
              connect=lambda: connect(waiting=True))
    try:
        getattr(ctl, command)(cmd_args)
    except CtlError as exc:
        return _fail(str(exc), exc.code)
    except HttpError as exc:
        if exc.status == 401:
            return _fail(f"the management API refused user '{args.user or 'guest'}': {exc.reason} "
                         "(check --user/--password or HUTCH_USER/HUTCH_PASSWORD)", EX_NOPERM)
        return _fail(f"{exc.reason} (HTTP {exc.status})", EX_SOFTWARE)
    except ValueError:
        return _fail(f"wrong number of arguments for {command}", EX_USAGE)
    sys.stdout.flush()
    return 0


def read_cookie(data_dir: str | None) -> dict[str, str] | None:
    """The local broker's ``ctl.cookie`` (URL and token), if this user may read it."""
    path = os.path.join(data_dir or default_data_dir(), "ctl.cookie")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("url"), str) and data.get("cookie"):
        return data
    return None


def _fail(message: str, code: int) -> int:
    sys.stdout.flush()
    if message.startswith("Error"):
        print(message, file=sys.stderr)
    else:
        print(f"Error: {message}", file=sys.stderr)
    return code
