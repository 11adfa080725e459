"""FrameReader, frame writers and content headers (hutch.protocol.frames)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

from hutch.protocol import methods as m
from hutch.protocol.constants import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
)
from hutch.protocol.frames import (
    HEARTBEAT_FRAME,
    FrameError,
    FrameReader,
    body_frames,
    content_header_payload,
    header_frame,
    method_frame,
)
from hutch.protocol.properties import decode_properties, encode_properties

Frame = tuple[int, int, bytes]


def raw_frame(ftype: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes((end,))


def read_all(reader: FrameReader, chunks: list[bytes]) -> list[Frame]:
    out: list[Frame] = []
    for chunk in chunks:
        reader.feed(chunk)
        out.extend(reader.frames())
    return out


SAMPLE_FRAMES: list[Frame] = [
    (FRAME_METHOD, 0, m.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=60).encode()),
    (FRAME_METHOD, 1, m.BasicPublish(exchange="ex", routing_key="rk ☃", mandatory=True).encode()),
    (FRAME_HEADER, 1, content_header_payload(5, encode_properties({"delivery_mode": 2}))),
    (FRAME_BODY, 1, b"he\xcell"),
    (FRAME_BODY, 65535, b"\xce" * 10),
    (FRAME_BODY, 2, b""),
    (FRAME_HEARTBEAT, 0, b""),
    (FRAME_METHOD, 7, m.ChannelClose(reply_code=406, reply_text="PRECONDITION_FAILED").encode()),
]
SAMPLE_STREAM = b"".join(raw_frame(*f) for f in SAMPLE_FRAMES)


# -- FrameReader -------------------------------------------------------------------------------


def test_whole_buffer() -> None:
    reader = FrameReader(131072)
    reader.feed(SAMPLE_STREAM)
    assert reader.frames() == SAMPLE_FRAMES
    assert reader.buffered == 0
    assert reader.frames() == []


def test_byte_by_byte() -> None:
    reader = FrameReader(131072)
    out = []
    for i in range(len(SAMPLE_STREAM)):
        reader.feed(SAMPLE_STREAM[i : i + 1])
        got = reader.frames()
        assert len(got) <= 1
        out.extend(got)
    assert out == SAMPLE_FRAMES
    assert reader.buffered == 0


def test_frame_completes_only_on_its_end_octet() -> None:
    reader = FrameReader(0)
    frame = raw_frame(FRAME_BODY, 1, b"abc")
    reader.feed(frame[:-1])
    assert reader.frames() == []
    assert reader.buffered == len(frame) - 1
    reader.feed(frame[-1:])
    assert reader.frames() == [(FRAME_BODY, 1, b"abc")]


def test_partial_frame_kept_after_complete_ones() -> None:
    reader = FrameReader(4096)
    reader.feed(SAMPLE_STREAM + SAMPLE_STREAM[:10])
    assert reader.frames() == SAMPLE_FRAMES
    assert reader.buffered == 10
    reader.feed(SAMPLE_STREAM[10:])
    assert reader.frames() == SAMPLE_FRAMES


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT]),
                  st.integers(0, 65535), st.binary(max_size=300)),
        max_size=12,
    ),
    st.lists(st.integers(0, 4000), max_size=20),
)
def test_any_split_yields_same_frames(frames: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(raw_frame(*f) for f in frames)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    whole = FrameReader(4096)
    whole.feed(stream)
    assert whole.frames() == frames
    assert read_all(FrameReader(4096), chunks) == frames
    assert read_all(FrameReader(4096), [bytes([b]) for b in stream]) == frames


def test_pamqp_frames_are_read() -> None:
    props = commands.Basic.Properties(content_type="text/plain", delivery_mode=2, headers={"a": "b"})
    stream = b"".join([
        pframe.marshal(commands.Basic.Publish(exchange="x", routing_key="y"), 3),
        pframe.marshal(pheader.ContentHeader(0, 4, props), 3),
        pframe.marshal(pbody.ContentBody(b"body"), 3),
        pframe.marshal(pheartbeat.Heartbeat(), 0),
    ])
    reader = FrameReader(FRAME_MIN_SIZE)
    reader.feed(stream)
    got = reader.frames()
    assert [(t, c) for t, c, _ in got] == [(1, 3), (2, 3), (3, 3), (8, 0)]
    assert m.decode_method(got[0][2]) == m.BasicPublish(exchange="x", routing_key="y")
    class_id, size, raw = parse_content_header(got[1][2])
    assert (class_id, size) == (60, 4)
    assert decode_properties(raw) == {"content_type": "text/plain", "delivery_mode": 2, "headers": {"a": "b"}}
    assert got[2][2] == b"body"
    assert got[3] == (FRAME_HEARTBEAT, 0, b"")


def test_frame_max_boundary() -> None:
    limit = 4096
    exact = raw_frame(FRAME_BODY, 1, b"x" * (limit - 8))
    assert len(exact) == limit
    reader = FrameReader(limit)
    reader.feed(exact)
    assert reader.frames() == [(FRAME_BODY, 1, b"x" * (limit - 8))]

    reader = FrameReader(limit)
    reader.feed(raw_frame(FRAME_BODY, 1, b"x" * (limit - 7)))
    with pytest.raises(FrameError, match="frame_too_large"):
        reader.frames()


def test_frame_too_large_detected_from_header_alone() -> None:
    reader = FrameReader(4096)
    # header plus the first payload octet: the size alone decides, no need to buffer 1 MB
    reader.feed(struct.pack(">BHI", FRAME_BODY, 1, 1_000_000) + b"x")
    with pytest.raises(FrameError, match=r"frame_too_large,1000000,4088"):
        reader.frames()


def test_frame_too_large_after_good_frames() -> None:
    reader = FrameReader(4096)
    reader.feed(raw_frame(FRAME_BODY, 1, b"ok") + struct.pack(">BHI", FRAME_METHOD, 1, 2**32 - 1) + b"\x00")
    assert reader.frames() == [(FRAME_BODY, 1, b"ok")]  # the good frame first...
    assert reader.error_pending
    with pytest.raises(FrameError):  # ...then the error
        reader.frames()


def test_frame_max_zero_means_unlimited() -> None:
    reader = FrameReader(0)
    big = b"\x01" * 300_000
    reader.feed(raw_frame(FRAME_BODY, 9, big))
    assert reader.frames() == [(FRAME_BODY, 9, big)]


@pytest.mark.parametrize("end", [0x00, 0xCD, 0xCF, 0xFF])
def test_bad_frame_end(end: int) -> None:
    reader = FrameReader(4096)
    reader.feed(raw_frame(FRAME_METHOD, 1, b"\x00\x14\x00\x0a\x00", end=end))
    with pytest.raises(FrameError):
        reader.frames()


def test_bad_frame_end_after_good_frame() -> None:
    reader = FrameReader(4096)
    reader.feed(HEARTBEAT_FRAME + raw_frame(FRAME_BODY, 1, b"abc", end=0))
    assert len(reader.frames()) == 1
    with pytest.raises(FrameError):
        reader.frames()


@pytest.mark.parametrize("bad", [raw_frame(FRAME_BODY, 1, b"abc", end=0), raw_frame(9, 1, b""),
                                 struct.pack(">BHI", FRAME_BODY, 1, 10**6) + b"x"],
                         ids=["bad-end", "bad-type", "too-large"])
def test_good_frames_before_a_bad_one_are_returned(bad: bytes) -> None:
    # byte-at-a-time the two good frames are seen before the error; in one read they must be too
    reader = FrameReader(4096)
    reader.feed(SAMPLE_STREAM[: len(raw_frame(*SAMPLE_FRAMES[0])) + len(raw_frame(*SAMPLE_FRAMES[1]))] + bad)
    assert reader.frames() == SAMPLE_FRAMES[:2]
    with pytest.raises(FrameError):
        reader.frames()


@pytest.mark.parametrize("ftype", [0, 4, 5, 7, 9, 0x41, 0xCE, 255])
def test_unknown_frame_type(ftype: int) -> None:
    reader = FrameReader(4096)
    reader.feed(raw_frame(ftype, 0, b"abc"))
    with pytest.raises(FrameError):
        reader.frames()


def test_protocol_header_is_not_a_frame() -> None:
    # 'A' (0x41) as a frame type: a client re-sending the protocol header mid-stream
    reader = FrameReader(4096)
    reader.feed(b"AMQP\x00\x00\x09\x01" + b"\xce" * 4096)
    with pytest.raises(FrameError):
        reader.frames()


# -- writers ----------------------------------------------------------------------------------


def test_heartbeat_frame_matches_pamqp() -> None:
    assert HEARTBEAT_FRAME == pframe.marshal(pheartbeat.Heartbeat(), 0) == b"\x08\x00\x00\x00\x00\x00\x00\xce"


@pytest.mark.parametrize("channel", [0, 1, 300, 65535])
def test_method_frame_matches_pamqp(channel: int) -> None:
    meth = m.QueueDeclareOk(queue="amq.gen-Xy_1", message_count=12, consumer_count=3)
    pobj = commands.Queue.DeclareOk(queue="amq.gen-Xy_1", message_count=12, consumer_count=3)
    assert method_frame(channel, meth.encode()) == pframe.marshal(pobj, channel)


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 10_000, 2**40])
def test_header_frame_matches_pamqp(size: int) -> None:
    props = commands.Basic.Properties(content_type="application/json", delivery_mode=1)
    raw_props = encode_properties({"content_type": "application/json", "delivery_mode": 1})
    assert header_frame(5, content_header_payload(size, raw_props)) == pframe.marshal(
        pheader.ContentHeader(0, size, props), 5)


def _payloads(parts: list[bytes]) -> list[Frame]:
    reader = FrameReader(0)
    reader.feed(b"".join(parts))
    return reader.frames()


@pytest.mark.parametrize("frame_max", [4096, 4097, 5000, 131072])
@pytest.mark.parametrize("size", [1, 100, 4087, 4088, 4089, 8176, 8177, 20_000, 131064, 131065, 300_001])
def test_body_frames_respect_frame_max(frame_max: int, size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    parts = body_frames(11, body, frame_max)
    frames = _payloads(parts)
    chunk = frame_max - 8
    assert len(frames) == -(-size // chunk)
    assert all(t == FRAME_BODY and c == 11 for t, c, _ in frames)
    assert all(len(p) + 8 <= frame_max for _, _, p in frames)
    assert all(len(p) == chunk for _, _, p in frames[:-1])  # only the last frame is short
    assert b"".join(p for _, _, p in frames) == body
    # and each is exactly what pamqp would frame
    assert b"".join(parts) == b"".join(pframe.marshal(pbody.ContentBody(p), 11) for _, _, p in frames)
    # a reader with that frame_max accepts every one
    reader = FrameReader(frame_max)
    reader.feed(b"".join(parts))
    assert len(reader.frames()) == len(frames)


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(9, 600), st.integers(0, 65535))
def test_body_frames_any_split(body: bytes, frame_max: int, channel: int) -> None:
    frames = _payloads(body_frames(channel, body, frame_max))
    assert b"".join(p for _, _, p in frames) == body
    assert all(0 < len(p) <= frame_max - 8 for _, _, p in frames)
    assert {c for _, c, _ in frames} == {channel}


def test_body_frames_empty_and_unlimited() -> None:
    assert body_frames(1, b"", 4096) == []
    assert body_frames(1, b"", 0) == []
    big = b"z" * 200_000
    assert _payloads(body_frames(2, big, 0)) == [(FRAME_BODY, 2, big)]


# -- content header -----------------------------------------------------------------------------

_PROPS = [
    ({}, commands.Basic.Properties()),
    ({"delivery_mode": 2}, commands.Basic.Properties(delivery_mode=2)),
    (
        {"content_type": "text/plain; charset=utf-8", "headers": {"x-ü": "ÿ", "n": 70000}, "priority": 9,
         "correlation_id": "c-1", "reply_to": "amq.rabbitmq.reply-to", "expiration": "60000",
         "message_id": "m-☃", "type": "evt", "user_id": "guest", "app_id": "hutch-tests"},
        commands.Basic.Properties(content_type="text/plain; charset=utf-8", headers={"n": 70000, "x-ü": "ÿ"},
                                  priority=9, correlation_id="c-1", reply_to="amq.rabbitmq.reply-to",
                                  expiration="60000", message_id="m-☃", message_type="evt",
                                  user_id="guest", app_id="hutch-tests"),
    ),
]


@pytest.mark.parametrize(("props", "pprops"), _PROPS, ids=["none", "persistent", "many"])
@pytest.mark.parametrize("body_size", [0, 1, 2**32 + 5, 2**63 - 1])
def test_content_header_matches_pamqp(props: dict, pprops: commands.Basic.Properties, body_size: int) -> None:
    if "headers" in props:  # pamqp writes table keys sorted
        props = {**props, "headers": dict(sorted(props["headers"].items()))}
    payload = content_header_payload(body_size, encode_properties(props))
    assert payload == pheader.ContentHeader(0, body_size, pprops).marshal()
    class_id, size, raw = parse_content_header(payload)
    assert (class_id, size) == (60, body_size)
    assert decode_properties(raw) == props
    # pamqp reads hutch's header back
    hdr = pheader.ContentHeader()
    hdr.unmarshal(payload)
    assert (hdr.class_id, hdr.weight, hdr.body_size) == (60, 0, body_size)
    assert hdr.properties == pprops


def test_content_header_class_and_weight() -> None:
    payload = content_header_payload(7, b"\x00\x00", class_id=50)
    assert payload == b"\x00\x32\x00\x00" + struct.pack(">Q", 7) + b"\x00\x00"
    assert parse_content_header(payload) == (50, 7, b"\x00\x00")
    # weight is ignored on parse
    assert parse_content_header(b"\x00\x3c\x12\x34" + struct.pack(">Q", 9) + b"\x80\x00\x01a") == (
        60, 9, b"\x80\x00\x01a")



def parse_content_header(payload: bytes) -> tuple[int, int, bytes]:
    """(class_id, body_size, raw properties) of a content header payload (weight ignored)."""
    class_id, _weight, body_size = struct.unpack_from(">HHQ", payload, 0)
    return class_id, body_size, payload[12:]


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(0, 2**64 - 1), st.binary(min_size=2, max_size=64))
def test_content_header_roundtrip_any(body_size: int, raw: bytes) -> None:
    assert parse_content_header(content_header_payload(body_size, raw)) == (60, body_size, raw)
