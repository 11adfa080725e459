"""A minimal blocking AMQP 0-9-1 client over a raw socket, for ``hutch perf``.

Python AMQP libraries spend microseconds per message building objects; a load
generator cannot afford that.  This client does the handshake and the rare
control methods (declare, qos, consume, confirm.select) with Hutch's own
sans-I/O codec (``hutch.protocol``), and leaves the per-message work to the
producer and consumer loops, which write pre-encoded frames in large batches
and scan incoming frames with ``struct.unpack_from`` at offsets.

It speaks plain AMQP 0-9-1, so it works the same against RabbitMQ.
"""

from __future__ import annotations

import socket
import struct
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..protocol import methods as m
from ..protocol.frames import body_frames
from ..protocol.properties import encode_properties

FRAME_HEAD = struct.Struct(">BHI")
CONTENT_HEAD = struct.Struct(">HHQ")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")

# class-id << 16 | method-id of the methods the hot loops look for
BASIC_DELIVER = 0x003C003C
BASIC_ACK = 0x003C0050
BASIC_NACK = 0x003C0078
BASIC_RETURN = 0x003C0032
CHANNEL_CLOSE = 0x00140028
CONNECTION_CLOSE = 0x000A0032
CONNECTION_BLOCKED = 0x000A003C
CONNECTION_UNBLOCKED = 0x000A003D

CHANNEL = 1


class PerfError(Exception):
    """The broker refused something, closed on us, or could not be reached."""


