"""Every method in hutch.protocol.methods.SPEC against pamqp's codec.

For each method: build it with non-default values for every argument, check
the method frame payload is byte-identical to what ``pamqp.frame.marshal``
writes, that ``decode_method`` inverts ``encode`` and decodes pamqp's bytes,
and that pamqp decodes hutch's bytes to the same arguments.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hutch.protocol import frames
from hutch.protocol import methods as m
from hutch.protocol.codec import DecodeError, Utf8Error

from ._pamqp import (
    PAMQP_BY_INDEX,
    SAMPLE_TABLE,
    SHARED_TABLE,
    field_map,
    from_pamqp,
    pamqp_class,
    pamqp_method_frame,
    pamqp_method_payload,
    pamqp_unmarshal,
)

pytestmark = pytest.mark.filterwarnings("ignore:This command is deprecated:DeprecationWarning")

ALL_METHODS = [m.BY_NAME[row[2]] for row in m.SPEC]
METHOD_IDS = [cls.NAME for cls in ALL_METHODS]


def _scalar(kind: str, name: str, seed: int) -> Any:
    if kind == "octet":
        return (0xA5 + seed) & 0xFF
    if kind == "short":
        return (0xBEEF + seed * 7) & 0xFFFF
    if kind == "long":
        return (0xDEADBEEF + seed * 13) & 0xFFFFFFFF
    if kind in ("longlong", "timestamp"):
        # pamqp encodes longlong as *signed*, so stay below 2**63 here;
        # test_longlong_is_unsigned covers the top bit.
        return 2**62 + 0x1234_5678_9ABC + seed
    if kind == "shortstr":
        return f"{name}-{seed}-ünïcödé ☃ 𝄞 日本"
    if kind == "longstr":
        return f"{name}-{seed}\x00 lông strïng ✓ {'x' * 300}".encode()
    if kind == "table":
        table = dict(SAMPLE_TABLE)
        table[f"z-{name}"] = seed * 100_000 + 65536
        return dict(sorted(table.items()))  # pamqp writes keys sorted
    raise AssertionError(kind)


def _bit_patterns(n: int) -> list[tuple[bool, ...]]:
    """All-true, each single bit, each single bit cleared, alternating."""
    if n == 0:
        return [()]
    pats = {tuple([True] * n), tuple(i % 2 == 0 for i in range(n)), tuple(i % 2 == 1 for i in range(n))}
    for i in range(n):
        pats.add(tuple(j == i for j in range(n)))
        pats.add(tuple(j != i for j in range(n)))
    return sorted(pats, reverse=True)


def sample_instances(cls: type[m.Method]) -> list[m.Method]:
    bit_names = [name for name, kind in cls.FIELDS if kind == "bit"]
    out = []
    for seed, pattern in enumerate(_bit_patterns(len(bit_names))):
        values: dict[str, Any] = {}
        bits = dict(zip(bit_names, pattern, strict=True))
        for name, kind in cls.FIELDS:
            values[name] = bits[name] if kind == "bit" else _scalar(kind, name, seed)
        out.append(cls(**values))
    return out


def _check_same_args(method: m.Method, pobj: Any) -> None:
    for name, pname, kind in field_map(type(method)):
        assert from_pamqp(kind, getattr(pobj, pname)) == getattr(method, name), (method.NAME, name)


# -- structure -------------------------------------------------------------------------------


def test_spec_covers_every_pamqp_method() -> None:
    ours = {(cls.CLASS_ID << 16) | cls.METHOD_ID for cls in ALL_METHODS}
    theirs = {idx for idx, pcls in PAMQP_BY_INDEX.items() if pcls.__slots__ is not None and idx >> 16}
    assert ours == theirs
    assert len(ours) == len(m.SPEC) == len(m.BY_NAME) == len(m.DECODERS)


def test_field_name_differences_are_positional() -> None:
    assert [n for n, _ in m.BasicQos.FIELDS] == ["prefetch_size", "prefetch_count", "global_"]
    assert pamqp_class(m.BasicQos).__slots__ == ["prefetch_size", "prefetch_count", "global_"]
    assert [p for _, p, _ in field_map(m.ConnectionOpen)] == ["virtual_host", "capabilities", "insist"]
    assert [p for _, p, _ in field_map(m.ExchangeDeclare)][:3] == ["ticket", "exchange", "exchange_type"]
    assert [p for _, p, _ in field_map(m.ChannelOpenOk)] == ["channel_id"]
    assert [p for _, p, _ in field_map(m.BasicGetEmpty)] == ["cluster_id"]


@pytest.mark.parametrize("cls", ALL_METHODS, ids=METHOD_IDS)
def test_types_and_content_flag_match_pamqp(cls: type[m.Method]) -> None:
    field_map(cls)  # asserts types line up
    assert cls.HAS_CONTENT == (cls.NAME in {"basic.publish", "basic.return", "basic.deliver",
                                            "basic.get_ok"})
    assert m.method_name(cls.CLASS_ID, cls.METHOD_ID) == cls.NAME
    assert pamqp_class(cls).name.lower().replace(".", "") == cls.NAME.replace("_", "").replace(".", "")


def test_method_name_unknown() -> None:
    assert m.method_name(60, 999) == "unknown(60, 999)"


# -- encode == pamqp, decode round trip -----------------------------------------------------


@pytest.mark.parametrize("cls", ALL_METHODS, ids=METHOD_IDS)
def test_encode_matches_pamqp(cls: type[m.Method]) -> None:
    for method in sample_instances(cls):
        payload = method.encode()
        assert payload[:4] == struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID)
        assert payload == pamqp_method_payload(method), method
        assert frames.method_frame(517, payload) == pamqp_method_frame(method, 517)


@pytest.mark.parametrize("cls", ALL_METHODS, ids=METHOD_IDS)
def test_decode_roundtrip(cls: type[m.Method]) -> None:
    for method in sample_instances(cls):
        decoded = m.decode_method(method.encode())
        assert type(decoded) is cls
        assert decoded == method
        # memoryview payloads (as sliced from a frame buffer) decode too
        assert m.decode_method(memoryview(method.encode())) == method


@pytest.mark.parametrize("cls", ALL_METHODS, ids=METHOD_IDS)
def test_decode_pamqp_bytes(cls: type[m.Method]) -> None:
    for method in sample_instances(cls):
        assert m.decode_method(pamqp_method_payload(method)) == method


@pytest.mark.parametrize("cls", ALL_METHODS, ids=METHOD_IDS)
def test_pamqp_decodes_hutch_bytes(cls: type[m.Method]) -> None:
    for method in sample_instances(cls):
        data = frames.method_frame(3, method.encode())
        consumed, channel, pobj = pamqp_unmarshal(data)
        assert (consumed, channel) == (len(data), 3)
        assert type(pobj) is pamqp_class(cls)
        _check_same_args(method, pobj)


@pytest.mark.parametrize("cls", ALL_METHODS, ids=METHOD_IDS)
def test_defaults_roundtrip(cls: type[m.Method]) -> None:
    method = cls()
    assert m.decode_method(method.encode()) == method
    assert method.encode() == pamqp_method_payload(method)


@pytest.mark.parametrize("cls", [c for c in ALL_METHODS if c.FIELDS], ids=lambda c: c.NAME)
def test_truncated_payload_raises_decode_error(cls: type[m.Method]) -> None:
    payload = sample_instances(cls)[0].encode()
    for cut in range(len(payload)):
        with pytest.raises(DecodeError):
            m.decode_method(payload[:cut])


def test_empty_argument_methods_accept_exact_payload() -> None:
    for cls in ALL_METHODS:
        if not cls.FIELDS:
            assert cls().encode() == struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID)
            assert m.decode_method(cls().encode()) == cls()


def test_unknown_method_raises_key_error() -> None:
    with pytest.raises(KeyError):
        m.decode_method(struct.pack(">HH", 60, 999) + b"\x00" * 16)
    with pytest.raises(KeyError):
        m.decode_method(struct.pack(">HH", 11, 10))


def test_short_payload_raises_decode_error() -> None:
    for data in (b"", b"\x00", b"\x00\x3c", b"\x00\x3c\x00"):
        with pytest.raises(DecodeError):
            m.decode_method(data)


def test_bits_are_packed_lsb_first_across_a_run() -> None:
    # exchange.declare: passive, durable, auto_delete, internal, nowait -> one octet
    meth = m.ExchangeDeclare(exchange="x", type="direct", durable=True, internal=True)
    payload = meth.encode()
    assert payload[-5] == 0b01010  # bits byte precedes the 4-byte empty table
    assert payload.endswith(b"\x00\x00\x00\x00")
    # basic.deliver: a bit between a longlong and a shortstr is its own octet
    d = m.BasicDeliver(consumer_tag="c", delivery_tag=1, redelivered=True, exchange="e", routing_key="r")
    assert d.encode() == b"\x00\x3c\x00\x3c\x01c" + struct.pack(">Q", 1) + b"\x01\x01e\x01r"


def test_longlong_is_unsigned() -> None:
    ack = m.BasicAck(delivery_tag=2**64 - 1, multiple=True)
    assert ack.encode() == b"\x00\x3c\x00\x50" + b"\xff" * 8 + b"\x01"
    assert m.decode_method(ack.encode()) == ack
    ok = m.BasicGetOk(delivery_tag=2**63, message_count=2**32 - 1)
    assert m.decode_method(ok.encode()) == ok


def test_non_utf8_name_is_a_frame_error() -> None:
    # RabbitMQ: 501 "FRAME_ERROR - Malformed UTF-8 in shortstr" for any name in a method.
    payload = struct.pack(">HH", 60, 21) + b"\x02\xff\xfe"
    with pytest.raises(Utf8Error) as info:
        m.decode_method(payload)
    assert info.value.code == 501


def test_shortstr_too_long_refuses_to_encode() -> None:
    with pytest.raises(ValueError):
        m.BasicConsumeOk(consumer_tag="é" * 128).encode()
    assert m.decode_method(m.BasicConsumeOk(consumer_tag="é" * 127 + "x").encode()).consumer_tag == (
        "é" * 127 + "x"
    )


# -- property based ---------------------------------------------------------------------------

_SHORTSTR = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
_KIND_STRATEGY: dict[str, st.SearchStrategy[Any]] = {
    "octet": st.integers(0, 2**8 - 1),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**63 - 1),
    "shortstr": _SHORTSTR,
    "longstr": st.text(max_size=100).map(str.encode),
    "bit": st.booleans(),
    "table": SHARED_TABLE,
}


@st.composite
def any_method(draw: st.DrawFn) -> m.Method:
    cls = draw(st.sampled_from(ALL_METHODS))
    return cls(**{name: draw(_KIND_STRATEGY[kind]) for name, kind in cls.FIELDS})


@settings(max_examples=200, deadline=None, database=None)
@given(any_method())
def test_random_methods_agree_with_pamqp(method: m.Method) -> None:
    payload = method.encode()
    assert payload == pamqp_method_payload(method)
    assert m.decode_method(payload) == method
    _, _, pobj = pamqp_unmarshal(frames.method_frame(1, payload))
    _check_same_args(method, pobj)
