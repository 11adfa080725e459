"""``hutch work``: the seeds' worker.py as a tool.

Declares the durable queue, sets ``basic_qos(prefetch_count)`` and acknowledges
each message only when its work is done, so a worker that dies loses nothing: the
broker redelivers what it never acked.  Without a command it simulates work as the
seeds do (one second per ``.``); with ``-- COMMAND ARGS`` it runs the command once
per message (see runner.py).  Failures are requeued (a broker delivery limit then
applies), or retried -- at once or after ``--retry-delay`` through a delayed exchange --
a bounded number of times and then dead-lettered (see retry.py for the rule).

Shutdown: the first SIGINT/SIGTERM cancels the consumer (no new messages), puts
back the prefetched messages not yet started and lets the running ones finish; a
second signal abandons those too (their commands are killed and, never acked,
they are redelivered by the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
from typing import Any

from .common import (
    EX_INTERRUPTED,
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
from .retry import Retrier, broker_limit
from .runner import message_env, run_command


def add_work_parser(sub: Any) -> None:
    p = sub.add_parser("work", help="consume a work queue (the seeds' worker.py), optionally "
                       "running a command per message",
                       description="Consume a durable queue with manual acks. Exit 0 after a "
                       "graceful stop (SIGINT/SIGTERM); 130 when a second signal abandoned "
                       "work (those messages are redelivered); 69: broker unreachable or "
                       "connection lost; 77: login refused; 64: usage.")
    p.add_argument("--url", default=default_url(),
                   help="broker URL (env AMQP_URL; default amqp://guest:guest@localhost:5672/)")
    p.add_argument("--queue", "-q", default="task_queue", help="durable queue (default task_queue)")
    p.add_argument("--prefetch", type=int, default=None,
                   help="basic_qos prefetch_count (default: --concurrency, i.e. 1)")
    p.add_argument("--concurrency", "-c", type=int, default=1,
                   help="messages processed at once (default 1)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds a command may run; then it is killed and the message fails")
    p.add_argument("--retries", type=int, default=None,
                   help="retry a failed message N times (on a queue with a broker delivery "
                        "limit requeued and counted by the broker, elsewhere republished with "
                        "an attempt counter header), then dead-letter it; default: requeue "
                        "failures (until the queue's delivery limit, if it has one)")
    p.add_argument("--retry-delay", type=int, default=None, metavar="MS",
                   help="a failed message comes back after MS milliseconds, through a "
                        "delayed exchange (x-delayed-message: Hutch, or RabbitMQ with the "
                        "delayed-message plugin); attempts are limited by --retries, else by "
                        "the queue's delivery limit")
    p.add_argument("--retry-exchange", default="hutch.retry", metavar="EXCHANGE",
                   help="the durable x-delayed-message exchange --retry-delay uses, bound to "
                        "the queue by its name (default hutch.retry)")
    p.add_argument("--dead-letter-queue", default=None, metavar="QUEUE",
                   help="durable queue for messages that failed every attempt (default: reject "
                        "them, which uses the queue's own x-dead-letter-exchange if any)")
    p.add_argument("--dot-seconds", type=float, default=1.0,
                   help="without a command: seconds of simulated work per '.' (default 1)")
    # dest "cmd": "command" is the subcommand's name in the top-level namespace.
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS",
                   help="run once per message, body on stdin; exit status 0 = ack")


def run_work(args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if args.concurrency < 1 or (args.prefetch is not None and args.prefetch < 0):
        return fail("--concurrency must be >= 1 and --prefetch >= 0", EX_USAGE)
    if args.retries is not None and args.retries < 0:
        return fail("--retries must be >= 0", EX_USAGE)
    if args.retry_delay is not None and args.retry_delay < 0:
        return fail("--retry-delay must be >= 0 (milliseconds)", EX_USAGE)
    if command and shutil.which(command[0]) is None:
        return fail(f"command not found: {command[0]}", EX_USAGE)
    try:
        return run(Worker(args, command).run())
    except ToolError as exc:
        return fail(str(exc), exc.code)


async def declare_retry_exchange(channel: Any, name: str, queue: str) -> None:
    """The delayed exchange --retry-delay republishes through, bound to the queue by
    its name (routing key = queue name, so one exchange serves every work queue).  A
    broker without the exchange type refuses it: RabbitMQ without the plugin closes the
    connection with 503 COMMAND_INVALID "unknown exchange type"; an exchange of that
    name with another type or x-delayed-type is a 406."""
    try:
        exchange = await channel.declare_exchange(
            name, "x-delayed-message", durable=True, arguments={"x-delayed-type": "direct"})
        await (await channel.get_queue(queue, ensure=False)).bind(exchange, routing_key=queue)
    except Exception as exc:  # aio-pika/aiormq raise a different class per reply code
        text = str(exc.args[-1]) if exc.args else type(exc).__name__
        hint = ""
        if "exchange type" in text:
            hint = (" (--retry-delay needs the x-delayed-message exchange type: Hutch has it "
                    "built in; RabbitMQ needs the rabbitmq_delayed_message_exchange plugin)")
        elif "PRECONDITION_FAILED" in text:
            hint = (f" (an exchange '{name}' exists with another type or x-delayed-type; "
                    "choose another with --retry-exchange)")
        raise ToolError(f"cannot set up --retry-delay: the broker said: {text}{hint}",
                        EX_UNAVAILABLE) from None


def say(line: str) -> None:
    print(line, flush=True)


class Worker:
    def __init__(self, args: argparse.Namespace, command: list[str]) -> None:
        self.args = args
        self.command = command
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.signals = 0
        self.stop = asyncio.Event()
        self.lost: str | None = None  # why the connection went away, if it did
        self.busy = 0
        self.closing = False
        self._abandon = asyncio.Event()  # second signal, or the connection is gone

    async def run(self) -> int:
        args = self.args
        loop = asyncio.get_running_loop()
        connection = await connect(args.url)
        try:
            # Confirms on: retries and dead letters are acked only once the copy is safe.
            channel = await connection.channel(publisher_confirms=True)
            seen: dict[str, Any] = {}
            channel = await declare_queue(connection, channel, args.queue, seen)
            if args.dead_letter_queue:
                channel = await declare_queue(connection, channel, args.dead_letter_queue)
            await channel.set_qos(prefetch_count=args.concurrency if args.prefetch is None
                                  else args.prefetch)
            queue = await channel.get_queue(args.queue, ensure=False)
            counts, limit = broker_limit(seen.get("arguments"))
            # Only --retry-delay without --retries relies on knowing the limit (a copy
            # restarts the broker's count); elsewhere the broker or --retries bounds it.
            if "unreadable" in seen and not counts and args.retry_delay is not None \
                    and args.retries is None:
                print(f"hutch: note: could not learn all of queue '{args.queue}''s arguments "
                      f"from the broker's refusal ({seen['unreadable']}); if it has a delivery "
                      "limit, set --retries to match it", file=sys.stderr, flush=True)
            if args.retry_delay is not None:
                await declare_retry_exchange(channel, args.retry_exchange, args.queue)
            self.retrier = Retrier(channel, args.queue, args.retries, args.dead_letter_queue,
                                   broker_counts=counts, limit=limit,
                                   delay_ms=args.retry_delay, delay_exchange=args.retry_exchange)
            connection.close_callbacks.add(self._on_close)
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal)
            tag = await queue.consume(self._deliver)
            say(" [*] Waiting for messages. To exit press CTRL+C")
            workers = [asyncio.create_task(self._work()) for _ in range(args.concurrency)]
            await self.stop.wait()
            if self.lost is None:
                await self._stop_consuming(queue, tag)
            for _ in workers:
                self.inbox.put_nowait(None)
            done = asyncio.gather(*workers, return_exceptions=True)
            while not done.done():
                # Finish what is running, unless a second signal (or a lost
                # connection) says to abandon it.
                abandon = asyncio.create_task(self._abandon_requested())
                waiting: list[asyncio.Future[Any]] = [done, abandon]
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if abandon.done():
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(*workers, return_exceptions=True)
                    break
                abandon.cancel()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self.closing = True
            if not connection.is_closed:
                # Unacked messages (abandoned ones) go back to the queue on close.
                await connection.close()
        if self.lost is not None:
            raise ToolError(f"connection to the broker lost: {self.lost} (unacknowledged "
                            "messages go back to the queue)", EX_UNAVAILABLE)
        if self.signals > 1:
            say(" [*] Stopped; abandoned messages will be redelivered")
            return EX_INTERRUPTED
        say(" [*] Stopped")
        return EX_OK

    # -- signals and connection loss -------------------------------------------------------
    def _on_signal(self) -> None:
        self.signals += 1
        if self.signals == 1:
            print(f" [*] Stopping: no new messages; finishing {self.busy} in progress "
                  "(signal again to abandon them)", flush=True)
            self.stop.set()
        else:
            self._abandon.set()

    def _on_close(self, *args: Any) -> None:
        if self.closing:
            return  # our own close at the end
        exc = args[1] if len(args) > 1 else None
        self.lost = str(exc) if exc else "closed"
        self.stop.set()
        self._abandon.set()

    async def _abandon_requested(self) -> None:
        await self._abandon.wait()

    async def _stop_consuming(self, queue: Any, tag: str) -> None:
        """basic.cancel, then give back what was prefetched but not started, in order
        (the broker puts requeued messages back where they were)."""
        try:
            await queue.cancel(tag)
        except Exception:  # the channel may be gone; the broker requeues on close anyway
            return
        while not self.inbox.empty():
            message = self.inbox.get_nowait()
            try:
                await message.nack(requeue=True)
            except Exception:
                return

    async def _deliver(self, message: Any) -> None:
        self.inbox.put_nowait(message)

    # -- one message -------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            message = await self.inbox.get()
            if message is None:
                return
            self.busy += 1
            try:
                await self._handle(message)
            finally:
                self.busy -= 1

    async def _handle(self, message: Any) -> None:
        attempt = self.retrier.attempts(message) + 1
        say(f" [x] Received {show(message.body)}")
        if self.command:
            env = message_env(message, self.args.queue, attempt)
            failure = await run_command(self.command, message.body, env, self.args.timeout)
        else:
            await asyncio.sleep(message.body.count(b".") * self.args.dot_seconds)
            failure = None
        try:
            if failure is None:
                await message.ack()
                say(" [x] Done")
            else:
                say(f" [!] Failed ({failure}); {await self.retrier.failed(message, attempt, failure)}")
        except Exception as exc:  # channel gone: the broker redelivers it
            print(f"hutch: could not settle message {show(message.body)}: {exc}",
                  file=sys.stderr, flush=True)

