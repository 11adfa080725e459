"""Primitive types and field tables (hutch.protocol.codec), checked against pamqp."""

from __future__ import annotations

import datetime
import decimal
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import decode as pdecode
from pamqp import encode as pencode

from hutch.protocol.codec import (
    DecodeError,
    Float32,
    Int8,
    Int16,
    Int64,
    LongStr,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
    Utf8Error,
    decode_longstr,
    decode_name,
    decode_shortstr,
    decode_table,
    encode_longstr,
    encode_shortstr,
    encode_table,
    field_type_name,
)

from ._pamqp import SAMPLE_TABLE, SHARED_KEY, SHARED_TABLE

UTC = datetime.UTC


def table_bytes(body: bytes) -> bytes:
    """A field table with the given body (its length prefix computed)."""
    return struct.pack(">I", len(body)) + body


def entry(key: str, tag: bytes, value: bytes) -> bytes:
    raw = key.encode()
    return bytes((len(raw),)) + raw + tag + value


# -- strings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "a", "ünïcödé ☃ 𝄞", "x" * 255, "é" * 127])
def test_shortstr_roundtrip(value: str) -> None:
    raw = encode_shortstr(value)
    assert raw == pencode.short_string(value)
    prefix = b"\x99\x98"
    assert decode_shortstr(prefix + raw + b"tail", 2) == (value, 2 + len(raw))
    assert decode_shortstr(memoryview(raw), 0) == (value, len(raw))


def test_shortstr_bytes_and_limits() -> None:
    assert encode_shortstr(b"\xff\x00") == b"\x02\xff\x00"
    with pytest.raises(ValueError):
        encode_shortstr("x" * 256)
    with pytest.raises(ValueError):
        encode_shortstr("é" * 128)  # 256 bytes
    # not UTF-8 (data, not a name): kept as escaped bytes that encode back unchanged
    assert decode_shortstr(b"\x02\xff\xe9", 0) == ("\udcff\udce9", 3)
    assert encode_shortstr("\udcff\udce9") == b"\x02\xff\xe9"
    # a name must be UTF-8, as RabbitMQ requires (501 FRAME_ERROR)
    assert decode_name(b"\x02ab", 0) == ("ab", 3)
    with pytest.raises(Utf8Error, match="Malformed UTF-8 in shortstr"):
        decode_name(b"\x02\xff\xe9", 0)


@pytest.mark.parametrize("data", [b"\x05abc", b"\x01", b"\xff" + b"a" * 254])
def test_shortstr_overrun(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_shortstr(data, 0)


@pytest.mark.parametrize("value", ["", "plain", "ünïcödé ☃ 𝄞" * 50, "\x00\xce"])
def test_longstr_roundtrip(value: str) -> None:
    raw = encode_longstr(value)
    assert raw == pencode.long_string(value)
    assert decode_longstr(b"??" + raw, 2) == (value.encode(), 2 + len(raw))
    assert encode_longstr(value.encode()) == raw


def test_longstr_overrun() -> None:
    with pytest.raises(DecodeError):
        decode_longstr(b"\x00\x00\x00\x05abcd", 0)
    with pytest.raises(DecodeError):
        decode_longstr(b"\xff\xff\xff\xff", 0)


# -- encoding: exact type tags ---------------------------------------------------------------

_NOW = datetime.datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (True, b"t\x01"),
        (False, b"t\x00"),
        (0, b"I\x00\x00\x00\x00"),
        (-1, b"I\xff\xff\xff\xff"),
        (2**31 - 1, b"I\x7f\xff\xff\xff"),
        (-(2**31), b"I\x80\x00\x00\x00"),
        (2**31, b"l" + struct.pack(">q", 2**31)),
        (-(2**31) - 1, b"l" + struct.pack(">q", -(2**31) - 1)),
        (2**63 - 1, b"l" + struct.pack(">q", 2**63 - 1)),
        ("ü", b"S\x00\x00\x00\x02\xc3\xbc"),
        (LongStr(b"\xff\xfe"), b"S\x00\x00\x00\x02\xff\xfe"),
        (b"\x00\x01", b"x\x00\x00\x00\x02\x00\x01"),
        (bytearray(b"\x02"), b"x\x00\x00\x00\x01\x02"),
        (1.5, b"d" + struct.pack(">d", 1.5)),
        (None, b"V"),
        ([], b"A\x00\x00\x00\x00"),
        ((1, "a"), b"A\x00\x00\x00\x0bI\x00\x00\x00\x01S\x00\x00\x00\x01a"),
        ({}, b"F\x00\x00\x00\x00"),
        ({"k": None}, b"F\x00\x00\x00\x03\x01kV"),
        (_NOW, b"T" + struct.pack(">Q", int(_NOW.timestamp()))),
        (decimal.Decimal("-12.345"), b"D\x03" + struct.pack(">i", -12345)),
        (decimal.Decimal("7"), b"D\x00" + struct.pack(">i", 7)),
        (decimal.Decimal("1E+2"), b"D\x00" + struct.pack(">i", 100)),
    ],
    ids=repr,
)
def test_encode_value_tags(value: Any, encoded: bytes) -> None:
    body = entry("k", b"", b"") + encoded
    assert encode_table({"k": value}) == table_bytes(body)


