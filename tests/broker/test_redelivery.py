"""broker/redelivery.py on its own: the count headers it writes into a content header
(the wire behaviour is tests/integration/test_delivery_limit.py)."""

from __future__ import annotations

from hutch.broker.queue_settings import queue_settings
from hutch.broker.redelivery import annotate, counts_returns
from hutch.protocol.codec import Int64
from hutch.protocol.frames import content_header_payload
from hutch.protocol.properties import decode_properties, encode_properties


def _header(props: dict, size: int = 5) -> bytes:
    return content_header_payload(size, encode_properties(props))


def test_counts_replace_a_publishers_headers_of_the_same_name() -> None:
    header = _header({"content_type": "text/plain",
                      "headers": {"x-delivery-count": "forged", "app": 1}})
    out = annotate(header, 2, 3)
    assert out[:12] == header[:12]  # class, weight, body size unchanged
    props = decode_properties(out[12:])
    assert props["content_type"] == "text/plain"
    assert props["headers"] == {"x-delivery-count": 2, "x-acquired-count": 3, "app": 1}
    assert all(type(props["headers"][k]) is Int64 for k in ("x-delivery-count",
                                                            "x-acquired-count"))


def test_no_delivery_count_until_a_return_failed() -> None:
    props = decode_properties(annotate(_header({}), 0, 1)[12:])
    assert props["headers"] == {"x-acquired-count": 1}


def test_undecodable_properties_pass_unchanged() -> None:
    header = content_header_payload(1, b"\x20\x00\x00\x00\x00\x09")  # headers: a torn table
    assert annotate(header, 1, 1) == header


def test_which_queues_count() -> None:
    assert counts_returns(queue_settings({"x-queue-type": "quorum"}))
    assert counts_returns(queue_settings({"x-queue-type": "quorum", "x-delivery-limit": -1}))
    assert counts_returns(queue_settings({"x-delivery-limit": 3}))
    assert not counts_returns(queue_settings({}))
    assert not counts_returns(queue_settings({"x-delivery-limit": "3"}))  # not an integer
    assert queue_settings({"x-queue-type": "quorum", "x-delivery-limit": "x"}).delivery_limit == 20
