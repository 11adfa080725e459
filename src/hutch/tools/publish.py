"""``hutch publish``: the seeds' new_task.py as a tool.

Declares the durable queue, publishes persistent messages and waits for publisher
confirms, so exit status 0 means the broker has every message (with Hutch: on
disk).  Messages are the words of the command line joined by spaces, or one per
line of a file or stdin; many publishes are in flight at once (a confirm window),
which is what makes bulk publishing fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from .common import (
    EX_FAILED,
    EX_OK,
    EX_UNAVAILABLE,
    EX_USAGE,
    ToolError,
    connect,
    default_url,
    fail,
    run,
    show,
)
from .declare import declare_queue

# Unconfirmed publishes allowed in flight: enough to hide the round trip (and
# Hutch's group-commit fsync), small enough to bound memory.
WINDOW = 1000


def add_publish_parser(sub: Any) -> None:
    p = sub.add_parser("publish", help="publish messages to a work queue (the seeds' new_task.py)",
                       description="Publish persistent messages to a durable queue and wait for "
                       "publisher confirms. Exit 0: every message confirmed; 1: some nacked or "
                       "unroutable; 69: broker unreachable; 77: login refused; 64: usage.")
    p.add_argument("--url", default=default_url(),
                   help="broker URL (env AMQP_URL; default amqp://guest:guest@localhost:5672/)")
    p.add_argument("--queue", "-q", default=None,
                   help="durable queue to declare and publish to (default task_queue; with "
                        "--exchange, declared only when given)")
    p.add_argument("--exchange", "-e", default="", help="exchange (default '': the default exchange)")
    p.add_argument("--routing-key", "-k", default=None, help="routing key (default: the queue name)")
    p.add_argument("--header", "-H", action="append", default=[], metavar="K=V",
                   help="message header (repeatable)")
    p.add_argument("--content-type", default=None, help="content_type property, e.g. application/json")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--persistent", dest="persistent", action="store_true", default=True,
                      help="delivery_mode=2, survives a broker restart (default)")
    mode.add_argument("--transient", dest="persistent", action="store_false",
                      help="delivery_mode=1, kept in memory only")
    p.add_argument("--confirm", action=argparse.BooleanOptionalAction, default=True,
                   help="wait for publisher confirms (default; --no-confirm: fire and forget)")
    p.add_argument("--file", "-f", default=None, help="publish one message per line of this file")
    p.add_argument("--quiet", action="store_true",
                   help="no ' [x] Sent' line per message, one summary line on stderr instead")
    p.add_argument("message", nargs="*",
                   help="message words, joined by spaces (default 'Hello World!'); '-' reads "
                        "one message per line from stdin")


def run_publish(args: argparse.Namespace) -> int:
    try:
        return run(publish(args))
    except ToolError as exc:
        return fail(str(exc), exc.code)
    except KeyboardInterrupt:
        return fail("interrupted; messages not yet confirmed may or may not have arrived", 130)


def parse_headers(items: list[str]) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ToolError(f"--header wants KEY=VALUE, got {item!r}", EX_USAGE)
        headers[key] = value
    return headers


async def _lines(f: BinaryIO) -> AsyncIterator[bytes]:
    """One message per line; empty lines are skipped (a trailing newline is not a message).
    stdin is read in a thread so a slow producer does not stall confirms and heartbeats."""
    loop = asyncio.get_running_loop()
    interactive = f is sys.stdin.buffer
    while True:
        line = await loop.run_in_executor(None, f.readline) if interactive else f.readline()
        if not line:
            return
        body = line.rstrip(b"\r\n")
        if body:
            yield body


async def _messages(args: argparse.Namespace) -> AsyncIterator[bytes]:
    if args.file is not None:
        if args.message:
            raise ToolError("give either MESSAGE words or --file, not both", EX_USAGE)
        try:
            f = open(args.file, "rb")
        except OSError as exc:
            raise ToolError(f"cannot read --file {args.file}: {exc.strerror}", EX_USAGE) from None
        with f:
            async for body in _lines(f):
                yield body
    elif args.message == ["-"]:
        async for body in _lines(sys.stdin.buffer):
            yield body
    else:
        yield (" ".join(args.message) or "Hello World!").encode()


async def publish(args: argparse.Namespace) -> int:
    import aio_pika
    from aio_pika import exceptions as ex
    from pamqp.commands import Basic

    headers = parse_headers(args.header)
    if args.exchange and args.routing_key is None and args.queue is None:
        raise ToolError("--exchange needs --routing-key (or --queue)", EX_USAGE)
    queue = args.queue if (args.queue is not None or args.exchange) else "task_queue"
    routing_key = args.routing_key if args.routing_key is not None else queue
    connection = await connect(args.url)
    sent = failed = 0
    async with connection:
        # on_return_raises: an unroutable (mandatory) message is a failure, not a silent drop.
        channel = await connection.channel(publisher_confirms=args.confirm,
                                           on_return_raises=args.confirm)
        if queue is not None:
            channel = await declare_queue(connection, channel, queue)
        try:
            exchange = (await channel.get_exchange(args.exchange, ensure=True)
                        if args.exchange else channel.default_exchange)
        except ex.ChannelNotFoundEntity as exc:
            raise ToolError(f"cannot publish: {exc.args[-1] if exc.args else exc}", EX_UNAVAILABLE)
        delivery_mode = (aio_pika.DeliveryMode.PERSISTENT if args.persistent
                         else aio_pika.DeliveryMode.NOT_PERSISTENT)
        window = asyncio.Semaphore(WINDOW)
        pending: set[asyncio.Task[None]] = set()
        broken: list[str] = []

        async def one(body: bytes) -> None:
            nonlocal sent, failed
            message = aio_pika.Message(body, delivery_mode=delivery_mode, headers=headers or None,
                                       content_type=args.content_type, message_id=uuid.uuid4().hex)
            try:
                await exchange.publish(message, routing_key=routing_key, mandatory=True)
            except ex.DeliveryError as exc:
                failed += 1
                why = ("unroutable (returned: no queue bound to that routing key)"
                       if isinstance(exc.frame, Basic.Return) else "nacked by the broker")
                print(f" [!] Not sent {show(body)}: {why}", file=sys.stderr, flush=True)
            except (ex.AMQPError, ConnectionError, RuntimeError) as exc:
                failed += 1
                if not broken:
                    broken.append(str(exc) or type(exc).__name__)
            else:
                sent += 1
                if not args.quiet:
                    print(f" [x] Sent {show(body)}", flush=False)
            finally:
                window.release()

        async for body in _messages(args):
            if broken:
                break
            await window.acquire()
            task = asyncio.create_task(one(body))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
    sys.stdout.flush()
    if broken:
        raise ToolError(f"the connection failed after {sent} confirmed message(s): {broken[0]}",
                        EX_UNAVAILABLE)
    if args.quiet:
        print(f"hutch: published {sent} message(s)" + (f", {failed} failed" if failed else ""),
              file=sys.stderr)
    return EX_FAILED if failed else EX_OK