def test_encode_empty_table() -> None:
    assert encode_table({}) == b"\x00\x00\x00\x00"
    assert encode_table(None) == b"\x00\x00\x00\x00"
    assert decode_table(b"\x00\x00\x00\x00", 0) == ({}, 4)


def test_encode_unsupported_type() -> None:
    with pytest.raises(TypeError):
        encode_table({"k": object()})
    with pytest.raises(TypeError):
        encode_table({"k": {1, 2}})


# -- decoding: every tag RabbitMQ speaks -----------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "raw", "expected"),
    [
        (b"t", b"\x00", False),
        (b"t", b"\x01", True),
        (b"t", b"\x07", True),
        (b"b", b"\xff", Int8(-1)),
        (b"b", b"\x7f", Int8(127)),
        (b"B", b"\xff", UInt8(255)),
        (b"s", b"\x80\x00", Int16(-32768)),
        (b"u", b"\xff\xff", UInt16(65535)),
        (b"I", b"\xff\xff\xff\xfe", -2),
        (b"i", b"\xff\xff\xff\xfe", UInt32(2**32 - 2)),
        (b"l", b"\x80" + b"\x00" * 7, Int64(-(2**63))),
        # RabbitMQ reads 'L' as signed too (rabbit_binary_parser).
        (b"L", b"\xff" * 8, Int64(-1)),
        (b"L", b"\x00" * 7 + b"\x05", Int64(5)),
        (b"f", struct.pack(">f", 0.25), Float32(0.25)),
        (b"d", struct.pack(">d", -1e300), -1e300),
        (b"D", b"\x02" + struct.pack(">i", 31415), decimal.Decimal("314.15")),
        # RabbitMQ reads a decimal's value as unsigned.
        (b"D", b"\x00" + struct.pack(">i", -5), decimal.Decimal(2**32 - 5)),
        (b"S", b"\x00\x00\x00\x03abc", "abc"),
        (b"S", b"\x00\x00\x00\x02\xff\x00", LongStr(b"\xff\x00")),
        (b"x", b"\x00\x00\x00\x02\xff\x00", b"\xff\x00"),
        (b"A", b"\x00\x00\x00\x00", []),
        (b"A", b"\x00\x00\x00\x07b\x01Vt\x01B\x02", [1, None, True, 2]),
        (b"T", struct.pack(">Q", 1_700_000_000), datetime.datetime.fromtimestamp(1_700_000_000, UTC)),
        (b"F", b"\x00\x00\x00\x03\x01aV", {"a": None}),
        (b"V", b"", None),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_decode_value_tags(tag: bytes, raw: bytes, expected: Any) -> None:
    buf = b"junk" + table_bytes(entry("key", tag, raw)) + b"after"
    table, off = decode_table(buf, 4)
    assert off == len(buf) - len(b"after")
    assert list(table) == ["key"]
    value = table["key"]
    assert value == expected
    assert type(value) is type(expected)


def test_decode_preserves_key_order_and_duplicates_last_wins() -> None:
    body = entry("b", b"I", b"\x00\x00\x00\x01") + entry("a", b"V", b"") + entry("b", b"t", b"\x01")
    table, _ = decode_table(table_bytes(body), 0)
    assert table == {"b": True, "a": None}


def test_decode_non_utf8_key_round_trips() -> None:
    body = b"\x01\xe9V"
    assert decode_table(table_bytes(body), 0)[0] == {"\udce9": None}
    assert encode_table({"\udce9": None}) == table_bytes(body)


def test_deep_tables_decode_and_encode_without_recursion() -> None:
    # Headers (max_depth=None) have no depth limit: 20,000 levels, both kinds.
    deep: dict = {}
    inner = deep
    for i in range(20_000):
        child: dict = {}
        inner["a"] = [child] if i % 2 else child
        inner = child
    raw = encode_table(deep)
    back, end = decode_table(raw, 0, max_depth=None)
    assert end == len(raw) and encode_table(back) == raw
    # Method arguments keep the limit.
    with pytest.raises(DecodeError, match="nested too deeply"):
        decode_table(raw, 0)


def test_decode_table_from_memoryview() -> None:
    raw = encode_table(SAMPLE_TABLE)
    assert decode_table(memoryview(raw), 0) == (SAMPLE_TABLE, len(raw))


# -- round trips ------------------------------------------------------------------------------

_HUTCH_SCALAR = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.binary(min_size=1, max_size=30)
    .filter(lambda b: not _is_utf8(b))
    .map(LongStr),
    st.floats(allow_nan=False),
    st.none(),
    st.integers(0, 253402300799).map(lambda s: datetime.datetime.fromtimestamp(s, UTC)),
    # A decimal's value is unsigned, as RabbitMQ reads it.
    st.builds(lambda mant, scale: decimal.Decimal(mant).scaleb(-scale),
              st.integers(0, 2**32 - 1), st.integers(0, 255)),
    # Values of the other types come back with their own tag.
    st.integers(-(2**7), 2**7 - 1).map(Int8),
    st.integers(0, 2**8 - 1).map(UInt8),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(0, 2**16 - 1).map(UInt16),
    st.integers(0, 2**32 - 1).map(UInt32),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(width=32, allow_nan=False).map(Float32),
)


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_HUTCH_VALUE = st.recursive(
    _HUTCH_SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(SHARED_KEY, children, max_size=4),
    ),
    max_leaves=15,
)
_HUTCH_TABLE = st.dictionaries(SHARED_KEY, _HUTCH_VALUE, max_size=6)


