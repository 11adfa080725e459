"""Helpers shared by the protocol tests: pamqp as the reference encoder/decoder.

pamqp validates some arguments (ticket must be 0, capabilities empty, queue
names ASCII, ...).  The tests deliberately use non-default, non-ASCII values,
so :func:`pamqp_method` builds the pamqp object without running ``validate``;
the wire encoding pamqp produces is unaffected by that check.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from contextlib import contextmanager
from typing import Any
from unittest import mock

from hypothesis import strategies as st
from pamqp import base, commands
from pamqp import frame as pframe

from hutch.protocol import methods as m

#: pamqp method class by (class_id << 16 | method_id)
PAMQP_BY_INDEX: dict[int, type[base.Frame]] = dict(commands.INDEX_MAPPING)

#: hutch property name -> pamqp Basic.Properties attribute name
PROP_TO_PAMQP = {
    "content_type": "content_type",
    "content_encoding": "content_encoding",
    "headers": "headers",
    "delivery_mode": "delivery_mode",
    "priority": "priority",
    "correlation_id": "correlation_id",
    "reply_to": "reply_to",
    "expiration": "expiration",
    "message_id": "message_id",
    "timestamp": "timestamp",
    "type": "message_type",
    "user_id": "user_id",
    "app_id": "app_id",
    "cluster_id": "cluster_id",
}


def pamqp_class(cls: type[m.Method]) -> type[base.Frame]:
    return PAMQP_BY_INDEX[(cls.CLASS_ID << 16) | cls.METHOD_ID]


def field_map(cls: type[m.Method]) -> list[tuple[str, str, str]]:
    """[(hutch field, pamqp attribute, amqp type)] in wire order.

    The spec order is the same in both libraries; only the names differ for
    deprecated fields (``reserved_1`` vs ``ticket``, ``capabilities``, ...).
    """
    pcls = pamqp_class(cls)
    assert len(pcls.__slots__) == len(cls.FIELDS), cls.NAME
    out = []
    for (name, kind), pname in zip(cls.FIELDS, pcls.__slots__, strict=True):
        assert pcls.amqp_type(pname) == kind, (cls.NAME, name, pname)
        out.append((name, pname, kind))
    return out


def to_pamqp(kind: str, value: Any) -> Any:
    """A hutch field value as pamqp wants it (pamqp long strings are str)."""
    if kind == "longstr":
        return value.decode("utf-8")
    return value


def from_pamqp(kind: str, value: Any) -> Any:
    if kind == "longstr" and isinstance(value, str):
        return value.encode("utf-8")
    return value


@contextmanager
def _no_validation(pcls: type):
    with mock.patch.object(pcls, "validate", lambda self: None):
        yield


def pamqp_method(method: m.Method) -> base.Frame:
    """The pamqp object carrying the same arguments as a hutch method."""
    cls = type(method)
    pcls = pamqp_class(cls)
    with _no_validation(pcls):
        obj = pcls()
        for name, pname, kind in field_map(cls):
            setattr(obj, pname, to_pamqp(kind, getattr(method, name)))
    return obj


def pamqp_method_frame(method: m.Method, channel: int) -> bytes:
    """pamqp.frame.marshal of the equivalent method (a complete frame)."""
    obj = pamqp_method(method)
    with _no_validation(type(obj)):
        return pframe.marshal(obj, channel)


def pamqp_method_payload(method: m.Method) -> bytes:
    """Method frame payload as pamqp.frame.marshal builds it: >I index + args."""
    data = pamqp_method_frame(method, 0)
    ftype, channel, size = struct.unpack_from(">BHI", data, 0)
    assert (ftype, channel, size + 8, data[-1:]) == (1, 0, len(data), b"\xce")
    return data[7:-1]


def pamqp_unmarshal(frame_bytes: bytes) -> tuple[int, int, Any]:
    return pframe.unmarshal(frame_bytes)


# ---------------------------------------------------------------------------
# Field-table values both libraries encode identically.
#
# pamqp picks the narrowest integer tag (b/s/u/I/i/l), hutch always writes I or
# l; pamqp writes floats as 'f', hutch as 'd'; pamqp sorts keys.  Values below
# are restricted so that both produce the same bytes.
# ---------------------------------------------------------------------------

SHARED_INT = st.one_of(
    st.integers(-(2**31), -32769),
    st.integers(65536, 2**31 - 1),
    st.integers(-(2**63), -(2**31) - 1),
    st.integers(2**32, 2**63 - 1),
)
SHARED_TEXT = st.text(max_size=30)
SHARED_KEY = st.text(max_size=12)
SHARED_DECIMAL = st.builds(
    lambda mant, scale: decimal.Decimal(mant).scaleb(-scale),
    st.integers(0, 2**31 - 1),
    st.integers(0, 12),
)
SHARED_TIMESTAMP = st.integers(0, 0xFFFFFFFF).map(
    lambda s: datetime.datetime.fromtimestamp(s, tz=datetime.UTC)
)
SHARED_SCALAR = st.one_of(
    st.booleans(),
    SHARED_INT,
    SHARED_TEXT,
    st.none(),
    st.binary(max_size=20).map(bytearray),
    SHARED_DECIMAL,
    SHARED_TIMESTAMP,
)


def _sorted_dict(d: dict) -> dict:
    return dict(sorted(d.items()))


SHARED_VALUE = st.recursive(
    SHARED_SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(SHARED_KEY, children, max_size=4).map(_sorted_dict),
    ),
    max_leaves=12,
)
SHARED_TABLE = st.dictionaries(SHARED_KEY, SHARED_VALUE, max_size=5).map(_sorted_dict)

#: A fixed table that exercises every shared type and nesting; keys sorted.
SAMPLE_TABLE: dict[str, Any] = {
    "a-str": "héllo wörld ☃ 𝄞",
    "b-bool-t": True,
    "c-bool-f": False,
    "d-int32": 100_000,
    "e-neg-int32": -1_000_000,
    "f-int64": 2**40 + 7,
    "g-neg-int64": -(2**50),
    "h-void": None,
    "i-bytes": bytearray(b"\x00\xff\xce binary"),
    "j-decimal": decimal.Decimal("3.14159"),
    "k-timestamp": datetime.datetime(2021, 6, 1, 12, 30, 45, tzinfo=datetime.UTC),
    "l-array": [123_456, "x", [False, None], {"k": "v"}],
    "m-nested": {"deeper": {"deepest": ["ünï", 2**33]}, "empty": {}},
    "n-empty-array": [],
    "ключ-日本": "значение",
}
