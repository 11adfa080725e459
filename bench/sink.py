#!/usr/bin/env python
"""A discard sink that speaks just enough AMQP 0-9-1 for ``hutch perf`` producers.

    python bench/sink.py [--port 5699]

It answers the handshake, queue.declare, confirm.select and close, and throws
messages away. Without confirms it stops parsing after the first basic.publish
and only counts bytes, so the producer alone sets the pace; with confirms it
walks every frame and answers each read with one multiple basic.ack for all
publishes in it. Prints a line containing ``ready`` when listening; on SIGTERM /
Ctrl+C prints the bytes and publishes it saw.

Used to check that ``hutch perf`` is never the bottleneck:

    python bench/sink.py --port 5699 &
    hutch perf --url amqp://guest:guest@127.0.0.1:5699/ --consumers 0 --time 10 --size 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
from hutch.protocol import methods as m

_HEAD = struct.Struct(">BHI")
_ID = struct.Struct(">I")
_PUBLISH = 0x003C0028
STATS = {"bytes": 0, "publishes": 0, "connections": 0}


def frame(channel: int, method) -> bytes:
    payload = method.encode()
    return _HEAD.pack(1, channel, len(payload)) + payload + b"\xce"


REPLIES = {
    "connection.start_ok": lambda ch, _m: frame(0, m.ConnectionTune(channel_max=2047, frame_max=131072,
                                                                    heartbeat=0)),
    "connection.open": lambda ch, _m: frame(0, m.ConnectionOpenOk()),
    "channel.open": lambda ch, _m: frame(ch, m.ChannelOpenOk()),
    "queue.declare": lambda ch, q: frame(ch, m.QueueDeclareOk(queue=q.queue)),
    "queue.delete": lambda ch, _m: frame(ch, m.QueueDeleteOk()),
    "basic.qos": lambda ch, _m: frame(ch, m.BasicQosOk()),
    "confirm.select": lambda ch, _m: frame(ch, m.ConfirmSelectOk()),
    "channel.close": lambda ch, _m: frame(ch, m.ChannelCloseOk()),
    "connection.close": lambda ch, _m: frame(0, m.ConnectionCloseOk()),
}


class Sink(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.t = transport
        self.buf = b""
        self.discard = False  # after the first publish without confirms: count bytes only
        self.confirming = False
        self.tag = 0
        STATS["connections"] += 1

    def data_received(self, data: bytes) -> None:
        STATS["bytes"] += len(data)
        if self.discard:
            if b"\x00\x0a\x00\x32" in data[-64:]:  # connection.close at the end of a stream
                self.t.write(frame(0, m.ConnectionCloseOk()))
            return
        buf = self.buf + data if self.buf else data
        if buf.startswith(b"AMQP"):
            buf = buf[8:]
            self.t.write(frame(0, m.ConnectionStart(version_major=0, version_minor=9,
                                                    server_properties={"product": "sink"},
                                                    mechanisms=b"PLAIN", locales=b"en_US")))
        off, n, published = 0, len(buf), 0
        out = []
        while n - off >= 7:
            ftype, ch, size = _HEAD.unpack_from(buf, off)
            end = off + size + 8
            if end > n:
                break
            if ftype == 1:
                mid = _ID.unpack_from(buf, off + 7)[0]
                if mid == _PUBLISH:
                    published += 1
                    if not self.confirming:
                        self.discard = True
                        break
                else:
                    method = m.decode_method(bytes(buf[off + 7 : end - 1]))
                    if method.NAME == "confirm.select":
                        self.confirming = True
                    reply = REPLIES.get(method.NAME)
                    if reply:
                        out.append(reply(ch, method))
            off = end
        self.buf = buf[off:] if not self.discard else b""
        STATS["publishes"] += published
        if published and self.confirming:
            self.tag += published
            out.append(frame(1, m.BasicAck(delivery_tag=self.tag, multiple=True)))
        if out:
            self.t.write(b"".join(out))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=5699)
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", args.port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"sink ready on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()
    print(f"sink: {STATS['connections']} connections, {STATS['bytes']:,} bytes, "
          f"{STATS['publishes']:,} publishes parsed", flush=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
