"""Work-queue tools: ``hutch publish``, ``hutch work``, ``hutch demo``.

They speak plain AMQP 0-9-1 through aio-pika, so they behave the same against
RabbitMQ as against Hutch (the tests run publish/work against both).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_tool_parsers(sub: Any) -> None:
    """Register the tools' subcommands on ``hutch``'s parser (cli.py calls this)."""
    from .demo import add_demo_parser
    from .publish import add_publish_parser
    from .work import add_work_parser

    add_publish_parser(sub)
    add_work_parser(sub)
    add_demo_parser(sub)


def run_tool(args: argparse.Namespace) -> int:
    if args.command == "publish":
        from .publish import run_publish

        return run_publish(args)
    if args.command == "work":
        from .work import run_work

        return run_work(args)
    from .demo import run_demo

    return run_demo(args)
