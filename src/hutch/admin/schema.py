"""Request bodies of the management API: decoded and checked in one place.

Every endpoint that takes a JSON body names a ``Schema`` here: the fields it
reads and what each must be.  ``Request.body(schema)`` (http_api.py) reads the
body (within ``--http-max-body``), decodes it as RabbitMQ does and returns the
checked fields, so a handler never sees ``"durable": "yes"`` or
``"arguments": [1, 2]`` and a malformed body is a 400, never a 500.

Decoding follows ``rabbit_mgmt_util:decode/1``: an empty body, ``null`` or a
JSON boolean is ``{}``; a JSON string is refused with RabbitMQ's
"doubly-JSON-encoded" text; anything else that is not an object (or not
JSON, including ``NaN``) is ``not_json``.

Reasons copy RabbitMQ 3.10's where it has one (``["not_boolean", "yes"]``,
``["not_integer", "x"]``, ``payload_not_string``, ``["not_int",
"delivery_mode"]``, ``null_not_allowed`` ...).  Where RabbitMQ crashes with a
500 (``"tags": 5``, ``"arguments": "x"``, ``"properties": [1]``) or silently
ignores the value (``"type": 5`` on a queue, ``"arguments": [1, 2]`` on an
exchange) Hutch answers 400 with a reason of the same shape, a deliberate
difference listed in the README.  Unknown fields are ignored, as RabbitMQ does;
``null`` counts as absent in an optional field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..protocol.codec import MAX_DEPTH
from ..protocol.properties import PROPERTIES

# The deepest JSON document accepted: AMQP field tables nest at most this deep
# (codec.MAX_DEPTH), and a bound keeps every later walk over a body (encoding
# arguments, rendering them back as JSON) far from Python's recursion limit.
MAX_JSON_DEPTH = MAX_DEPTH

_I64 = 2**63


class BodyError(Exception):
    """A body that cannot be used: answered 400 ``bad_request`` with ``reason``
    (a string, or a list as RabbitMQ renders its Erlang tuples)."""

    def __init__(self, reason: Any) -> None:
        super().__init__(str(reason))
        self.reason = reason


# -- decoding ---------------------------------------------------------------------------
def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):  # 1e999 would come back out as the non-JSON Infinity
        raise ValueError(f"{token} is out of range")
    return value


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        if level > deepest:
            deepest = level
            if deepest > MAX_JSON_DEPTH:
                break
        stack.extend((child, level) for child in children)
    return deepest


def decode_json(raw: bytes) -> Any:
    """The parsed body, any JSON value (``None`` for an empty body)."""
    if not raw.strip():
        return None
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:  # deeper than the parser itself can go
        raise BodyError(f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except ValueError:  # includes UnicodeDecodeError and over-long integers
        raise BodyError("not_json") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise BodyError(f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    return data


def decode_object(raw: bytes) -> dict[str, Any]:
    """A body as ``rabbit_mgmt_util:decode/1`` takes it: an object, or ``{}``."""
    data = decode_json(raw)
    if data is None or isinstance(data, bool):
        return {}
    if isinstance(data, str):
        raise BodyError("invalid payload: the request body JSON-decoded to a string. "
                        "Is the input doubly-JSON-encoded?")
    if not isinstance(data, dict):
        raise BodyError("not_json")
    return data


# -- field kinds: (field name, value) -> the value to use, or BodyError ----------------------
Kind = Callable[[str, Any], Any]


def string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BodyError(["not_string", name])
    return value


def boolean(name: str, value: Any) -> bool:
    """``rabbit_misc:parse_bool``: JSON booleans and the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise BodyError(["not_boolean", value])


def integer(name: str, value: Any) -> int:
    """``rabbit_misc:parse_int``: integers, floats (truncated) and decimal strings
    (the management UI sends form fields as strings)."""
    if isinstance(value, bool):
        raise BodyError(["not_integer", value])
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise BodyError(["not_integer", value])


def _field_value(name: str, value: Any) -> None:
    """A value an AMQP field table can carry (JSON null has no AMQP equivalent
    RabbitMQ accepts: ``null_not_allowed``)."""
    if value is None:
        raise BodyError("null_not_allowed")
    if isinstance(value, int) and not isinstance(value, bool) and not -_I64 <= value < _I64:
        raise BodyError(["not_int64", name])
    if isinstance(value, dict):
        for k, v in value.items():
            _field_value(k, v)
    elif isinstance(value, list):
        for v in value:
            _field_value(name, v)


def table(name: str, value: Any) -> dict[str, Any]:
    """A JSON object that becomes an AMQP field table (``arguments``, ``headers``)."""
    if not isinstance(value, dict):
        raise BodyError(["not_object", name])
    for k, v in value.items():
        _field_value(k, v)
    return value


def tags(name: str, value: Any) -> str | list[str]:
    """User and vhost tags: one comma-separated string or a list of strings."""
    if isinstance(value, str) or (isinstance(value, list)
                                  and all(isinstance(t, str) for t in value)):
        return value
    raise BodyError(["not_string_or_list_of_strings", name])


def one_of(*allowed: str, reason: Callable[[Any], Any]) -> Kind:
    def check(name: str, value: Any) -> str:
        if value not in allowed:
            raise BodyError(reason(value))
        return value
    return check


