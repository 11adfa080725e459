"""``hutch ctl environment``: the running broker's effective configuration.

rabbitmqctl's ``environment`` prints the node's application environment as Erlang
terms; Hutch prints what an operator can act on: one ``key = value`` line per
setting, as a configuration file would say it, and where the value came from
(``default``, ``FILE:LINE``, ``flag --x``) as a comment.  ``--formatter json``
prints the rows as a JSON list.  Read from GET /api/hutch/environment (Hutch-only:
RabbitMQ's HTTP API has no such endpoint); passwords come as ``********``.
"""

from __future__ import annotations

import json
from typing import Any

from .ctl_io import Client, Output


def render_environment(rows: list[dict[str, str]]) -> str:
    width = max((len(r["key"]) + len(r["value"]) for r in rows), default=0) + 3
    return "\n".join(f"{r['key']} = {r['value']}".ljust(width) + f"  # {r['source']}"
                     for r in rows)


class EnvironmentCommands:
    """Mixed into ``ctl.Ctl`` (which has ``client`` and ``out``)."""

    client: Client
    out: Output

    def environment(self, args: list[str]) -> None:
        node: dict[str, Any] = self.client.get("nodes")[0]
        self.out.info(f"Application environment of node {node['name']} ...")
        rows = self.client.get("hutch/environment")
        if self.out.formatter == "json":
            print(json.dumps(rows))
            return
        print(render_environment(rows))
