"""``hutch ctl``'s resource alarm commands, rabbitmqctl's syntax, checks and banners
(4.x rabbitmq_cli set_vm_memory_high_watermark_command.ex, set_disk_free_limit_command.ex):

  set_vm_memory_high_watermark <fraction> | absolute <value>
  set_disk_free_limit <disk_limit> | mem_relative <fraction>

They go through the Hutch-only endpoints of admin/api_alarms.py.  As rabbitmqctl
(checked against 3.10.8): a missing or extra argument exits 64, a bad value 65
(``Error (argument validation): Bad argument: ...``).
"""

from __future__ import annotations

from typing import Any

from ..broker.alarms import parse_information_unit
from .ctl_io import EX_DATAERR, EX_USAGE, Client, CtlError, Output

ALARM_COMMANDS = {"set_vm_memory_high_watermark", "set_disk_free_limit"}
MEMORY_USAGE = "set_vm_memory_high_watermark <fraction> | absolute <value>"
DISK_USAGE = "set_disk_free_limit <disk_limit> | mem_relative <fraction>"


def _usage(problem: str, usage: str) -> CtlError:
    return CtlError(f"Error (argument validation): {problem}\nUsage: {usage}", EX_USAGE)


def _bad(detail: str, usage: str) -> CtlError:
    text = f"Bad argument: {detail}" if detail else "Bad argument."
    return CtlError(f"Error (argument validation): {text}\nUsage: {usage}", EX_DATAERR)


def _fraction(text: str, usage: str, at_most: float | None) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad("", usage) from None
    if value < 0 or (at_most is not None and value > at_most):
        if at_most is None:
            raise _bad("", usage)
        raise _bad("The threshold should be a fraction between 0.0 and 1.0", usage)
    return value


def _size(text: str, usage: str) -> int:
    try:
        return parse_information_unit(text)
    except ValueError:
        if usage == DISK_USAGE:
            raise _bad("", usage) from None
        if text[:1].isdigit():
            raise _bad("Invalid units.", usage) from None
        raise _bad("The threshold should be an integer.", usage) from None


class AlarmCommands:
    """Mixed into ``ctl.Ctl`` (which has ``client`` and ``out``)."""

    client: Client
    out: Output

    def _node_name(self) -> str:
        nodes: Any = self.client.get("nodes")
        return str(nodes[0]["name"]) if nodes else "hutch"

    def set_vm_memory_high_watermark(self, args: list[str]) -> None:
        if not args or args == ["absolute"]:
            raise _usage("not enough arguments.", MEMORY_USAGE)
        if args[0] == "absolute":
            if len(args) > 2:
                raise _usage("too many arguments.", MEMORY_USAGE)
            body: dict[str, Any] = {"absolute": _size(args[1], MEMORY_USAGE)}
            banner = f"{args[1]} bytes"
        else:
            if len(args) > 1:
                raise _usage("too many arguments.", MEMORY_USAGE)
            body = {"relative": _fraction(args[0], MEMORY_USAGE, 1.0)}
            banner = args[0]
        self.out.info(f"Setting memory threshold on {self._node_name()} to {banner} ...")
        self.client.request("PUT", "hutch/vm-memory-high-watermark", body)

    def set_disk_free_limit(self, args: list[str]) -> None:
        if not args or args == ["mem_relative"]:
            raise _usage("not enough arguments.", DISK_USAGE)
        if args[0] == "mem_relative":
            if len(args) != 2:
                raise _usage("too many arguments.", DISK_USAGE)
            body: dict[str, Any] = {"mem_relative": _fraction(args[1], DISK_USAGE, None)}
            banner = f"{args[1]} times the total RAM"
        else:
            if len(args) > 1:
                raise _usage("too many arguments.", DISK_USAGE)
            body = {"absolute": _size(args[0], DISK_USAGE)}
            banner = f"{args[0]} bytes"
        self.out.info(f"Setting disk free limit on {self._node_name()} to {banner} ...")
        self.client.request("PUT", "hutch/disk-free-limit", body)
