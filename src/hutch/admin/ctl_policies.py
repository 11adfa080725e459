"""``hutch ctl``'s policy commands, rabbitmqctl's syntax and output (4.x rabbitmq_cli:
set_policy_command.ex and friends; texts checked against rabbitmqctl 3.10, which has
the same ones):

  set_policy [-p vhost] [--priority N] [--apply-to X] NAME PATTERN DEFINITION
  clear_policy [-p vhost] NAME
  list_policies [-p vhost]
  set_operator_policy / clear_operator_policy / list_operator_policies (the same)

A refused definition prints ``Error:`` and RabbitMQ's ``Validation failed`` text
and exits 69, a missing policy ``Parameter does not exist`` (69), a missing vhost
exits 65, bad usage 64.
"""

from __future__ import annotations

import json
from typing import Any

from .ctl_io import EX_DATAERR, EX_UNAVAILABLE, EX_USAGE, Client, CtlError, HttpError, Output, q

COLUMNS = ["vhost", "name", "pattern", "apply-to", "definition", "priority"]
SET_USAGE = ("{cmd} [--vhost <vhost>] [--priority <priority>] [--apply-to <apply-to>] "
             "<name> <pattern> <definition>")
POLICY_COMMANDS = {"set_policy", "clear_policy", "list_policies", "set_operator_policy",
                   "clear_operator_policy", "list_operator_policies"}


def _no_vhost(vhost: str) -> CtlError:
    return CtlError(f"Virtual host '{vhost}' does not exist", EX_DATAERR)


class PolicyCommands:
    """Mixed into ``ctl.Ctl`` (which has ``client``, ``out`` and ``vhost``)."""

    client: Client
    out: Output
    vhost: str

    # -- set ---------------------------------------------------------------------------
    def set_policy(self, args: list[str]) -> None:
        self._set(args, operator=False)

    def set_operator_policy(self, args: list[str]) -> None:
        self._set(args, operator=True)

    def _set(self, args: list[str], operator: bool) -> None:
        cmd = "set_operator_policy" if operator else "set_policy"
        priority: Any = 0
        apply_to = "all"
        rest: list[str] = []
        it = iter(args)
        for arg in it:
            if arg == "--priority" or arg.startswith("--priority="):
                priority = arg.split("=", 1)[1] if "=" in arg else next(it, "")
            elif arg == "--apply-to" or arg.startswith("--apply-to="):
                apply_to = arg.split("=", 1)[1] if "=" in arg else next(it, "")
            else:
                rest.append(arg)
        try:
            priority = int(priority)
        except ValueError:
            raise CtlError(f"Error (argument validation): Invalid options for this command:\n"
                           f"--priority : {priority}\nUsage: "
                           + SET_USAGE.format(cmd=cmd), EX_USAGE) from None
        if len(rest) != 3:
            which = "not enough" if len(rest) < 3 else "too many"
            raise CtlError(f"Error (argument validation): {which} arguments.\nUsage: "
                           + SET_USAGE.format(cmd=cmd), EX_USAGE)
        name, pattern, definition = rest
        what = "operator policy override" if operator else "policy"
        self.out.info(f'Setting {what} "{name}" for pattern "{pattern}" to "{definition}" with '
                      f'priority "{priority}" for vhost "{self.vhost}" ...')
        try:
            decoded = json.loads(definition)
        except ValueError as exc:
            raise CtlError(f"Error:\nCould not parse JSON document: {exc}", EX_UNAVAILABLE) \
                from None
        body = {"pattern": pattern, "definition": decoded, "priority": priority,
                "apply-to": apply_to}
        try:
            self.client.request("PUT", f"{self._base(operator)}/{q(self.vhost)}/{q(name)}", body)
        except HttpError as exc:
            if exc.status == 404:
                raise _no_vhost(self.vhost) from None
            if exc.status == 400:
                raise CtlError(f"Error:\n{exc.reason}", EX_UNAVAILABLE) from None
            raise

    # -- clear -------------------------------------------------------------------------
    def clear_policy(self, args: list[str]) -> None:
        self._clear(args, operator=False)

    def clear_operator_policy(self, args: list[str]) -> None:
        self._clear(args, operator=True)

    def _clear(self, args: list[str], operator: bool) -> None:
        if len(args) != 1:
            raise CtlError("Error (argument validation): "
                           f"{'not enough' if not args else 'too many'} arguments.", EX_USAGE)
        (name,) = args
        what = "operator policy" if operator else "policy"
        self.out.info(f'Clearing {what} "{name}" on vhost "{self.vhost}" ...')
        try:
            self.client.request("DELETE", f"{self._base(operator)}/{q(self.vhost)}/{q(name)}")
        except HttpError as exc:
            if exc.status == 404:
                raise CtlError("Error:\nParameter does not exist", EX_UNAVAILABLE) from None
            raise

    # -- list --------------------------------------------------------------------------
    def list_policies(self, args: list[str]) -> None:
        self._list(args, operator=False)

    def list_operator_policies(self, args: list[str]) -> None:
        self._list(args, operator=True)

    def _list(self, args: list[str], operator: bool) -> None:
        if args:
            raise CtlError("Error (argument validation): too many arguments.", EX_USAGE)
        what = "operator policy overrides" if operator else "policies"
        self.out.info(f'Listing {what} for vhost "{self.vhost}" ...')
        try:
            items = self.client.get(f"{self._base(operator)}/{q(self.vhost)}")
        except HttpError as exc:
            if exc.status == 404:
                raise _no_vhost(self.vhost) from None
            raise
        # rabbit_policy:list_formatted: lowest priority first; the definition as JSON.
        items.sort(key=lambda p: p["priority"])
        rows = [dict(p, definition=json.dumps(p["definition"], separators=(",", ":")))
                for p in items]
        self.out.table(COLUMNS, rows)

    @staticmethod
    def _base(operator: bool) -> str:
        return "operator-policies" if operator else "policies"