def parse_url(url: str) -> dict[str, Any]:
    """``amqp://user:pass@host:port/vhost`` -> connection parameters (RabbitMQ's URI rules:
    an empty path is vhost ``/``, ``%2f`` encodes a slash)."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise PerfError(f"unsupported URL scheme {parts.scheme!r} (amqp:// or amqps://)")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    tls = parts.scheme == "amqps"
    # amqps query parameters of RabbitMQ's URI spec: cacertfile, certfile, keyfile, verify.
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return {
        "tls": tls,
        "tls_options": query,
        "host": parts.hostname or "localhost",
        "port": parts.port or (5671 if tls else 5672),
        "user": unquote(parts.username) if parts.username else "guest",
        "password": unquote(parts.password) if parts.password else "guest",
        "vhost": unquote(path) if path else "/",
    }


def _wrap_tls(sock: socket.socket, host: str, opts: dict[str, str]) -> socket.socket:
    import ssl

    ctx = ssl.create_default_context(cafile=opts.get("cacertfile"))
    if opts.get("certfile"):
        ctx.load_cert_chain(opts["certfile"], opts.get("keyfile"))
    if opts.get("verify") == "verify_none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        return ctx.wrap_socket(sock, server_hostname=host)
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise PerfError(f"TLS handshake with {host} failed: {exc}") from None


def method_frame(channel: int, method: Any) -> bytes:
    payload = method.encode()
    return FRAME_HEAD.pack(1, channel, len(payload)) + payload + b"\xce"


class Connection:
    """One AMQP connection with channel 1 open."""

    def __init__(self, url: str, name: str = "hutch perf", timeout: float = 10.0) -> None:
        p = parse_url(url)
        try:
            self.sock = socket.create_connection((p["host"], p["port"]), timeout=timeout)
        except OSError as exc:
            raise PerfError(f"cannot connect to {p['host']}:{p['port']}: {exc.strerror or exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if p["tls"]:
            self.sock = _wrap_tls(self.sock, p["host"], p["tls_options"])
        self.buf = bytearray()
        self.frame_max = 131072
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect("connection.start")
        props = {"product": "hutch perf", "connection_name": name,
                 "capabilities": {"publisher_confirms": True, "basic.nack": True,
                                  "consumer_cancel_notify": True, "connection.blocked": True}}
        self.send(0, m.ConnectionStartOk(client_properties=props, mechanism="PLAIN",
                                         response=f"\0{p['user']}\0{p['password']}".encode(),
                                         locale="en_US"))
        tune = self.expect("connection.tune", auth=True)
        self.frame_max = min(tune.frame_max or 131072, 131072)
        self.send(0, m.ConnectionTuneOk(channel_max=tune.channel_max, frame_max=self.frame_max,
                                        heartbeat=0))
        self.send(0, m.ConnectionOpen(virtual_host=p["vhost"]))
        self.expect("connection.open_ok")
        self.send(CHANNEL, m.ChannelOpen())
        self.expect("channel.open_ok")
        self.sock.settimeout(None)

    # -- control methods (rare: the generic codec is fine) -----------------------------

    def send(self, channel: int, method: Any) -> None:
        self.sock.sendall(method_frame(channel, method))

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            raise PerfError("timed out waiting for the broker") from None
        except OSError as exc:
            raise PerfError(f"connection lost: {exc}") from None
        if not chunk:
            raise PerfError("the broker closed the connection")
        self.buf += chunk

    def next_method(self) -> Any:
        """The next method frame, skipping heartbeats and content frames."""
        while True:
            if len(self.buf) >= 7:
                ftype, _ch, size = FRAME_HEAD.unpack_from(self.buf, 0)
                if len(self.buf) >= size + 8:
                    payload = bytes(self.buf[7 : 7 + size])
                    del self.buf[: size + 8]
                    if ftype == 1:
                        return m.decode_method(payload)
                    continue
            self._fill()

    def expect(self, name: str, auth: bool = False) -> Any:
        try:
            method = self.next_method()
        except PerfError:
            if auth:  # RabbitMQ drops the socket on a refused login (no close method)
                raise PerfError("the broker closed the connection during login "
                                "(wrong user/password or vhost?)") from None
            raise
        if method.NAME == name:
            return method
        raise_closed(method)
        raise PerfError(f"expected {name}, got {method.NAME}")

    def declare(self, queue: str, durable: bool, arguments: dict[str, Any] | None) -> int:
        self.send(CHANNEL, m.QueueDeclare(queue=queue, durable=durable, arguments=arguments or {}))
        return self.expect("queue.declare_ok").message_count

    def exists(self, queue: str) -> bool:
        """Passive declare: does the queue exist already?  A 404 closes channel 1,
        which is then opened again."""
        self.send(CHANNEL, m.QueueDeclare(queue=queue, passive=True))
        method = self.next_method()
        if method.NAME == "queue.declare_ok":
            return True
        if method.NAME == "channel.close" and method.reply_code == 404:
            self.send(CHANNEL, m.ChannelCloseOk())
            self.send(CHANNEL, m.ChannelOpen())
            self.expect("channel.open_ok")
            return False
        raise_closed(method)
        raise PerfError(f"expected queue.declare_ok, got {method.NAME}")

    def delete(self, queue: str) -> None:
        self.send(CHANNEL, m.QueueDelete(queue=queue))
        self.expect("queue.delete_ok")

    def confirm_select(self) -> None:
        self.send(CHANNEL, m.ConfirmSelect())
        self.expect("confirm.select_ok")

    def consume(self, queue: str, prefetch: int, no_ack: bool, tag: str) -> bytes:
        """Start consuming; returns the consumer tag as it appears in deliveries."""
        if prefetch:
            self.send(CHANNEL, m.BasicQos(prefetch_count=prefetch))
            self.expect("basic.qos_ok")
        self.send(CHANNEL, m.BasicConsume(queue=queue, consumer_tag=tag, no_ack=no_ack))
        return self.expect("basic.consume_ok").consumer_tag.encode()

    def close(self) -> None:
        try:
            self.send(0, m.ConnectionClose(reply_code=200, reply_text="Goodbye"))
            self.sock.settimeout(2)
            while self.next_method().NAME != "connection.close_ok":
                pass
        except (OSError, PerfError):
            pass
        finally:
            self.sock.close()


def raise_closed(method: Any) -> None:
    """Turn a channel.close / connection.close from the broker into a PerfError."""
    if method.NAME in ("channel.close", "connection.close"):
        raise PerfError(f"broker closed the {method.NAME.split('.')[0]}: "
                        f"{method.reply_code} {method.reply_text}")


def closing_error(payload: bytes) -> PerfError:
    """A PerfError from the raw payload of a channel.close / connection.close."""
    try:
        method = m.decode_method(payload)
        assert isinstance(method, m.ConnectionClose | m.ChannelClose)
        return PerfError(f"broker closed the {method.NAME.split('.')[0]}: "
                         f"{method.reply_code} {method.reply_text}")
    except Exception:  # malformed close: still a close
        return PerfError("broker closed the connection")


def publish_template(queue: str, size: int, persistent: bool, frame_max: int,
                     exchange: str = "", priority: int | None = None) -> tuple[bytes, bytes]:
    """One basic.publish + header + body frames, split around the body's first 8 bytes
    (where producers put the send timestamp): message = head + ts(8) + tail.

    Bodies shorter than 8 bytes carry no timestamp: head is the whole message and
    tail is empty, so callers must check ``size >= 8``.
    """
    publish = method_frame(CHANNEL, m.BasicPublish(exchange=exchange, routing_key=queue))
    fields: dict[str, Any] = {"delivery_mode": 2 if persistent else 1}
    if priority is not None:
        fields["priority"] = priority
    props = encode_properties(fields)
    hpayload = CONTENT_HEAD.pack(60, 0, size) + props
    header = FRAME_HEAD.pack(2, CHANNEL, len(hpayload)) + hpayload + b"\xce"
    body = b"\x00" * 8 + b"x" * (size - 8) if size >= 8 else b"x" * size
    frames = b"".join(bytes(f) for f in body_frames(CHANNEL, body, frame_max))
    if size < 8:
        return publish + header + frames, b""
    return publish + header + frames[:7], frames[15:]
