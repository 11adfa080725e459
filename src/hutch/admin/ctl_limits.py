"""``hutch ctl``'s limit commands, rabbitmqctl's syntax, texts and exit codes (4.x
rabbitmq_cli: set_vhost_limits_command.ex and friends; checked against rabbitmqctl 3.10):

  set_vhost_limits [-p vhost] DEFINITION     the vhost's whole set (others cleared)
  clear_vhost_limits [-p vhost]
  list_vhost_limits [-p vhost] [--global]
  set_user_limits USER DEFINITION            merged into the user's limits
  clear_user_limits USER NAME|all
  list_user_limits [--user USER] [--global]  (default user: guest, as rabbitmqctl)

DEFINITION is a JSON object such as ``'{"max-connections": 10, "max-queues": 5}'``;
-1 is no limit, 0 none allowed.  A refused one prints ``Error:`` and RabbitMQ's text
and exits 69, a missing vhost exits 65.
"""

from __future__ import annotations

import json
from typing import Any

from ..broker import limits
from .ctl_io import EX_DATAERR, EX_UNAVAILABLE, EX_USAGE, Client, CtlError, HttpError, Output, q

LIMIT_COMMANDS = {"set_vhost_limits", "clear_vhost_limits", "list_vhost_limits",
                  "set_user_limits", "clear_user_limits", "list_user_limits"}


def _arity(args: list[str], n: int, usage: str) -> None:
    if len(args) != n:
        which = "not enough" if len(args) < n else "too many"
        raise CtlError(f"Error (argument validation): {which} arguments.\nUsage: {usage}",
                       EX_USAGE)


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _definition(text: str, kind: str) -> dict[str, int]:
    try:
        decoded = json.loads(text)
    except ValueError:
        raise CtlError("Error:\nJSON decoding error. Reason: badarg", EX_UNAVAILABLE) from None
    try:
        return limits.validate(decoded, kind)
    except limits.LimitsError as exc:
        raise CtlError(f"Error:\n{str(exc).rstrip()}", EX_UNAVAILABLE) from None


def _flag(args: list[str], flag: str) -> tuple[bool, list[str]]:
    return flag in args, [a for a in args if a != flag]


class LimitCommands:
    """Mixed into ``ctl.Ctl`` (which has ``client``, ``out`` and ``vhost``)."""

    client: Client
    out: Output
    vhost: str

    # -- vhost limits ---------------------------------------------------------------------
    def _vhost_limits(self) -> dict[str, int] | None:
        try:
            items = self.client.get(f"vhost-limits/{q(self.vhost)}")
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError(f"Virtual host '{self.vhost}' does not exist", EX_DATAERR) \
                    from None
            raise
        return dict(items[0]["value"]) if items else None

    def set_vhost_limits(self, args: list[str]) -> None:
        _arity(args, 1, "set_vhost_limits [--vhost <vhost>] <definition>")
        self.out.info(f'Setting vhost limits to "{args[0]}" for vhost "{self.vhost}" ...')
        new = _definition(args[0], "vhost")
        old = self._vhost_limits() or {}
        base = f"vhost-limits/{q(self.vhost)}"
        # rabbit_vhost_limit:set replaces the whole set.
        for name in old:
            if name not in new:
                self.client.request("DELETE", f"{base}/{q(name)}")
        for name, value in new.items():
            self.client.request("PUT", f"{base}/{q(name)}", {"value": value})

    def clear_vhost_limits(self, args: list[str]) -> None:
        _arity(args, 0, "clear_vhost_limits [--vhost <vhost>]")
        self.out.info(f'Clearing vhost "{self.vhost}" limits ...')
        old = self._vhost_limits()
        if old is None:
            raise CtlError("Error:\nParameter does not exist", EX_UNAVAILABLE)
        for name in old:
            self.client.request("DELETE", f"vhost-limits/{q(self.vhost)}/{q(name)}")

    def list_vhost_limits(self, args: list[str]) -> None:
        every, args = _flag(args, "--global")
        _arity(args, 0, "list_vhost_limits [--vhost <vhost>] [--global]")
        if every:
            self.out.info("Listing limits for all vhosts ...")
            rows = [{"vhost": i["vhost"], "limits": _compact(i["value"] or {})}
                    for i in self.client.get("vhost-limits")]
            self.out.table(["vhost", "limits"], rows, lambda c, v: str(v))
            return
        self.out.info(f'Listing limits for vhost "{self.vhost}" ...')
        current = self._vhost_limits()
        self.out.message(_compact(current) if current else "")

    # -- user limits ----------------------------------------------------------------------
    def _user_or_fail(self, user: str) -> None:
        try:
            self.client.get(f"users/{q(user)}")
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError(f'Error:\n{{:no_such_user, "{user}"}}', EX_UNAVAILABLE) from None
            raise

    def set_user_limits(self, args: list[str]) -> None:
        _arity(args, 2, "set_user_limits <username> <definition>")
        user, text = args
        self.out.info(f'Setting user limits to "{text}" for user "{user}" ...')
        new = _definition(text, "user")
        self._user_or_fail(user)
        for name, value in new.items():
            self.client.request("PUT", f"user-limits/{q(user)}/{q(name)}", {"value": value})

    def clear_user_limits(self, args: list[str]) -> None:
        _arity(args, 2, "clear_user_limits <username> <limit_type> | all")
        user, name = args
        self.out.info(f'Clearing all limits for user "{user}" ...' if name == "all" else
                      f'Clearing "{name}" limit for user "{user}" ...')
        self._user_or_fail(user)
        self.client.request("DELETE", f"user-limits/{q(user)}/{q(name)}")

    def list_user_limits(self, args: list[str]) -> None:
        every, args = _flag(args, "--global")
        user = "guest"
        rest: list[str] = []
        it = iter(args)
        for arg in it:
            if arg == "--user" or arg.startswith("--user="):
                user = arg.split("=", 1)[1] if "=" in arg else next(it, "")
            else:
                rest.append(arg)
        _arity(rest, 0, "list_user_limits [--user <username>] [--global]")
        if every:
            self.out.info("Listing limits for all users ...")
            rows = [{"user": i["user"], "limits": _compact(i["value"])}
                    for i in self.client.get("user-limits")]
            self.out.table(["user", "limits"], rows, lambda c, v: str(v))
            return
        self.out.info(f'Listing limits for user "{user}" ...')
        try:
            items = self.client.get(f"user-limits/{q(user)}")
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError(f'Error:\n{{:no_such_user, "{user}"}}', EX_UNAVAILABLE) from None
            raise
        self.out.message(_compact(items[0]["value"] if items else {}))
