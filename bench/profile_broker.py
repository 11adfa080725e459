#!/usr/bin/env python
"""Where Hutch's CPU time goes under matrix case (a), sampled with py-spy.

    pip install py-spy
    python bench/profile_broker.py [--time 20] [--top 25] [--case a]

Starts ``hutch serve`` (as bench/matrix.py does), attaches ``py-spy record``
(non-blocking, 250 Hz, raw collapsed stacks, idle samples dropped) and runs the
case's ``hutch perf`` for --time seconds, then prints the functions with the most
samples on-CPU: self (the frame itself) and inclusive (anywhere on the stack).
The raw stacks stay in --out for flame graphs (e.g. ``inferno-flamegraph``).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brokers import Hutch
from matrix import CASES, perf


def _name(frame: str) -> str:
    # "handle (hutch/server/channel.py:123)" -> "handle (server/channel.py)"
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    path = re.sub(r".*/site-packages/", "", path)
    path = re.sub(r".*/src/hutch/", "", path)
    path = re.sub(r".*/lib/python3\.\d+/", "", path)
    return f"{func} ({path})"


def aggregate(raw: str, top: int) -> str:
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";") if not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    out = [f"{total:,} on-CPU samples", "", "self %  function"]
    out += [f"{100 * c / total:5.1f}  {f}" for f, c in self_c.most_common(top)]
    out += ["", "incl %  function"]
    out += [f"{100 * c / total:5.1f}  {f}" for f, c in incl.most_common(top)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time", type=float, default=20)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--case", choices=sorted(CASES), default="a")
    ap.add_argument("--out", default="/tmp/hutch-profile.txt", help="raw collapsed stacks")
    args = ap.parse_args()
    broker = Hutch()
    broker.start()
    try:
        spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "--threads", "--rate", "250",
                                "--format", "raw", "--duration", str(int(args.time)), "--pid",
                                str(broker.pid()), "--output", args.out],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1)  # let py-spy attach
        s = perf(broker.url, f"profile-{args.case}", "--time", str(args.time), *CASES[args.case])
        spy.wait(60)
        if spy.returncode:
            print(spy.stderr.read() if spy.stderr else "", file=sys.stderr)
            return 1
    finally:
        broker.stop()
    print(f"case ({args.case}): end to end {s['rates']['received']:,.0f} msg/s, "
          f"published {s['rates'].get('confirmed', s['rates']['sent']):,.0f} msg/s (under py-spy)\n")
    with open(args.out) as f:
        print(aggregate(f.read(), args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
