"""AMQP 0-9-1 methods, one declaration each: this module *is* the spec's method table.

Each class names its class/method ids and its arguments in wire order; the
annotation gives the AMQP domain (see ``method_codec.py``, which derives the
encoder and decoder from it), so adding a method is one declaration.
"""

from __future__ import annotations

import struct
from dataclasses import field

from .codec import DecodeError
from .method_codec import (
    Bit,
    Long,
    LongLong,
    LongStr,
    Method,
    Octet,
    Short,
    ShortStr,
    Table,
    amqp_method,
)

__all__ = ["BY_NAME", "DECODERS", "SPEC", "Method", "decode_method", "method_name"]

_IDS = struct.Struct(">HH")


@amqp_method(10, 10, "connection.start")
class ConnectionStart(Method):
    version_major: Octet = 0
    version_minor: Octet = 0
    server_properties: Table = field(default_factory=dict)
    mechanisms: LongStr = b""
    locales: LongStr = b""


@amqp_method(10, 11, "connection.start_ok")
class ConnectionStartOk(Method):
    client_properties: Table = field(default_factory=dict)
    mechanism: ShortStr = ""
    response: LongStr = b""
    locale: ShortStr = ""


@amqp_method(10, 20, "connection.secure")
class ConnectionSecure(Method):
    challenge: LongStr = b""


@amqp_method(10, 21, "connection.secure_ok")
class ConnectionSecureOk(Method):
    response: LongStr = b""


@amqp_method(10, 30, "connection.tune")
class ConnectionTune(Method):
    channel_max: Short = 0
    frame_max: Long = 0
    heartbeat: Short = 0


@amqp_method(10, 31, "connection.tune_ok")
class ConnectionTuneOk(Method):
    channel_max: Short = 0
    frame_max: Long = 0
    heartbeat: Short = 0


@amqp_method(10, 40, "connection.open")
class ConnectionOpen(Method):
    virtual_host: ShortStr = ""
    reserved_1: ShortStr = ""
    reserved_2: Bit = False


@amqp_method(10, 41, "connection.open_ok")
class ConnectionOpenOk(Method):
    reserved_1: ShortStr = ""


@amqp_method(10, 50, "connection.close")
class ConnectionClose(Method):
    reply_code: Short = 0
    reply_text: ShortStr = ""
    class_id: Short = 0
    method_id: Short = 0


@amqp_method(10, 51, "connection.close_ok")
class ConnectionCloseOk(Method):
    pass


@amqp_method(10, 60, "connection.blocked")
class ConnectionBlocked(Method):
    reason: ShortStr = ""


@amqp_method(10, 61, "connection.unblocked")
class ConnectionUnblocked(Method):
    pass


@amqp_method(10, 70, "connection.update_secret")
class ConnectionUpdateSecret(Method):
    new_secret: LongStr = b""
    reason: ShortStr = ""


@amqp_method(10, 71, "connection.update_secret_ok")
class ConnectionUpdateSecretOk(Method):
    pass


@amqp_method(20, 10, "channel.open")
class ChannelOpen(Method):
    reserved_1: ShortStr = ""


@amqp_method(20, 11, "channel.open_ok")
class ChannelOpenOk(Method):
    reserved_1: LongStr = b""


@amqp_method(20, 20, "channel.flow")
class ChannelFlow(Method):
    active: Bit = False


@amqp_method(20, 21, "channel.flow_ok")
class ChannelFlowOk(Method):
    active: Bit = False


@amqp_method(20, 40, "channel.close")
class ChannelClose(Method):
    reply_code: Short = 0
    reply_text: ShortStr = ""
    class_id: Short = 0
    method_id: Short = 0


@amqp_method(20, 41, "channel.close_ok")
class ChannelCloseOk(Method):
    pass


@amqp_method(40, 10, "exchange.declare")
class ExchangeDeclare(Method):
    reserved_1: Short = 0
    exchange: ShortStr = ""
    type: ShortStr = ""
    passive: Bit = False
    durable: Bit = False
    auto_delete: Bit = False
    internal: Bit = False
    nowait: Bit = False
    arguments: Table = field(default_factory=dict)


@amqp_method(40, 11, "exchange.declare_ok")
class ExchangeDeclareOk(Method):
    pass