def _same(a: Any, b: Any) -> bool:
    """Equality that also checks the decoded Python type (bool vs int, LongStr vs bytes...)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, (bytearray, memoryview)):
        return type(b) is bytes and bytes(a) == b
    if isinstance(a, float) and math.isinf(a):
        return type(a) is type(b) and a == b
    if type(a) is int and not -(2**31) <= a < 2**31:
        return type(b) is Int64 and a == b  # a plain int beyond 32 bits goes as 'l'
    return type(a) is type(b) and a == b


@settings(max_examples=120, deadline=None, database=None)
@given(_HUTCH_TABLE, st.binary(max_size=5), st.binary(max_size=5))
def test_table_roundtrip(table: dict[str, Any], before: bytes, after: bytes) -> None:
    raw = encode_table(table)
    decoded, off = decode_table(before + raw + after, len(before))
    assert off == len(before) + len(raw)
    assert _same(table, decoded), (table, decoded)
    assert encode_table(decoded) == raw


def test_sample_table_roundtrip() -> None:
    raw = encode_table(SAMPLE_TABLE)
    assert decode_table(raw, 0) == (SAMPLE_TABLE, len(raw))


# -- against pamqp ------------------------------------------------------------------------------


def test_sample_table_matches_pamqp() -> None:
    raw = encode_table(SAMPLE_TABLE)
    assert raw == pencode.field_table(SAMPLE_TABLE)
    assert pdecode.field_table(raw) == (len(raw), SAMPLE_TABLE)


@settings(max_examples=120, deadline=None, database=None)
@given(SHARED_TABLE)
def test_table_matches_pamqp_encoding(table: dict[str, Any]) -> None:
    raw = encode_table(table)
    assert raw == pencode.field_table(table)
    assert pdecode.field_table(raw) == (len(raw), table)
    assert decode_table(raw, 0) == (table, len(raw))


_PAMQP_SCALAR = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),  # pamqp picks b/s/u/I/i/l by range
    st.text(max_size=20),
    st.none(),
    st.floats(width=32, allow_nan=False),  # pamqp writes floats as 'f'
    st.binary(max_size=10).map(bytearray),
    # pamqp writes a decimal's value signed, RabbitMQ (and Hutch) read it unsigned: they
    # agree on values below 2**31.
    st.builds(lambda mant, scale: decimal.Decimal(mant).scaleb(-scale),
              st.integers(0, 2**31 - 1), st.integers(0, 20)),
    st.integers(0, 0xFFFFFFFF).map(lambda s: datetime.datetime.fromtimestamp(s, UTC)),
)
_PAMQP_TABLE = st.dictionaries(
    SHARED_KEY,
    st.recursive(
        _PAMQP_SCALAR,
        lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(SHARED_KEY, c, max_size=4)),
        max_leaves=12,
    ),
    max_size=6,
)


@settings(max_examples=120, deadline=None, database=None)
@given(_PAMQP_TABLE)
def test_decodes_pamqp_encoded_tables(table: dict[str, Any]) -> None:
    raw = pencode.field_table(table)
    decoded, off = decode_table(raw, 0)
    assert off == len(raw)
    assert decoded == table


@settings(max_examples=120, deadline=None, database=None)
@given(_HUTCH_TABLE)
def test_pamqp_decodes_hutch_tables(table: dict[str, Any]) -> None:
    raw = encode_table(table)
    consumed, decoded = pdecode.field_table(raw)
    assert consumed == len(raw)
    assert _pamqp_view(table) == decoded


def _pamqp_view(value: Any) -> Any:
    """What pamqp decodes a hutch-encoded value to."""
    if isinstance(value, dict):
        return {k: _pamqp_view(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_pamqp_view(v) for v in value]
    if isinstance(value, LongStr):
        return bytes(value)
    if isinstance(value, datetime.datetime):
        ts = int(value.timestamp())
        # pamqp reads anything past 2106 as milliseconds
        return datetime.datetime.fromtimestamp(ts / 1000.0 if ts > 0xFFFFFFFF else ts, UTC)
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        mant = int(value.scaleb(scale))
        if mant >= 2**31:  # pamqp reads the value signed
            return decimal.Decimal(mant - 2**32).scaleb(-scale)
    return value


# -- malformed tables ---------------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "short-length": b"\x00\x00\x00",
    "length-overruns": b"\x00\x00\x00\x05\x01aV",
    "key-overruns-table": table_bytes(b"\x09ab"),
    "no-type-tag": table_bytes(b"\x01a"),
    "unknown-tag": table_bytes(b"\x01aZ"),
    # The spec's 'U' (int16): RabbitMQ's decoder does not take it ('L' it does).
    "unknown-tag-U": table_bytes(b"\x01aU" + b"\x00" * 2),
    "nul-tag": table_bytes(b"\x01a\x00"),
    "truncated-bool": table_bytes(b"\x01at"),
    "truncated-int8": table_bytes(b"\x01ab"),
    "truncated-uint8": table_bytes(b"\x01aB"),
    "truncated-int16": table_bytes(b"\x01as\x00"),
    "truncated-uint16": table_bytes(b"\x01au\x00"),
    "truncated-int32": table_bytes(b"\x01aI\x00\x00\x00"),
    "truncated-uint32": table_bytes(b"\x01ai\x00\x00"),
    "truncated-int64": table_bytes(b"\x01al" + b"\x00" * 7),
    "truncated-float": table_bytes(b"\x01af\x00"),
    "truncated-double": table_bytes(b"\x01ad" + b"\x00" * 7),
    "truncated-decimal": table_bytes(b"\x01aD\x02\x00\x00"),
    "truncated-timestamp": table_bytes(b"\x01aT" + b"\x00" * 7),
    "truncated-longstr-len": table_bytes(b"\x01aS\x00\x00"),
    "longstr-overruns": table_bytes(b"\x01aS\x00\x00\x00\x09abc"),
    "bytes-overruns": table_bytes(b"\x01ax\x00\x00\x01\x00abc"),
    "array-overruns": table_bytes(b"\x01aA\x00\x00\x00\x09V"),
    "array-bad-item": table_bytes(b"\x01aA\x00\x00\x00\x01?"),
    "nested-overruns": table_bytes(b"\x01aF\x00\x00\x00\x09\x01bV"),
    "nested-bad-item": table_bytes(b"\x01aF\x00\x00\x00\x03\x01b?"),
    # declared length ends inside a value: the value reads past the table's end
    "value-straddles-end": b"\x00\x00\x00\x04\x01aI\x00" + b"\x00\x00\x00\x00\x00",
    "key-straddles-end": b"\x00\x00\x00\x02\x01aV" + b"\x00",
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_table_raises_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_table(data, 0)


def test_decode_error_is_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


@settings(max_examples=80, deadline=None, database=None)
@given(_HUTCH_TABLE.filter(bool))
def test_every_truncation_raises_decode_error(table: dict[str, Any]) -> None:
    raw = encode_table(table)
    for cut in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_table(raw[:cut], 0)


@settings(max_examples=80, deadline=None, database=None)
@given(_HUTCH_TABLE.filter(bool), st.data())
def test_shortened_declared_length_raises_decode_error(table: dict[str, Any], data: st.DataObject) -> None:
    raw = encode_table(table)
    (n,) = struct.unpack_from(">I", raw, 0)
    shorter = data.draw(st.integers(1, n))
    # the table still has all its bytes, but claims fewer: the last entry straddles the end
    bad = struct.pack(">I", n - shorter) + raw[4:]
    try:
        decoded, off = decode_table(bad, 0)
    except DecodeError:
        return
    # it may only succeed if the shorter length happens to end on an entry boundary
    assert off == 4 + n - shorter
    assert list(decoded) == list(table)[: len(decoded)]


@pytest.mark.parametrize("ts", [253402300800, 2**40, 2**63, 2**64 - 1])
def test_timestamp_past_datetime_round_trips(ts: int) -> None:
    # Valid AMQP (RabbitMQ keeps it as a number): kept as a Timestamp, encoded back as 'T'.
    data = table_bytes(b"\x01aT" + struct.pack(">Q", ts))
    table, _ = decode_table(data, 0)
    assert table == {"a": ts} and isinstance(table["a"], Timestamp)
    assert encode_table(table) == data


def test_array_item_overrunning_array_length_raises_decode_error() -> None:
    # array claims 1 byte but its one item is 5 bytes; the table's length covers it all
    data = table_bytes(b"\x01aA\x00\x00\x00\x01I\x00\x00\x00\x01")
    with pytest.raises(DecodeError):
        decode_table(data, 0)


def _nested_tables(depth: int) -> bytes:
    inner = b"\x00\x00\x00\x00"
    for _ in range(depth):
        inner = table_bytes(b"\x00F" + inner)
    return inner


def _nested_arrays(depth: int) -> bytes:
    inner = b"A\x00\x00\x00\x00"
    for _ in range(depth):
        inner = b"A" + struct.pack(">I", len(inner)) + inner
    return table_bytes(b"\x01a" + inner)


def test_moderately_nested_tables_decode() -> None:
    value: dict[str, Any] = {}
    for _ in range(50):
        value = {"": value}
    assert decode_table(_nested_tables(50), 0)[0] == value


@pytest.mark.parametrize("build", [_nested_tables, _nested_arrays], ids=["tables", "arrays"])
def test_deeply_nested_table_raises_only_decode_error(build: Any) -> None:
    data = build(3000)
    assert len(data) < 131072 - 8  # fits in one frame at the default frame_max
    try:
        decode_table(data, 0)
    except DecodeError:
        pass
    except RecursionError:
        pytest.fail("RecursionError escaped decode_table", pytrace=False)  # short report, no 3000 frames


# -- field_type_name ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (True, "bool"),
        (1, "signedint"),
        (2**31, "long"),
        ("s", "longstr"),
        (LongStr(b"\xff"), "longstr"),
        (1.0, "double"),
        ({}, "table"),
        ([], "array"),
        (None, "void"),
        (b"x", "binary"),
        (Int8(1), "byte"),
        (UInt8(1), "unsignedbyte"),
        (Int16(1), "short"),
        (UInt16(1), "unsignedshort"),
        (UInt32(1), "unsignedint"),
        (Int64(1), "long"),
        (Float32(1.0), "float"),
        (decimal.Decimal(1), "decimal"),
        (Timestamp(2**40), "timestamp"),
    ],
)
def test_field_type_name(value: Any, name: str) -> None:
    assert field_type_name(value) == name