def payload(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BodyError("payload_not_string")
    return value


def _octet(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise BodyError(["not_int", name])
    return value


def _timestamp(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise BodyError(["not_int", name])
    return value


def _property_string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BodyError(["not_string", name])
    return value


_PROPERTY_KINDS: dict[str, Kind] = {"shortstr": _property_string, "table": table,
                                    "octet": _octet, "longlong": _timestamp}


def properties(name: str, value: Any) -> dict[str, Any]:
    """Message properties as ``rabbit_mgmt_format:to_basic_properties`` takes them."""
    if not isinstance(value, dict):
        raise BodyError(["not_object", name])
    return PROPERTIES_SCHEMA.check(value)


@dataclass(frozen=True)
class Schema:
    """The fields of one body: ``fields`` maps a name to its kind; a ``required``
    field that is missing is RabbitMQ's ``[{key_missing,name}]`` (null is checked
    like any other value, e.g. ``"payload": null`` is ``payload_not_string``)."""

    fields: dict[str, Kind]
    required: tuple[str, ...] = ()

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        missing = [k for k in self.required if k not in body]
        if missing:
            raise BodyError("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")
        out: dict[str, Any] = {}
        for name, kind in self.fields.items():
            value = body.get(name)
            # null is "absent" for an optional field; a required one must be usable.
            if value is not None or name in self.required:
                out[name] = kind(name, value)
        return out


def list_of(schema: Schema) -> Kind:
    """A list of objects, each checked against ``schema`` (definitions files)."""
    def check(name: str, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
            raise BodyError(f"'{name}' must be a list of objects")
        try:
            return [schema.check(item) for item in value]
        except BodyError as exc:
            raise BodyError(f"{name}: {_text(exc.reason)}") from None
    return check


def _text(reason: Any) -> str:
    return reason if isinstance(reason, str) else json.dumps(reason)


# -- one schema per endpoint ---------------------------------------------------------------
PROPERTIES_SCHEMA = Schema({name: _PROPERTY_KINDS[kind] for name, kind in PROPERTIES
                            if kind in _PROPERTY_KINDS})

QUEUE_PUT = Schema({"durable": boolean, "auto_delete": boolean, "arguments": table,
                    "type": string, "node": string})
EXCHANGE_PUT = Schema({"type": string, "durable": boolean, "auto_delete": boolean,
                       "internal": boolean, "arguments": table})
PUBLISH = Schema({"routing_key": string, "payload": payload,
                  "payload_encoding": one_of("string", "base64",
                                             reason=lambda v: ["unsupported_encoding", v]),
                  "properties": properties},
                 required=("routing_key", "properties", "payload", "payload_encoding"))
ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true",
            "reject_requeue_false")
GET_MESSAGES = Schema({"count": integer, "truncate": integer, "requeue": boolean,
                       "ackmode": one_of(*ACKMODES, reason=lambda v: f"invalid ackmode '{v}'"),
                       "encoding": one_of("auto", "base64", reason=lambda v: "Unsupported "
                                          "encoding. Please use auto or base64.")})
BINDING_POST = Schema({"routing_key": string, "arguments": table})
USER_PUT = Schema({"password": string, "password_hash": string, "hashing_algorithm": string,
                   "tags": tags, "limits": lambda name, value: value})
VHOST_PUT = Schema({"description": string, "tags": tags, "tracing": boolean,
                    "default_queue_type": string})
PERMISSION_PUT = Schema({"configure": string, "write": string, "read": string},
                        required=("configure", "write", "read"))

# Definitions files (POST /api/definitions, hutch ctl import_definitions): every
# list item is checked before anything is applied, so a bad file changes nothing.
def _limits(name: str, value: Any) -> Any:
    """A user's or a vhost's limits: checked by broker/limits.validate on import."""
    return value


_DEF_USER = Schema({"name": string, "password": string, "password_hash": string,
                    "hashing_algorithm": string, "tags": tags, "limits": _limits})
_DEF_VHOST = Schema({"name": string, "description": string, "tags": tags, "limits": _limits})
# Runtime parameters: only vhost-limits is applied (broker/definitions.py).
_DEF_PARAMETER = Schema({"vhost": string, "component": string, "name": string,
                         "value": _limits})
_DEF_PERMISSION = Schema({"user": string, "vhost": string, "configure": string,
                          "write": string, "read": string})
_DEF_QUEUE = Schema({"name": string, "vhost": string, "durable": boolean,
                     "auto_delete": boolean, "arguments": table, "type": string})
_DEF_EXCHANGE = Schema({"name": string, "vhost": string, "type": string, "durable": boolean,
                        "auto_delete": boolean, "internal": boolean, "arguments": table})
_DEF_BINDING = Schema({"source": string, "vhost": string, "destination": string,
                       "destination_type": one_of("queue", "exchange",
                                                  reason=lambda v: ["invalid_destination_type", v]),
                       "routing_key": string, "arguments": table})
def _as_is(name: str, value: Any) -> Any:
    """Checked later by the code that uses it (a policy's priority and definition:
    broker/policies.make_policy, with RabbitMQ's own texts)."""
    return value


# PUT /api/policies/{vhost}/{name} (and operator-policies): RabbitMQ's with_decode
# wants pattern and definition; the rest is checked by policies.make_policy.
POLICY_PUT = Schema({"pattern": _as_is, "definition": _as_is, "priority": _as_is,
                     "apply-to": _as_is}, required=("pattern", "definition"))
_DEF_POLICY = Schema({"name": string, "vhost": string, "pattern": _as_is,
                      "apply-to": _as_is, "priority": _as_is, "definition": _as_is})
DEFINITIONS = Schema({"users": list_of(_DEF_USER), "vhosts": list_of(_DEF_VHOST),
                      "permissions": list_of(_DEF_PERMISSION), "queues": list_of(_DEF_QUEUE),
                      "parameters": list_of(_DEF_PARAMETER),
                      "policies": list_of(_DEF_POLICY),
                      "exchanges": list_of(_DEF_EXCHANGE), "bindings": list_of(_DEF_BINDING)})
