"""The hand-written hot-path codecs (hutch.protocol.fast) against pamqp and the generic codec."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands
from pamqp import encode as pencode
from pamqp import frame as pframe
from pamqp import header as pheader

from hutch.protocol import fast
from hutch.protocol import methods as m
from hutch.protocol.codec import DecodeError
from hutch.protocol.frames import FrameReader, method_frame

from ._pamqp import pamqp_method_frame, pamqp_method_payload

SHORTSTR = st.text(max_size=60).filter(lambda s: len(s.encode()) <= 255)
TAG = st.integers(0, 2**63 - 1)  # pamqp writes longlong signed
SETTINGS = settings(max_examples=200, deadline=None, database=None)


# -- decode_publish -----------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, 65535), SHORTSTR, SHORTSTR, st.booleans(), st.booleans())
def test_decode_publish_matches_pamqp(ticket: int, exchange: str, routing_key: str,
                                      mandatory: bool, immediate: bool) -> None:
    meth = m.BasicPublish(reserved_1=ticket, exchange=exchange, routing_key=routing_key,
                          mandatory=mandatory, immediate=immediate)
    payload = pamqp_method_payload(meth)
    assert fast.decode_publish(payload) == (exchange, routing_key, mandatory, immediate)
    generic = m.decode_method(payload)
    assert generic == meth
    assert fast.decode_publish(meth.encode()) == (exchange, routing_key, mandatory, immediate)


def test_decode_publish_from_stock_pamqp() -> None:
    frame = pframe.marshal(commands.Basic.Publish(exchange="amq.topic", routing_key="a.b.c",
                                                  mandatory=True), 1)
    reader = FrameReader(4096)
    reader.feed(frame)
    ((_, _, payload),) = reader.frames()
    assert fast.decode_publish(payload) == ("amq.topic", "a.b.c", True, False)


@pytest.mark.parametrize(("bits", "expected"), [
    (0, (False, False)), (1, (True, False)), (2, (False, True)),
    (3, (True, True)), (0xFC, (False, False)), (0xFF, (True, True)),
])
def test_decode_publish_bits(bits: int, expected: tuple[bool, bool]) -> None:
    payload = b"\x00\x3c\x00\x28\x00\x00\x01e\x02rk" + bytes((bits,))
    assert fast.decode_publish(payload) == ("e", "rk", *expected)


def test_decode_publish_ignores_trailing_bytes_like_generic_decoder() -> None:
    payload = m.BasicPublish(exchange="x", routing_key="y").encode() + b"extra"
    assert fast.decode_publish(payload) == ("x", "y", False, False)
    assert m.decode_method(payload) == m.BasicPublish(exchange="x", routing_key="y")


@SETTINGS
@given(SHORTSTR, SHORTSTR, st.booleans(), st.booleans())
def test_decode_publish_truncations_raise_decode_error(exchange: str, routing_key: str,
                                                       mandatory: bool, immediate: bool) -> None:
    payload = m.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory,
                             immediate=immediate).encode()
    for cut in range(len(payload)):
        with pytest.raises(DecodeError):
            fast.decode_publish(payload[:cut])
        with pytest.raises(DecodeError):
            m.decode_method(payload[:cut])


def test_decode_publish_takes_non_utf8_names() -> None:
    # RabbitMQ takes any bytes in basic.publish's exchange and routing key; they are
    # kept as escaped bytes that encode back unchanged (both decoders agree).
    for payload in (b"\x00\x3c\x00\x28\x00\x00\x01\xff\x00\x00",
                    b"\x00\x3c\x00\x28\x00\x00\x00\x02\xc3\x28\x00"):
        exchange, routing_key, _m, _i = fast.decode_publish(payload)
        method = m.decode_method(payload)
        assert (method.exchange, method.routing_key) == (exchange, routing_key)
        assert method.encode() == payload
        assert fast.shortstr(exchange) + fast.shortstr(routing_key) == payload[6:-1]


# -- decode_ack ---------------------------------------------------------------------------------


@SETTINGS
@given(TAG, st.booleans())
def test_decode_ack_matches_pamqp(tag: int, multiple: bool) -> None:
    meth = m.BasicAck(delivery_tag=tag, multiple=multiple)
    payload = pamqp_method_payload(meth)
    assert payload == pframe.marshal(commands.Basic.Ack(tag, multiple), 0)[7:-1]
    assert fast.decode_ack(payload) == (tag, int(multiple))
    assert m.decode_method(payload) == meth


@SETTINGS
@given(TAG, st.booleans())
def test_decode_reject_matches_pamqp(tag: int, requeue: bool) -> None:
    payload = pframe.marshal(commands.Basic.Reject(tag, requeue), 0)[7:-1]
    assert fast.decode_ack(payload) == (tag, int(requeue))
    assert m.decode_method(payload) == m.BasicReject(delivery_tag=tag, requeue=requeue)


@SETTINGS
@given(TAG, st.booleans(), st.booleans())
def test_decode_nack_matches_pamqp(tag: int, multiple: bool, requeue: bool) -> None:
    payload = pframe.marshal(commands.Basic.Nack(tag, multiple, requeue), 0)[7:-1]
    tag_out, bits = fast.decode_ack(payload)
    assert tag_out == tag
    assert (bool(bits & 1), bool(bits & 2)) == (multiple, requeue)
    assert m.decode_method(payload) == m.BasicNack(delivery_tag=tag, multiple=multiple, requeue=requeue)


def test_decode_ack_full_u64_tag() -> None:
    assert fast.decode_ack(m.BasicAck(delivery_tag=2**64 - 1, multiple=True).encode()) == (2**64 - 1, 1)


@pytest.mark.parametrize("size", range(13))
def test_decode_ack_short_payload(size: int) -> None:
    payload = m.BasicAck(delivery_tag=7, multiple=True).encode()[:size]
    with pytest.raises(DecodeError):
        fast.decode_ack(payload)


# -- deliver_frame ------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, 65535), SHORTSTR, TAG, st.booleans(), SHORTSTR, SHORTSTR)
def test_deliver_frame_matches_pamqp(channel: int, consumer_tag: str, tag: int, redelivered: bool,
                                     exchange: str, routing_key: str) -> None:
    frame = fast.deliver_frame(channel, fast.shortstr(consumer_tag), tag, redelivered,
                               fast.shortstr(exchange) + fast.shortstr(routing_key))
    meth = m.BasicDeliver(consumer_tag=consumer_tag, delivery_tag=tag, redelivered=redelivered,
                          exchange=exchange, routing_key=routing_key)
    assert frame == pamqp_method_frame(meth, channel)
    assert frame == method_frame(channel, meth.encode())
    _, ch, pobj = pframe.unmarshal(frame)
    assert ch == channel
    assert (pobj.consumer_tag, pobj.delivery_tag, pobj.redelivered, pobj.exchange, pobj.routing_key) == (
        consumer_tag, tag, redelivered, exchange, routing_key)


@SETTINGS
@given(st.integers(0, 65535), SHORTSTR, TAG, st.booleans(), SHORTSTR, SHORTSTR,
       st.sampled_from([{}, {"delivery_mode": 2}, {"content_type": "text/plain", "headers": {"a": 1}}]),
       st.binary(max_size=300))
def test_delivery_matches_pamqp(channel: int, consumer_tag: str, tag: int, redelivered: bool,
                                exchange: str, routing_key: str, props: dict, body: bytes) -> None:
    """The one-join delivery is byte for byte pamqp's deliver + header (+ body) frames."""
    pprops = commands.Basic.Properties(**props)
    header = pframe.marshal(pheader.ContentHeader(0, len(body), pprops), channel)[7:-1]
    got = fast.delivery(channel, fast.shortstr(consumer_tag), tag, redelivered,
                        fast.shortstr(exchange) + fast.shortstr(routing_key), header, body)
    meth = m.BasicDeliver(consumer_tag=consumer_tag, delivery_tag=tag, redelivered=redelivered,
                          exchange=exchange, routing_key=routing_key)
    want = pamqp_method_frame(meth, channel) + pframe.marshal(
        pheader.ContentHeader(0, len(body), pprops), channel)
    if body:
        want += pframe.marshal(pbody.ContentBody(body), channel)
    assert got == want


