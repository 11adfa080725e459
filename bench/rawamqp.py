"""A minimal blocking AMQP 0-9-1 client over a raw socket, for benchmarks.

Python client libraries top out at a few thousand messages a second, far below
what a broker can take, so benchmarks pre-encode publish frames with pamqp
once and write them in large batches, reading confirms as they come.
"""

from __future__ import annotations

import socket
import struct
import time

from pamqp import body as pbody
from pamqp import commands, frame, header

_ACK = b"\x00\x3c\x00\x50"
_NACK = b"\x00\x3c\x00\x78"


class RawAMQP:
    def __init__(self, host: str, port: int, user: str = "guest", password: str = "guest") -> None:
        self.sock = socket.create_connection((host, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.recv()
        self.send(0, commands.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                                 response=f"\0{user}\0{password}"))
        tune = self.recv()
        self.send(0, commands.Connection.TuneOk(channel_max=tune.channel_max,
                                                frame_max=tune.frame_max, heartbeat=0))
        self.send(0, commands.Connection.Open(virtual_host="/"))
        self.recv()
        self.send(1, commands.Channel.Open())
        self.recv()

    def send(self, channel: int, method) -> None:
        self.sock.sendall(frame.marshal(method, channel))

    def recv(self):
        while True:
            try:
                consumed, _ch, value = frame.unmarshal(self.buf)
                self.buf = self.buf[consumed:]
                return value
            except Exception:  # pamqp signals "incomplete frame" with an exception
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("broker closed the connection") from None
                self.buf += chunk

    def declare(self, queue: str, durable: bool = True, arguments: dict | None = None) -> int:
        self.send(1, commands.Queue.Declare(queue=queue, durable=durable, arguments=arguments))
        return self.recv().message_count

    def delete(self, queue: str) -> None:
        self.send(1, commands.Queue.Delete(queue=queue))
        self.recv()

    def count(self, queue: str) -> int:
        self.send(1, commands.Queue.Declare(queue=queue, passive=True))
        return self.recv().message_count

    def publish_confirmed(self, queue: str, n: int, size: int = 100, window: int = 1000,
                          persistent: bool = True) -> tuple[float, list[float]]:
        """Publish n messages with confirms (at most ``window`` unconfirmed).
        Returns (seconds, per-message confirm latencies in seconds)."""
        self.send(1, commands.Confirm.Select())
        self.recv()
        body = b"x" * size
        one = (frame.marshal(commands.Basic.Publish(exchange="", routing_key=queue), 1)
               + frame.marshal(header.ContentHeader(0, size, commands.Basic.Properties(
                   delivery_mode=2 if persistent else 1)), 1)
               + frame.marshal(pbody.ContentBody(body), 1))
        sent = confirmed = 0
        sent_at: list[float] = []
        latencies: list[float] = []
        buf = b""
        start = time.perf_counter()
        while confirmed < n:
            while sent < n and sent - confirmed < window:
                k = min(200, n - sent, window - (sent - confirmed))
                self.sock.sendall(one * k)
                now = time.perf_counter()
                sent_at.extend([now] * k)
                sent += k
            buf += self.sock.recv(1 << 20)
            off = 0
            while len(buf) - off >= 8:
                _t, _c, fsize = struct.unpack_from(">BHI", buf, off)
                if len(buf) - off < fsize + 8:
                    break
                ids = buf[off + 7 : off + 11]
                if ids in (_ACK, _NACK):
                    (tag,) = struct.unpack_from(">Q", buf, off + 11)
                    now = time.perf_counter()
                    # Both brokers confirm in publish order, so a single ack for tag N
                    # and a multiple one settle the same prefix here.
                    while confirmed < tag:
                        latencies.append(now - sent_at[confirmed])
                        confirmed += 1
                off += fsize + 8
            buf = buf[off:]
        return time.perf_counter() - start, latencies

    def close(self) -> None:
        try:
            self.send(0, commands.Connection.Close(reply_code=200, reply_text="bye",
                                                   class_id=0, method_id=0))
        finally:
            self.sock.close()
