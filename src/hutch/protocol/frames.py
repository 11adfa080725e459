"""Frame reader and writers (sans-I/O).

Wire layout of every frame (AMQP 0-9-1 §4.2.3)::

    type(1) channel(2) size(4) payload(size) frame-end(1) = 0xCE

``FrameReader.feed`` takes whatever bytes arrived; ``FrameReader.frames``
returns every complete frame in one pass over the buffer and drops the
consumed prefix once, so a read that carries a hundred small publishes costs
one buffer compaction, not a hundred.
"""

from __future__ import annotations

import struct

from .constants import FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD

_frame_head = struct.Struct(">BHI")
_content_head = struct.Struct(">HHQ")

HEARTBEAT_FRAME = _frame_head.pack(FRAME_HEARTBEAT, 0, 0) + b"\xce"


class FrameError(Exception):
    """A frame that breaks the framing rules: the connection must close with 501."""


class FrameReader:
    """Complete frames out of a byte stream, in one pass per read.

    The unparsed bytes are kept as ``bytes`` (the read itself when nothing was left
    over), so each payload is a single slice copy.  Reads that cannot complete the
    next frame are only collected in ``_more`` and joined once the frame is whole:
    a large frame trickling in byte by byte costs linear time, not a copy of the
    partial frame per read.
    """

    __slots__ = ("_buf", "_error", "_have", "_more", "_need", "frame_max")

    def __init__(self, frame_max: int) -> None:
        self._buf = b""  # unparsed bytes, starting at a frame boundary
        self._more: list[bytes] = []  # reads after _buf, not joined yet
        self._have = 0  # len(_buf) + the lengths in _more
        self._need = 8  # bytes the next frame needs at least (its header + end octet)
        # A framing error found after some good frames: those are returned first
        # (so the outcome does not depend on how TCP split the stream) and the
        # error is raised by the next call.
        self._error: FrameError | None = None
        # Largest accepted frame *including* its 8 bytes of overhead.
        self.frame_max = frame_max

    def feed(self, data: bytes) -> None:
        if self._have:
            self._more.append(data)
        else:
            self._buf = data
        self._have += len(data)

    @property
    def buffered(self) -> int:
        return self._have

    @property
    def error_pending(self) -> bool:
        return self._error is not None

    def frames(self) -> list[tuple[int, int, bytes]]:
        """Every complete frame buffered so far as (type, channel, payload).

        Raises FrameError at the first frame that breaks the rules, after the
        good frames before it have been returned by an earlier call.
        """
        if self._error is not None:
            raise self._error
        out: list[tuple[int, int, bytes]] = []
        if self._have < self._need:
            return out
        if self._more:
            self._buf = b"".join((self._buf, *self._more))
            self._more = []
        try:
            self._parse(out)
        except FrameError as exc:
            if not out:
                raise
            self._error = exc
        return out

    def _parse(self, out: list[tuple[int, int, bytes]]) -> None:
        buf = self._buf
        end_of_data = len(buf)
        off = 0
        unpack = _frame_head.unpack_from
        limit = self.frame_max
        need = 8
        try:
            while end_of_data - off >= 8:
                ftype, channel, size = unpack(buf, off)
                if ftype not in (FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT):
                    raise FrameError(f"type {ftype}, all octets = <<>>: unknown_frame")
                if limit and size + 8 > limit:
                    raise FrameError(f"type {ftype}, all octets = <<>>: "
                                     f"{{frame_too_large,{size},{limit - 8}}}")
                end = off + 7 + size
                if end >= end_of_data:
                    need = size + 8  # a valid header: wait for the whole frame
                    break
                if buf[end] != FRAME_END:
                    raise FrameError(f"type {ftype}, all octets = {erlang_binary(buf[off + 7 : end])}: "
                                     f"{{invalid_frame_end_marker,{buf[end]}}}")
                out.append((ftype, channel, buf[off + 7 : end]))
                off = end + 1
        finally:
            # Keep what is left (also after an error: the good frames are returned first).
            if off:
                self._buf = buf[off:]
            self._have = end_of_data - off
            self._need = need


def erlang_binary(data: bytes | bytearray) -> str:
    """Bytes as Erlang prints a binary, which is how RabbitMQ's frame errors show them."""
    shown = bytes(data[:64])
    return "<<" + ",".join(str(b) for b in shown) + ("...>>" if len(data) > 64 else ">>")


def method_frame(channel: int, payload: bytes) -> bytes:
    return _frame_head.pack(FRAME_METHOD, channel, len(payload)) + payload + b"\xce"


def header_frame(channel: int, payload: bytes) -> bytes:
    return _frame_head.pack(FRAME_HEADER, channel, len(payload)) + payload + b"\xce"


def content_header_payload(body_size: int, raw_properties: bytes, class_id: int = 60) -> bytes:
    """class-id(2) weight(2)=0 body-size(8) property-flags+properties(raw)."""
    return _content_head.pack(class_id, 0, body_size) + raw_properties


def body_frames(channel: int, body: bytes, frame_max: int) -> list[bytes]:
    """Split a body into body frames no larger than frame_max (0 = unlimited)."""
    if not body:
        return []
    chunk = frame_max - 8 if frame_max else len(body)
    pack = _frame_head.pack
    if len(body) <= chunk:
        return [pack(FRAME_BODY, channel, len(body)), body, b"\xce"]
    out: list[bytes] = []
    view = memoryview(body)
    for start in range(0, len(body), chunk):
        piece = view[start : start + chunk]
        out.append(pack(FRAME_BODY, channel, len(piece)))
        out.append(piece)  # type: ignore[arg-type]
        out.append(b"\xce")
    return out