@amqp_method(40, 20, "exchange.delete")
class ExchangeDelete(Method):
    reserved_1: Short = 0
    exchange: ShortStr = ""
    if_unused: Bit = False
    nowait: Bit = False


@amqp_method(40, 21, "exchange.delete_ok")
class ExchangeDeleteOk(Method):
    pass


@amqp_method(40, 30, "exchange.bind")
class ExchangeBind(Method):
    reserved_1: Short = 0
    destination: ShortStr = ""
    source: ShortStr = ""
    routing_key: ShortStr = ""
    nowait: Bit = False
    arguments: Table = field(default_factory=dict)


@amqp_method(40, 31, "exchange.bind_ok")
class ExchangeBindOk(Method):
    pass


@amqp_method(40, 40, "exchange.unbind")
class ExchangeUnbind(Method):
    reserved_1: Short = 0
    destination: ShortStr = ""
    source: ShortStr = ""
    routing_key: ShortStr = ""
    nowait: Bit = False
    arguments: Table = field(default_factory=dict)


@amqp_method(40, 51, "exchange.unbind_ok")
class ExchangeUnbindOk(Method):
    pass


@amqp_method(50, 10, "queue.declare")
class QueueDeclare(Method):
    reserved_1: Short = 0
    queue: ShortStr = ""
    passive: Bit = False
    durable: Bit = False
    exclusive: Bit = False
    auto_delete: Bit = False
    nowait: Bit = False
    arguments: Table = field(default_factory=dict)


@amqp_method(50, 11, "queue.declare_ok")
class QueueDeclareOk(Method):
    queue: ShortStr = ""
    message_count: Long = 0
    consumer_count: Long = 0


@amqp_method(50, 20, "queue.bind")
class QueueBind(Method):
    reserved_1: Short = 0
    queue: ShortStr = ""
    exchange: ShortStr = ""
    routing_key: ShortStr = ""
    nowait: Bit = False
    arguments: Table = field(default_factory=dict)


@amqp_method(50, 21, "queue.bind_ok")
class QueueBindOk(Method):
    pass


@amqp_method(50, 30, "queue.purge")
class QueuePurge(Method):
    reserved_1: Short = 0
    queue: ShortStr = ""
    nowait: Bit = False


@amqp_method(50, 31, "queue.purge_ok")
class QueuePurgeOk(Method):
    message_count: Long = 0


@amqp_method(50, 40, "queue.delete")
class QueueDelete(Method):
    reserved_1: Short = 0
    queue: ShortStr = ""
    if_unused: Bit = False
    if_empty: Bit = False
    nowait: Bit = False


@amqp_method(50, 41, "queue.delete_ok")
class QueueDeleteOk(Method):
    message_count: Long = 0


@amqp_method(50, 50, "queue.unbind")
class QueueUnbind(Method):
    reserved_1: Short = 0
    queue: ShortStr = ""
    exchange: ShortStr = ""
    routing_key: ShortStr = ""
    arguments: Table = field(default_factory=dict)


@amqp_method(50, 51, "queue.unbind_ok")
class QueueUnbindOk(Method):
    pass


@amqp_method(60, 10, "basic.qos")
class BasicQos(Method):
    prefetch_size: Long = 0
    prefetch_count: Short = 0
    global_: Bit = False


@amqp_method(60, 11, "basic.qos_ok")
class BasicQosOk(Method):
    pass


@amqp_method(60, 20, "basic.consume")
class BasicConsume(Method):
    reserved_1: Short = 0
    queue: ShortStr = ""
    consumer_tag: ShortStr = ""
    no_local: Bit = False
    no_ack: Bit = False
    exclusive: Bit = False
    nowait: Bit = False
    arguments: Table = field(default_factory=dict)


@amqp_method(60, 21, "basic.consume_ok")
class BasicConsumeOk(Method):
    consumer_tag: ShortStr = ""


@amqp_method(60, 30, "basic.cancel")
class BasicCancel(Method):
    consumer_tag: ShortStr = ""
    nowait: Bit = False


@amqp_method(60, 31, "basic.cancel_ok")
class BasicCancelOk(Method):
    consumer_tag: ShortStr = ""


@amqp_method(60, 40, "basic.publish", content=True)
class BasicPublish(Method):
    reserved_1: Short = 0
    exchange: ShortStr = ""
    routing_key: ShortStr = ""
    mandatory: Bit = False
    immediate: Bit = False


