"""Basic content properties (hutch.protocol.properties) against pamqp.commands.Basic.Properties."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands
from pamqp import header as pheader

from hutch.protocol.codec import DecodeError
from hutch.protocol.properties import (
    FLAG_DELIVERY_MODE,
    FLAG_EXPIRATION,
    FLAG_HEADERS,
    FLAG_USER_ID,
    PROPERTIES,
    decode_properties,
    encode_properties,
    peek,
)

from ._pamqp import PROP_TO_PAMQP, SAMPLE_TABLE, SHARED_TABLE

UTC = datetime.UTC

ALL_PROPS: dict[str, Any] = {
    "content_type": "application/json; charset=utf-8",
    "content_encoding": "gzip-ü",
    "headers": SAMPLE_TABLE,
    "delivery_mode": 2,
    "priority": 7,
    "correlation_id": "corr-☃-𝄞",
    "reply_to": "amq.rabbitmq.reply-to.g1h2AA==",
    "expiration": "60000",
    "message_id": "msg-日本-1",
    "timestamp": 1_700_000_123,
    "type": "order.created",
    "user_id": "guest",
    "app_id": "hutch-tests",
    "cluster_id": "cluster-ïd",
}


def pamqp_props(props: dict[str, Any]) -> commands.Basic.Properties:
    """pamqp properties carrying the same values (validation bypassed for cluster_id etc.)."""
    p = commands.Basic.Properties()
    p.cluster_id = None  # pamqp defaults this to '' (absent)
    for name, value in props.items():
        if name == "timestamp":
            value = datetime.datetime.fromtimestamp(value, UTC)
        setattr(p, PROP_TO_PAMQP[name], value)
    return p


def from_pamqp(p: commands.Basic.Properties) -> dict[str, Any]:
    out = {}
    for name, pname in PROP_TO_PAMQP.items():
        value = getattr(p, pname)
        if value is None or value == "":
            continue
        if name == "timestamp":
            value = int(value.timestamp())
        out[name] = value
    return out


def expected_peek(props: dict[str, Any]) -> tuple[int, str | None, bool, str | None]:
    return (props.get("delivery_mode", 0), props.get("expiration"), "headers" in props, props.get("user_id"))


# -- layout ------------------------------------------------------------------------------------


def test_property_order_and_flags_match_pamqp() -> None:
    pcls = commands.Basic.Properties
    assert [PROP_TO_PAMQP[n] for n, _ in PROPERTIES] == pcls.__slots__
    for bit, (name, kind) in zip(range(15, 1, -1), PROPERTIES, strict=True):
        pname = PROP_TO_PAMQP[name]
        assert pcls.flags[pname] == 1 << bit
        assert pcls.amqp_type(pname) == ("timestamp" if kind == "longlong" else kind)
    assert (FLAG_HEADERS, FLAG_DELIVERY_MODE, FLAG_EXPIRATION, FLAG_USER_ID) == (
        pcls.flags["headers"], pcls.flags["delivery_mode"], pcls.flags["expiration"], pcls.flags["user_id"])


def test_all_properties_roundtrip_and_match_pamqp() -> None:
    raw = encode_properties(ALL_PROPS)
    assert raw[:2] == b"\xff\xfc"
    assert raw == pamqp_props(ALL_PROPS).marshal()
    assert decode_properties(raw) == ALL_PROPS
    assert peek(raw) == (2, "60000", True, "guest")
    back = commands.Basic.Properties()
    back.unmarshal(struct.unpack(">H", raw[:2])[0], raw[2:])
    assert from_pamqp(back) == ALL_PROPS


@pytest.mark.parametrize("name", [n for n, _ in PROPERTIES])
def test_each_property_alone(name: str) -> None:
    props = {name: ALL_PROPS[name]}
    raw = encode_properties(props)
    bit = 15 - [n for n, _ in PROPERTIES].index(name)
    assert raw[:2] == struct.pack(">H", 1 << bit)
    assert raw == pamqp_props(props).marshal()
    assert decode_properties(raw) == props
    assert peek(raw) == expected_peek(props)


@pytest.mark.parametrize("name", [n for n, _ in PROPERTIES])
def test_each_property_missing(name: str) -> None:
    props = {k: v for k, v in ALL_PROPS.items() if k != name}
    raw = encode_properties(props)
    assert raw == pamqp_props(props).marshal()
    assert decode_properties(raw) == props
    assert peek(raw) == expected_peek(props)


def test_no_properties() -> None:
    assert encode_properties({}) == b"\x00\x00" == commands.Basic.Properties().marshal()
    assert decode_properties(b"\x00\x00") == {}
    assert peek(b"\x00\x00") == (0, None, False, None)


def test_none_values_are_absent() -> None:
    assert encode_properties(dict.fromkeys(ALL_PROPS)) == b"\x00\x00"


def test_empty_strings_and_zeros_are_present() -> None:
    # hutch keeps "" / 0 (present-but-empty); pamqp would drop empty strings
    props = {"content_type": "", "delivery_mode": 0, "expiration": "", "timestamp": 0, "user_id": ""}
    raw = encode_properties(props)
    assert decode_properties(raw) == props
    assert peek(raw) == (0, "", False, "")


def test_extreme_numeric_values() -> None:
    props = {"delivery_mode": 255, "priority": 0, "timestamp": 2**64 - 1}
    raw = encode_properties(props)
    assert decode_properties(raw) == props
    assert peek(raw) == (255, None, False, None)


def test_continuation_flag_words_are_skipped() -> None:
    # flags word with bit 0 set, then two continuation words (the last one ends the chain)
    body = encode_properties({"content_type": "t", "delivery_mode": 1, "expiration": "5"})
    flags = struct.unpack(">H", body[:2])[0]
    raw = struct.pack(">HHH", flags | 1, 0x0001, 0x0000) + body[2:]
    assert decode_properties(raw) == {"content_type": "t", "delivery_mode": 1, "expiration": "5"}
    assert peek(raw) == (1, "5", False, None)
    raw2 = struct.pack(">HH", (flags & ~FLAG_EXPIRATION) | 1, 0) + encode_properties(
        {"content_type": "t", "delivery_mode": 1})[2:]
    assert peek(raw2) == (1, None, False, None)


def test_decode_pamqp_header_frame_properties() -> None:
    pprops = commands.Basic.Properties(content_type="text/plain", headers={"k": [1, "v"]}, delivery_mode=1,
                                       timestamp=datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
                                       message_type="t", user_id="u")
    payload = pheader.ContentHeader(0, 10, pprops).marshal()
    raw = payload[12:]
    assert decode_properties(raw) == {
        "content_type": "text/plain", "headers": {"k": [1, "v"]}, "delivery_mode": 1,
        "timestamp": int(datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()),
        "type": "t", "user_id": "u",
    }
    assert peek(raw) == (1, None, True, "u")


# -- property based -----------------------------------------------------------------------------

_STR = st.text(min_size=1, max_size=30).filter(lambda s: len(s.encode()) <= 255)
_VALUE_STRATEGY: dict[str, st.SearchStrategy[Any]] = {
    "shortstr": _STR,
    "table": SHARED_TABLE,
    "octet": st.integers(0, 255),
    "longlong": st.integers(0, 0xFFFFFFFF),  # pamqp reads larger timestamps as milliseconds
}


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Any]:
    present = draw(st.lists(st.sampled_from([n for n, _ in PROPERTIES]), unique=True))
    # keep wire order so the tests can also check decode_properties' key order
    return {n: draw(_VALUE_STRATEGY[k]) for n, k in PROPERTIES if n in present}


@settings(max_examples=200, deadline=None, database=None)
@given(properties())
def test_random_properties_match_pamqp(props: dict[str, Any]) -> None:
    raw = encode_properties(props)
    assert raw == pamqp_props(props).marshal()
    decoded = decode_properties(raw)
    assert decoded == props
    assert list(decoded) == list(props)
    back = commands.Basic.Properties()
    back.unmarshal(struct.unpack(">H", raw[:2])[0], raw[2:])
    assert from_pamqp(back) == props


@settings(max_examples=200, deadline=None, database=None)
@given(properties())
def test_peek_agrees_with_full_decode(props: dict[str, Any]) -> None:
    raw = encode_properties(props)
    assert peek(raw) == expected_peek(props)
    # trailing bytes after the properties never change the answer
    assert peek(raw + b"\xce\x00\xff") == expected_peek(props)


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.one_of(st.none(), st.integers(0, 255)),
    st.one_of(st.none(), _STR),
    st.one_of(st.none(), SHARED_TABLE),
    st.one_of(st.none(), _STR),
    st.one_of(st.none(), _STR),
    st.one_of(st.none(), _STR),
)
def test_peek_hot_fields(delivery_mode: int | None, expiration: str | None, headers: dict | None,
                         user_id: str | None, content_type: str | None, content_encoding: str | None) -> None:
    # the fields before delivery_mode decide how far peek's fast path must skip
    props = {"content_type": content_type, "content_encoding": content_encoding, "headers": headers,
             "delivery_mode": delivery_mode, "expiration": expiration, "user_id": user_id}
    props = {k: v for k, v in props.items() if v is not None}
    raw = encode_properties(props)
    assert peek(raw) == expected_peek(props)
    assert peek(pamqp_props(props).marshal()) == expected_peek(props)


# -- malformed ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n, _ in PROPERTIES])
def test_truncated_properties_raise_decode_error(name: str) -> None:
    # the properties up to and including `name`: every strict prefix is malformed
    props = {n: ALL_PROPS[n] for n, _ in PROPERTIES[: [p for p, _ in PROPERTIES].index(name) + 1]}
    raw = encode_properties(props)
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_properties(raw[:cut])


def test_truncated_continuation_word_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_properties(b"\x80\x01")
    with pytest.raises(DecodeError):
        decode_properties(b"\x80\x01\x00")


@pytest.mark.parametrize("raw", [b"\x01\x00\x09abc", b"\x00\x10", b"\x11\x00\x01", b"\x11\x00\x01\x03ab"],
                         ids=["expiration-overruns", "user-id-missing", "dm-then-expiration-missing",
                              "dm-expiration-overruns"])
def test_peek_malformed_slow_path_raises_decode_error(raw: bytes) -> None:
    # with expiration or user_id flagged, peek falls back to decode_properties
    with pytest.raises(DecodeError):
        peek(raw)


# peek's fast path (no expiration/user_id flag) indexes the buffer without bounds checks
_PEEK_MALFORMED = {
    "empty": b"",
    "one-byte": b"\x10",
    "delivery-mode-missing": b"\x10\x00",
    "content-type-overruns": b"\x90\x00\x05ab",
    "content-encoding-missing": b"\x50\x00\x01a",
    "headers-overrun": b"\x30\x00\x00\x00\x00\x10",
    "headers-length-truncated": b"\x30\x00\x00\x00",
    "continuation-truncated": b"\x10\x01",
}


@pytest.mark.parametrize("raw", _PEEK_MALFORMED.values(), ids=_PEEK_MALFORMED.keys())
def test_peek_malformed_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        peek(raw)
