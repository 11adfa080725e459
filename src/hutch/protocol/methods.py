"""AMQP 0-9-1 methods as frozen, slotted dataclasses, generated from one table.

The table below *is* the spec for this module: each row gives the method's
class/method id, its name and its argument list.  Encoders and decoders are
derived from it, so adding a method is one line.  Arguments named
``reserved_*`` are the spec's deprecated "ticket"/"out-of-band" fields: they
are parsed (so offsets stay right) but never looked at.

The generic path handles every method; the hot ones (publish, ack, nack,
reject, deliver) also have hand-written codecs in ``fast.py``.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, ClassVar

from .codec import (
    DecodeError,
    decode_longstr,
    decode_name,
    decode_shortstr,
    decode_table,
    encode_longstr,
    encode_shortstr,
    encode_table,
)

_u16 = struct.Struct(">H")
_u32 = struct.Struct(">I")
_u64 = struct.Struct(">Q")
_ids = struct.Struct(">HH")

# (class_id, method_id, "class.method", [(field, type), ...], has_content)
SPEC: list[tuple[int, int, str, list[tuple[str, str]], bool]] = [
    (10, 10, "connection.start", [("version_major", "octet"), ("version_minor", "octet"),
                                  ("server_properties", "table"), ("mechanisms", "longstr"),
                                  ("locales", "longstr")], False),
    (10, 11, "connection.start_ok", [("client_properties", "table"), ("mechanism", "shortstr"),
                                     ("response", "longstr"), ("locale", "shortstr")], False),
    (10, 20, "connection.secure", [("challenge", "longstr")], False),
    (10, 21, "connection.secure_ok", [("response", "longstr")], False),
    (10, 30, "connection.tune", [("channel_max", "short"), ("frame_max", "long"),
                                 ("heartbeat", "short")], False),
    (10, 31, "connection.tune_ok", [("channel_max", "short"), ("frame_max", "long"),
                                    ("heartbeat", "short")], False),
    (10, 40, "connection.open", [("virtual_host", "shortstr"), ("reserved_1", "shortstr"),
                                 ("reserved_2", "bit")], False),
    (10, 41, "connection.open_ok", [("reserved_1", "shortstr")], False),
    (10, 50, "connection.close", [("reply_code", "short"), ("reply_text", "shortstr"),
                                  ("class_id", "short"), ("method_id", "short")], False),
    (10, 51, "connection.close_ok", [], False),
    (10, 60, "connection.blocked", [("reason", "shortstr")], False),
    (10, 61, "connection.unblocked", [], False),
    (10, 70, "connection.update_secret", [("new_secret", "longstr"), ("reason", "shortstr")], False),
    (10, 71, "connection.update_secret_ok", [], False),
    (20, 10, "channel.open", [("reserved_1", "shortstr")], False),
    (20, 11, "channel.open_ok", [("reserved_1", "longstr")], False),
    (20, 20, "channel.flow", [("active", "bit")], False),
    (20, 21, "channel.flow_ok", [("active", "bit")], False),
    (20, 40, "channel.close", [("reply_code", "short"), ("reply_text", "shortstr"),
                               ("class_id", "short"), ("method_id", "short")], False),
    (20, 41, "channel.close_ok", [], False),
    (40, 10, "exchange.declare", [("reserved_1", "short"), ("exchange", "shortstr"),
                                  ("type", "shortstr"), ("passive", "bit"), ("durable", "bit"),
                                  ("auto_delete", "bit"), ("internal", "bit"), ("nowait", "bit"),
                                  ("arguments", "table")], False),
    (40, 11, "exchange.declare_ok", [], False),
    (40, 20, "exchange.delete", [("reserved_1", "short"), ("exchange", "shortstr"),
                                 ("if_unused", "bit"), ("nowait", "bit")], False),
    (40, 21, "exchange.delete_ok", [], False),
    (40, 30, "exchange.bind", [("reserved_1", "short"), ("destination", "shortstr"),
                               ("source", "shortstr"), ("routing_key", "shortstr"),
                               ("nowait", "bit"), ("arguments", "table")], False),
    (40, 31, "exchange.bind_ok", [], False),
    (40, 40, "exchange.unbind", [("reserved_1", "short"), ("destination", "shortstr"),
                                 ("source", "shortstr"), ("routing_key", "shortstr"),
                                 ("nowait", "bit"), ("arguments", "table")], False),
    (40, 51, "exchange.unbind_ok", [], False),
    (50, 10, "queue.declare", [("reserved_1", "short"), ("queue", "shortstr"), ("passive", "bit"),
                               ("durable", "bit"), ("exclusive", "bit"), ("auto_delete", "bit"),
                               ("nowait", "bit"), ("arguments", "table")], False),
    (50, 11, "queue.declare_ok", [("queue", "shortstr"), ("message_count", "long"),
                                  ("consumer_count", "long")], False),
    (50, 20, "queue.bind", [("reserved_1", "short"), ("queue", "shortstr"), ("exchange", "shortstr"),
                            ("routing_key", "shortstr"), ("nowait", "bit"),
                            ("arguments", "table")], False),
    (50, 21, "queue.bind_ok", [], False),
    (50, 30, "queue.purge", [("reserved_1", "short"), ("queue", "shortstr"), ("nowait", "bit")], False),
    (50, 31, "queue.purge_ok", [("message_count", "long")], False),
    (50, 40, "queue.delete", [("reserved_1", "short"), ("queue", "shortstr"), ("if_unused", "bit"),
                              ("if_empty", "bit"), ("nowait", "bit")], False),
    (50, 41, "queue.delete_ok", [("message_count", "long")], False),
    (50, 50, "queue.unbind", [("reserved_1", "short"), ("queue", "shortstr"),
                              ("exchange", "shortstr"), ("routing_key", "shortstr"),
                              ("arguments", "table")], False),
    (50, 51, "queue.unbind_ok", [], False),
    (60, 10, "basic.qos", [("prefetch_size", "long"), ("prefetch_count", "short"),
                           ("global_", "bit")], False),
    (60, 11, "basic.qos_ok", [], False),
    (60, 20, "basic.consume", [("reserved_1", "short"), ("queue", "shortstr"),
                               ("consumer_tag", "shortstr"), ("no_local", "bit"), ("no_ack", "bit"),
                               ("exclusive", "bit"), ("nowait", "bit"), ("arguments", "table")], False),
    (60, 21, "basic.consume_ok", [("consumer_tag", "shortstr")], False),
    (60, 30, "basic.cancel", [("consumer_tag", "shortstr"), ("nowait", "bit")], False),
    (60, 31, "basic.cancel_ok", [("consumer_tag", "shortstr")], False),
    (60, 40, "basic.publish", [("reserved_1", "short"), ("exchange", "shortstr"),
                               ("routing_key", "shortstr"), ("mandatory", "bit"),
                               ("immediate", "bit")], True),
    (60, 50, "basic.return", [("reply_code", "short"), ("reply_text", "shortstr"),
                              ("exchange", "shortstr"), ("routing_key", "shortstr")], True),
    (60, 60, "basic.deliver", [("consumer_tag", "shortstr"), ("delivery_tag", "longlong"),
                               ("redelivered", "bit"), ("exchange", "shortstr"),
                               ("routing_key", "shortstr")], True),
    (60, 70, "basic.get", [("reserved_1", "short"), ("queue", "shortstr"), ("no_ack", "bit")], False),
    (60, 71, "basic.get_ok", [("delivery_tag", "longlong"), ("redelivered", "bit"),
                              ("exchange", "shortstr"), ("routing_key", "shortstr"),
                              ("message_count", "long")], True),
    (60, 72, "basic.get_empty", [("reserved_1", "shortstr")], False),
    (60, 80, "basic.ack", [("delivery_tag", "longlong"), ("multiple", "bit")], False),
    (60, 90, "basic.reject", [("delivery_tag", "longlong"), ("requeue", "bit")], False),
    (60, 100, "basic.recover_async", [("requeue", "bit")], False),
    (60, 110, "basic.recover", [("requeue", "bit")], False),
    (60, 111, "basic.recover_ok", [], False),
    (60, 120, "basic.nack", [("delivery_tag", "longlong"), ("multiple", "bit"),
                             ("requeue", "bit")], False),
    (85, 10, "confirm.select", [("nowait", "bit")], False),
    (85, 11, "confirm.select_ok", [], False),
    (90, 10, "tx.select", [], False),
    (90, 11, "tx.select_ok", [], False),
    (90, 20, "tx.commit", [], False),
    (90, 21, "tx.commit_ok", [], False),
    (90, 30, "tx.rollback", [], False),
    (90, 31, "tx.rollback_ok", [], False),
]

_PY_TYPES: dict[str, Any] = {
    "octet": int, "short": int, "long": int, "longlong": int, "timestamp": int,
    "shortstr": str, "longstr": bytes, "bit": bool, "table": dict,
}
_DEFAULTS: dict[str, Any] = {
    "octet": 0, "short": 0, "long": 0, "longlong": 0, "timestamp": 0,
    "shortstr": "", "longstr": b"", "bit": False,
}


class Method:
    """Base of every generated method class."""

    __slots__ = ()
    CLASS_ID: ClassVar[int]
    METHOD_ID: ClassVar[int]
    NAME: ClassVar[str]
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]
    HAS_CONTENT: ClassVar[bool]

    def encode(self) -> bytes:
        """The method frame payload: class id, method id, arguments."""
        out = [_ids.pack(self.CLASS_ID, self.METHOD_ID)]
        bits = 0
        nbits = 0
        for name, kind in self.FIELDS:
            value = getattr(self, name)
            if kind == "bit":
                if value:
                    bits |= 1 << nbits
                nbits += 1
                continue
            if nbits:
                out.append(bytes((bits,)))
                bits = nbits = 0
            if kind == "shortstr":
                out.append(encode_shortstr(value))
            elif kind == "longstr":
                out.append(encode_longstr(value))
            elif kind == "short":
                out.append(_u16.pack(value))
            elif kind == "long":
                out.append(_u32.pack(value))
            elif kind in ("longlong", "timestamp"):
                out.append(_u64.pack(value))
            elif kind == "octet":
                out.append(bytes((value,)))
            elif kind == "table":
                out.append(encode_table(value))
        if nbits:
            out.append(bytes((bits,)))
        return b"".join(out)


def _decoder(cls: type[Method]):
    # Every short string in a method must be UTF-8 (RabbitMQ: 501 FRAME_ERROR), except
    # the exchange and routing key that travel with content: RabbitMQ takes any bytes
    # in basic.publish (and hands them back as they came in return/deliver/get-ok).
    lenient = {"exchange", "routing_key"} if cls.HAS_CONTENT else set()
    fields = tuple((name, "shortstr_any" if kind == "shortstr" and name in lenient else kind)
                   for name, kind in cls.FIELDS)

    def decode(buf: bytes | memoryview, off: int) -> Method:
        values: list[Any] = []
        bitbyte = 0
        bitpos = 8
        try:
            for _name, kind in fields:
                if kind == "bit":
                    if bitpos == 8:
                        bitbyte = buf[off]
                        off += 1
                        bitpos = 0
                    values.append(bool(bitbyte & (1 << bitpos)))
                    bitpos += 1
                    continue
                bitpos = 8
                if kind == "shortstr":
                    v, off = decode_name(buf, off)
                elif kind == "shortstr_any":
                    v, off = decode_shortstr(buf, off)
                elif kind == "longstr":
                    v, off = decode_longstr(buf, off)
                elif kind == "short":
                    (v,) = _u16.unpack_from(buf, off)
                    off += 2
                elif kind == "long":
                    (v,) = _u32.unpack_from(buf, off)
                    off += 4
                elif kind in ("longlong", "timestamp"):
                    (v,) = _u64.unpack_from(buf, off)
                    off += 8
                elif kind == "octet":
                    v = buf[off]
                    off += 1
                else:  # table
                    v, off = decode_table(buf, off)
                values.append(v)
        except (struct.error, IndexError) as exc:
            raise DecodeError(f"malformed {cls.NAME}: {exc}") from None
        return cls(*values)

    return decode


def _make(class_id: int, method_id: int, name: str, fields: list[tuple[str, str]],
          has_content: bool) -> type[Method]:
    cls_name = "".join(part.capitalize() for part in name.replace(".", "_").split("_"))
    dc_fields = []
    for fname, kind in fields:
        if kind == "table":
            dc_fields.append((fname, dict, dataclasses.field(default_factory=dict)))
        else:
            dc_fields.append((fname, _PY_TYPES[kind], dataclasses.field(default=_DEFAULTS[kind])))
    cls = dataclasses.make_dataclass(
        cls_name, dc_fields, bases=(Method,), frozen=True, slots=True,
        namespace={
            "CLASS_ID": class_id, "METHOD_ID": method_id, "NAME": name,
            "FIELDS": tuple(fields), "HAS_CONTENT": has_content,
        },
    )
    cls.__module__ = __name__
    return cls


#: (class_id << 16 | method_id) -> decode(buf, offset) -> Method
DECODERS: dict[int, Any] = {}
#: "class.method" -> class
BY_NAME: dict[str, type[Method]] = {}

for _cid, _mid, _name, _fields, _content in SPEC:
    _cls = _make(_cid, _mid, _name, _fields, _content)
    BY_NAME[_name] = _cls
    DECODERS[(_cid << 16) | _mid] = _decoder(_cls)
    globals()[_cls.__name__] = _cls


def method_name(class_id: int, method_id: int) -> str:
    for cid, mid, name, _f, _c in SPEC:
        if cid == class_id and mid == method_id:
            return name
    return f"unknown({class_id}, {method_id})"


def decode_method(payload: bytes | memoryview) -> Method:
    """Decode a method frame payload; raises KeyError for an unknown method."""
    if len(payload) < 4:
        raise DecodeError("method frame shorter than its ids")
    class_id, method_id = _ids.unpack_from(payload, 0)
    return DECODERS[(class_id << 16) | method_id](payload, 4)


# Names for type checkers and readers; the classes are created above.
ConnectionStart: Any = BY_NAME["connection.start"]
ConnectionStartOk: Any = BY_NAME["connection.start_ok"]
ConnectionSecure: Any = BY_NAME["connection.secure"]
ConnectionTune: Any = BY_NAME["connection.tune"]
ConnectionTuneOk: Any = BY_NAME["connection.tune_ok"]
ConnectionOpen: Any = BY_NAME["connection.open"]
ConnectionOpenOk: Any = BY_NAME["connection.open_ok"]
ConnectionClose: Any = BY_NAME["connection.close"]
ConnectionCloseOk: Any = BY_NAME["connection.close_ok"]
ConnectionBlocked: Any = BY_NAME["connection.blocked"]
ConnectionUnblocked: Any = BY_NAME["connection.unblocked"]
ConnectionUpdateSecret: Any = BY_NAME["connection.update_secret"]
ConnectionUpdateSecretOk: Any = BY_NAME["connection.update_secret_ok"]
ChannelOpen: Any = BY_NAME["channel.open"]
ChannelOpenOk: Any = BY_NAME["channel.open_ok"]
ChannelFlow: Any = BY_NAME["channel.flow"]
ChannelFlowOk: Any = BY_NAME["channel.flow_ok"]
ChannelClose: Any = BY_NAME["channel.close"]
ChannelCloseOk: Any = BY_NAME["channel.close_ok"]
ExchangeDeclare: Any = BY_NAME["exchange.declare"]
ExchangeDeclareOk: Any = BY_NAME["exchange.declare_ok"]
ExchangeDelete: Any = BY_NAME["exchange.delete"]
ExchangeDeleteOk: Any = BY_NAME["exchange.delete_ok"]
ExchangeBind: Any = BY_NAME["exchange.bind"]
ExchangeBindOk: Any = BY_NAME["exchange.bind_ok"]
ExchangeUnbind: Any = BY_NAME["exchange.unbind"]
ExchangeUnbindOk: Any = BY_NAME["exchange.unbind_ok"]
QueueDeclare: Any = BY_NAME["queue.declare"]
QueueDeclareOk: Any = BY_NAME["queue.declare_ok"]
QueueBind: Any = BY_NAME["queue.bind"]
QueueBindOk: Any = BY_NAME["queue.bind_ok"]
QueuePurge: Any = BY_NAME["queue.purge"]
QueuePurgeOk: Any = BY_NAME["queue.purge_ok"]
QueueDelete: Any = BY_NAME["queue.delete"]
QueueDeleteOk: Any = BY_NAME["queue.delete_ok"]
QueueUnbind: Any = BY_NAME["queue.unbind"]
QueueUnbindOk: Any = BY_NAME["queue.unbind_ok"]
BasicQos: Any = BY_NAME["basic.qos"]
BasicQosOk: Any = BY_NAME["basic.qos_ok"]
BasicConsume: Any = BY_NAME["basic.consume"]
BasicConsumeOk: Any = BY_NAME["basic.consume_ok"]
BasicCancel: Any = BY_NAME["basic.cancel"]
BasicCancelOk: Any = BY_NAME["basic.cancel_ok"]
BasicPublish: Any = BY_NAME["basic.publish"]
BasicReturn: Any = BY_NAME["basic.return"]
BasicDeliver: Any = BY_NAME["basic.deliver"]
BasicGet: Any = BY_NAME["basic.get"]
BasicGetOk: Any = BY_NAME["basic.get_ok"]
BasicGetEmpty: Any = BY_NAME["basic.get_empty"]
BasicAck: Any = BY_NAME["basic.ack"]
BasicReject: Any = BY_NAME["basic.reject"]
BasicRecoverAsync: Any = BY_NAME["basic.recover_async"]
BasicRecover: Any = BY_NAME["basic.recover"]
BasicRecoverOk: Any = BY_NAME["basic.recover_ok"]
BasicNack: Any = BY_NAME["basic.nack"]
ConfirmSelect: Any = BY_NAME["confirm.select"]
ConfirmSelectOk: Any = BY_NAME["confirm.select_ok"]
TxSelect: Any = BY_NAME["tx.select"]
TxSelectOk: Any = BY_NAME["tx.select_ok"]
TxCommit: Any = BY_NAME["tx.commit"]
TxCommitOk: Any = BY_NAME["tx.commit_ok"]
TxRollback: Any = BY_NAME["tx.rollback"]
TxRollbackOk: Any = BY_NAME["tx.rollback_ok"]

__all__ = ["BY_NAME", "DECODERS", "SPEC", "Method", "decode_method", "method_name"]