@amqp_method(60, 50, "basic.return", content=True)
class BasicReturn(Method):
    reply_code: Short = 0
    reply_text: ShortStr = ""
    exchange: ShortStr = ""
    routing_key: ShortStr = ""


@amqp_method(60, 60, "basic.deliver", content=True)
class BasicDeliver(Method):
    consumer_tag: ShortStr = ""
    delivery_tag: LongLong = 0
    redelivered: Bit = False
    exchange: ShortStr = ""
    routing_key: ShortStr = ""


@amqp_method(60, 70, "basic.get")
class BasicGet(Method):
    reserved_1: Short = 0
    queue: ShortStr = ""
    no_ack: Bit = False


@amqp_method(60, 71, "basic.get_ok", content=True)
class BasicGetOk(Method):
    delivery_tag: LongLong = 0
    redelivered: Bit = False
    exchange: ShortStr = ""
    routing_key: ShortStr = ""
    message_count: Long = 0


@amqp_method(60, 72, "basic.get_empty")
class BasicGetEmpty(Method):
    reserved_1: ShortStr = ""


@amqp_method(60, 80, "basic.ack")
class BasicAck(Method):
    delivery_tag: LongLong = 0
    multiple: Bit = False


@amqp_method(60, 90, "basic.reject")
class BasicReject(Method):
    delivery_tag: LongLong = 0
    requeue: Bit = False


@amqp_method(60, 100, "basic.recover_async")
class BasicRecoverAsync(Method):
    requeue: Bit = False


@amqp_method(60, 110, "basic.recover")
class BasicRecover(Method):
    requeue: Bit = False


@amqp_method(60, 111, "basic.recover_ok")
class BasicRecoverOk(Method):
    pass


@amqp_method(60, 120, "basic.nack")
class BasicNack(Method):
    delivery_tag: LongLong = 0
    multiple: Bit = False
    requeue: Bit = False


@amqp_method(85, 10, "confirm.select")
class ConfirmSelect(Method):
    nowait: Bit = False


@amqp_method(85, 11, "confirm.select_ok")
class ConfirmSelectOk(Method):
    pass


@amqp_method(90, 10, "tx.select")
class TxSelect(Method):
    pass


@amqp_method(90, 11, "tx.select_ok")
class TxSelectOk(Method):
    pass


@amqp_method(90, 20, "tx.commit")
class TxCommit(Method):
    pass


@amqp_method(90, 21, "tx.commit_ok")
class TxCommitOk(Method):
    pass


@amqp_method(90, 30, "tx.rollback")
class TxRollback(Method):
    pass


@amqp_method(90, 31, "tx.rollback_ok")
class TxRollbackOk(Method):
    pass



def _all_methods() -> list[type[Method]]:
    return [obj for obj in globals().values()
            if isinstance(obj, type) and issubclass(obj, Method) and obj is not Method]


#: "class.method" -> class
BY_NAME: dict[str, type[Method]] = {cls.NAME: cls for cls in _all_methods()}
#: (class_id << 16 | method_id) -> decode(buf, offset) -> Method
DECODERS = {(cls.CLASS_ID << 16) | cls.METHOD_ID: cls.decode for cls in BY_NAME.values()}
#: (class_id, method_id, "class.method", [(field, kind), ...], has_content), in spec order
SPEC: list[tuple[int, int, str, list[tuple[str, str]], bool]] = [
    (cls.CLASS_ID, cls.METHOD_ID, cls.NAME, list(cls.FIELDS), cls.HAS_CONTENT)
    for cls in BY_NAME.values()
]
_NAMES = {(cid << 16) | mid: name for cid, mid, name, _f, _c in SPEC}


def method_name(class_id: int, method_id: int) -> str:
    return _NAMES.get((class_id << 16) | method_id, f"unknown({class_id}, {method_id})")


def decode_method(payload: bytes | memoryview) -> Method:
    """Decode a method frame payload; raises KeyError for an unknown method."""
    if len(payload) < 4:
        raise DecodeError("method frame shorter than its ids")
    class_id, method_id = _IDS.unpack_from(payload, 0)
    return DECODERS[(class_id << 16) | method_id](payload, 4)