def test_deliver_frame_stock_pamqp() -> None:
    frame = fast.deliver_frame(1, fast.shortstr("ctag-1"), 42, True,
                               fast.shortstr("") + fast.shortstr("q"))
    assert frame == pframe.marshal(commands.Basic.Deliver("ctag-1", 42, True, "", "q"), 1)


def test_deliver_frame_full_u64_tag() -> None:
    frame = fast.deliver_frame(1, b"\x01c", 2**64 - 1, False, b"\x00" + b"\x01r")
    reader = FrameReader(4096)
    reader.feed(frame)
    ((_, _, payload),) = reader.frames()
    assert m.decode_method(payload) == m.BasicDeliver(consumer_tag="c", delivery_tag=2**64 - 1,
                                                      routing_key="r")


# -- confirm_frame ------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(0, 65535), TAG, st.booleans())
def test_confirm_ack_frame_matches_pamqp(channel: int, tag: int, multiple: bool) -> None:
    frame = fast.confirm_frame(channel, tag, multiple)
    assert frame == pframe.marshal(commands.Basic.Ack(tag, multiple), channel)
    assert frame == fast.confirm_frame(channel, tag, multiple, nack=False)


@SETTINGS
@given(st.integers(0, 65535), TAG, st.booleans())
def test_confirm_nack_frame_matches_pamqp(channel: int, tag: int, multiple: bool) -> None:
    frame = fast.confirm_frame(channel, tag, multiple, nack=True)
    assert frame == pframe.marshal(commands.Basic.Nack(tag, multiple, requeue=False), channel)
    _, _, pobj = pframe.unmarshal(frame)
    assert isinstance(pobj, commands.Basic.Nack)
    assert (pobj.delivery_tag, pobj.multiple, pobj.requeue) == (tag, multiple, False)


def test_confirm_frame_full_u64_tag() -> None:
    frame = fast.confirm_frame(3, 2**64 - 1, True)
    assert frame == method_frame(3, m.BasicAck(delivery_tag=2**64 - 1, multiple=True).encode())


# -- shortstr -----------------------------------------------------------------------------------


@SETTINGS
@given(SHORTSTR)
def test_shortstr_matches_pamqp(value: str) -> None:
    assert fast.shortstr(value) == pencode.short_string(value)
    assert fast.shortstr(value)[0] == len(value.encode())


def test_ids_constants() -> None:
    assert fast._DELIVER_IDS == struct.pack(">HH", 60, 60)
    assert fast._GET_OK_IDS == struct.pack(">HH", 60, 71)
