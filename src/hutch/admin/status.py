"""``hutch ctl status``: rabbitmqctl status's sections, from /api/nodes and /api/overview."""

from __future__ import annotations

from typing import Any


def _gb(n: float) -> str:
    return f"{n / 1e9:.4f} gb"


def _alarm_lines(node: dict[str, Any]) -> list[str]:
    """rabbitmqctl status's alarm lines (rabbitmq_cli Core.Alarms.alarm_lines)."""
    lines = []
    if node.get("disk_free_alarm"):
        lines.append(f"Free disk space alarm on node {node['name']}")
    if node.get("mem_alarm"):
        lines.append(f"Memory alarm on node {node['name']}")
    return lines


def _setting(setting: dict[str, float] | None) -> str:
    if not setting:
        return "(not available)"
    if "relative" in setting:
        return f"{setting['relative']} of available memory"
    return _gb(setting.get("absolute", 0))


def render_status(node: dict[str, Any], overview: dict[str, Any], quiet: bool = False) -> str:
    totals = overview.get("object_totals", {})
    queue_totals = overview.get("queue_totals", {})
    lines = [] if quiet else [f"Status of node {node['name']} ..."]
    lines += [
        "Runtime", "",
        f"OS PID: {node.get('os_pid', '')}",
        f"Uptime (seconds): {int(node.get('uptime', 0)) // 1000}",
        f"Hutch version: {node.get('product_version', '')}",
        f"Node name: {node['name']}",
        f"Python version: {node.get('python_version', '')}",
        "", "Data directory", "",
        f"Node data directory: {node.get('db_dir') or '(none: in memory)'}",
        "", "Config files", "",
        *([f" * {f}" for f in node.get("config_files", [])] or ["(none)"]),
        "", "Log file(s)", "",
        *([f" * {f}" for f in node.get("log_files", [])] or ["(none)"]),
        "", "Listeners", "",
    ]
    purposes = {"amqp": "AMQP 0-9-1", "http": "HTTP API"}
    for listener in node.get("listeners", []):
        proto = listener["protocol"]
        lines.append(f"Interface: {listener['ip_address']}, port: {listener['port']}, "
                     f"protocol: {proto}, purpose: {purposes.get(proto, proto)}")
    lines += [
        "", "Totals", "",
        f"Connection count: {totals.get('connections', 0)}",
        f"Queue count: {totals.get('queues', 0)}",
        f"Virtual host count: {node.get('vhosts', '')}".rstrip(": "),
        f"Messages: {queue_totals.get('messages', 0)} "
        f"(ready: {queue_totals.get('messages_ready', 0)}, "
        f"unacknowledged: {queue_totals.get('messages_unacknowledged', 0)})",
        "", "Alarms", "",
        *(_alarm_lines(node) or ["(none)"]),
        "", "Memory", "",
        f"Total memory used: {_gb(node.get('mem_used', 0))}",
        f"Calculation strategy: {node.get('mem_calculation_strategy', 'rss')}",
        f"Memory high watermark setting: {_setting(node.get('vm_memory_high_watermark'))}, "
        f"computed to: {_gb(node.get('mem_limit', 0))}",
        f"Message bytes in memory: {_gb(node.get('queued_message_bytes', 0))}",
        "", "Free Disk Space", "",
        f"Low free disk space watermark: {_gb(node.get('disk_free_limit', 0))}",
        f"Free disk space: {_gb(node.get('disk_free', 0))}",
    ]
    return "\n".join(line for line in lines if line != "Virtual host count")
