"""``hutch demo``: the work-queue tutorial, replayed and checked, in under a minute.

An embedded broker (temporary data dir) and real ``hutch work`` / ``hutch publish``
/ ``hutch ctl`` subprocesses act out every promise of the seeds: round-robin
dispatch, redelivery of a dead worker's task, forgotten acks in ``list_queues``,
durable versus transient messages across a restart, and fair dispatch with
prefetch=1.  Each claim is printed only after the demo has checked it; a false one
ends the demo with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from typing import Any

from .narrate import Child, DemoClaimError, Narrator

DOT = 0.25  # seconds of simulated work per '.' (the seeds use 1 s; the demo is in a hurry)
TASKS = ["First message.", "Second message..", "Third message...", "Fourth message....",
         "Fifth message....."]


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="a guided, checked replay of the work-queue tutorial "
                       "on an embedded broker (about 30 s)")
    p.add_argument("--no-color", action="store_true", help="no colours even on a terminal")


def run_demo(args: argparse.Namespace) -> int:
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    n = Narrator(sys.stdout, colour)
    started = time.monotonic()
    try:
        asyncio.run(Demo(n).run())
    except DemoClaimError as exc:
        n.line(f"   FAILED: {exc}", "bad")
        n.line("\nThe demo found a broken promise; exit status 1.", "bad")
        return 1
    except KeyboardInterrupt:
        return 130
    n.line(f"\nAll claims checked in {time.monotonic() - started:.0f}s. Try it for real: "
           "'hutch serve', then 'hutch work' and 'hutch publish' in other terminals.", "ok")
    return 0


class Demo:
    def __init__(self, narrator: Narrator) -> None:
        self.n = narrator
        self.children: list[Child] = []

    async def run(self) -> None:
        from ..embedded import Broker

        with tempfile.TemporaryDirectory(prefix="hutch-demo-") as data_dir:
            async with Broker(data_dir=data_dir) as broker:
                self.broker = broker
                self.n.line(f"A Hutch broker is running in this process: {broker.url} "
                            f"(data in {data_dir})", "title")
                try:
                    await self.round_robin()
                    await self.redelivery()
                    await self.forgotten_ack()
                    await self.durability()
                    await self.fair_dispatch()
                finally:
                    for child in self.children:
                        child.kill_quietly()

    # -- helpers ------------------------------------------------------------------------------
    async def worker(self, name: str, style: str, *extra: str) -> Child:
        args = ["work", "--url", self.broker.url, "--dot-seconds", str(DOT), *extra]
        child = await Child(self.n, name, style).start(
            *args, show=["hutch", "work", "--dot-seconds", str(DOT), *extra])
        self.children.append(child)
        return child

    async def publish(self, *args: str) -> None:
        child = await Child(self.n, "publish", "dim").start(
            "publish", "--url", self.broker.url, *args, show=["hutch", "publish", *args])
        self.n.check(await child.finish() == 0, "every message was confirmed by the broker")

    async def list_queues(self) -> dict[str, tuple[int, int]]:
        """Run the seeds' rabbitmqctl command as ``hutch ctl`` and parse what it prints."""
        cols = ["list_queues", "name", "messages_ready", "messages_unacknowledged"]
        child = await Child(self.n, "ctl", "dim").start(
            "ctl", "--url", str(self.broker.management_url), "-q", *cols,
            show=["hutch", "ctl", *cols])
        await child.finish()
        rows = [line.split("\t") for line in child.lines[1:] if "\t" in line]
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    async def start_pair(self, *extra: str) -> tuple[Child, Child]:
        # One after the other: the broker's round-robin starts with the first consumer.
        w1 = await self.worker("worker 1", "w1", *extra)
        await w1.wait_for("Waiting for messages")
        w2 = await self.worker("worker 2", "w2", *extra)
        await w2.wait_for("Waiting for messages")
        return w1, w2

    # -- the steps ----------------------------------------------------------------------------
    async def round_robin(self) -> None:
        self.n.step(1, "Round-robin dispatch", "Two workers consume task_queue; five tasks are "
                    "published. Each '.' is\n" f"{DOT:g}s of work. The broker hands tasks out in "
                    "turn.")
        w1, w2 = await self.start_pair()
        # All five at once (one per line): which worker is free when does not depend on
        # how fast five separate publisher processes start.
        await self._publish_lines(TASKS)
        await w1.wait_for(" [x] Done", 3)
        await w2.wait_for(" [x] Done", 2)
        first, second = w1.received(), w2.received()
        self.n.check(first == [TASKS[0], TASKS[2], TASKS[4]] and second == [TASKS[1], TASKS[3]],
                     "worker 1 got First/Third/Fifth, worker 2 got Second/Fourth")
        self.pair = (w1, w2)

    async def redelivery(self) -> None:
        self.n.step(2, "A worker dies mid-task: nothing is lost", "A long task is published; "
                    "whichever worker takes it is killed with SIGKILL\nbefore it acks. The "
                    "broker gives the task to the other worker.")
        w1, w2 = self.pair
        before = {w: len(w.received()) for w in (w1, w2)}
        await self.publish("Long task.......")
        busy = await _first_to_receive(w1, w2, before)
        other = w2 if busy is w1 else w1
        self.n.line(f"   ({busy.name} is busy with it: kill -9)", "cmd")
        await busy.stop(signal.SIGKILL)
        await other.wait_for("Received 'Long task.......'")
        await other.wait_for(" [x] Done", len([x for x in other.lines if x == " [x] Done"]) + 1)
        self.n.check(other.received()[-1] == "Long task.......",
                     f"{other.name} received and finished the task {busy.name} never acked")
        self.n.check(await other.stop(signal.SIGTERM) == 0,
                     f"{other.name} stopped gracefully on SIGTERM (exit 0)")

    async def forgotten_ack(self) -> None:
        import aio_pika

        self.n.step(3, "Forgotten acknowledgment", "A consumer takes three tasks and never acks "
                    "them. list_queues shows them\nunacknowledged; when it disconnects they are "
                    "ready again.")
        await self.publish("Task A.")
        await self.publish("Task B.")
        await self.publish("Task C.")
        conn = await aio_pika.connect(self.broker.url)
        channel = await conn.channel()
        queue = await channel.declare_queue("task_queue", durable=True)
        got: list[bytes] = []
        await queue.consume(lambda m: _keep(got, m))  # ...and no ack: the bug in the tutorial
        for _ in range(100):
            if len(got) == 3:
                break
            await asyncio.sleep(0.05)
        listed = await self.list_queues()
        self.n.check(listed.get("task_queue") == (0, 3),
                     "task_queue: 0 ready, 3 unacknowledged while the consumer holds them")
        await conn.close()
        self.n.line("   (the forgetful consumer disconnects)", "cmd")
        listed = await self.list_queues()
        self.n.check(listed.get("task_queue") == (3, 0),
                     "task_queue: 3 ready, 0 unacknowledged after it disconnected")

    async def durability(self) -> None:
        import aio_pika

        self.n.step(4, "Durable tasks survive a broker restart", "task_queue is durable and holds "
                    "3 persistent tasks; two transient ones are\nadded. The broker restarts.")
        await self.publish("--transient", "Transient one.")
        await self.publish("--transient", "Transient two.")
        self.n.line("   (restarting the broker: same port, same data dir)", "cmd")
        await self.broker.restart()
        conn = await aio_pika.connect(self.broker.url)
        channel = await conn.channel()
        queue = await channel.declare_queue("task_queue", durable=True)
        bodies = []
        while (msg := await queue.get(fail=False, no_ack=True)) is not None:
            bodies.append(msg.body.decode())
        await conn.close()
        self.n.line(f"   after the restart task_queue holds: {bodies}")
        self.n.check(bodies == ["Task A.", "Task B.", "Task C."],
                     "the 3 persistent tasks came back, in order; the 2 transient ones are gone")

    async def fair_dispatch(self) -> None:
        self.n.step(5, "Fair dispatch with prefetch=1", "Six tasks, heavy (odd) and light (even). "
                    "Without a prefetch limit the broker\ndeals them out in turn, so one worker "
                    "gets every heavy task. With --prefetch 1\na busy worker gets nothing new until "
                    "it acks, and the load evens out.")
        tasks = [f"Heavy {i}......" if i % 2 else f"Light {i}." for i in range(1, 7)]
        results = {}
        for prefetch in ("0", "1"):
            self.n.line(f"   -- --prefetch {prefetch}" + (" (no limit)" if prefetch == "0" else ""))
            w1, w2 = await self.start_pair("--prefetch", prefetch)
            started = time.monotonic()
            await self._publish_lines(tasks)
            await _all_done(w1, w2, len(tasks))
            elapsed = time.monotonic() - started
            heavy = [sum(b.startswith("Heavy") for b in w.received()) for w in (w1, w2)]
            results[prefetch] = (elapsed, heavy)
            for w in (w1, w2):
                await w.stop(signal.SIGTERM)
            self.n.line(f"   heavy tasks per worker: {heavy}; all done in {elapsed:.1f}s")
        (t0, heavy0), (t1, heavy1) = results["0"], results["1"]
        self.n.check(sorted(heavy0) == [0, 3], "without a limit one worker got all 3 heavy tasks")
        self.n.check(min(heavy1) >= 1 and t1 < t0,
                     f"with prefetch=1 both workers took heavy tasks and all were done sooner "
                     f"({t1:.1f}s vs {t0:.1f}s)")

    async def _publish_lines(self, tasks: list[str]) -> None:
        """All tasks in one run (one message per line on stdin), so they queue up at once."""
        self.n.line("   $ printf '" + "\\n".join(tasks) + "\\n' | hutch publish -", "cmd")
        child = await Child(self.n, "publish", "dim").start(
            "publish", "--url", self.broker.url, "-", show=[],
            stdin=("\n".join(tasks) + "\n").encode())
        self.n.check(await child.finish() == 0, "every message was confirmed by the broker")


def _keep(store: list[bytes], message: Any) -> Any:
    store.append(message.body)
    return asyncio.sleep(0)


async def _first_to_receive(w1: Child, w2: Child, before: dict[Child, int]) -> Child:
    for _ in range(200):
        for w in (w1, w2):
            if len(w.received()) > before[w]:
                return w
        await asyncio.sleep(0.05)
    raise DemoClaimError("no worker received the long task")


async def _all_done(w1: Child, w2: Child, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(line == " [x] Done" for w in (w1, w2) for line in w.lines) < count:
        if time.monotonic() > deadline:
            raise DemoClaimError(f"{count} tasks were not all done within {timeout:g}s")
        await asyncio.sleep(0.05)
