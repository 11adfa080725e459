"""Policies and operator policies: settings applied to queues and exchanges by name.

Follows RabbitMQ 4.3 (``rabbit_policy.erl``, ``rabbit_policies.erl``,
``rabbit_runtime_parameters.erl``; docs ``policies.md``):

* a policy is (vhost, name, pattern, apply-to, priority, definition); its pattern is
  a regular expression searched in the object's name (Erlang ``re``; Python's ``re``
  agrees on the patterns people write: anchors, classes, alternation, ``.*``);
* of the policies matching an object, the one with the highest priority applies,
  and only that one (definitions are not merged across policies).  RabbitMQ leaves
  the choice between equal priorities unspecified; Hutch takes the one whose name
  sorts first, so the choice is at least stable;
* a policy whose definition holds a key the queue's type does not support does not
  match that queue at all, and a lower-priority policy can apply instead
  (rabbit_queue_type:is_policy_applicable with each type's ``unsupported_policies``,
  ``UNSUPPORTED`` below; operator policies the same).  So ``{"queue-mode": "lazy",
  "max-length": 1}`` does nothing to a quorum queue, ``{"dead-letter-strategy": ...}``
  nothing to a classic one.  The one deliberate difference: Hutch's classic queues
  honour ``delivery-limit`` (a Hutch extension, README), so for them it is not an
  unsupported key and such a policy applies, where RabbitMQ skips it;
* operator policies are a second, separate set; an object gets one of each, and the
  two definitions merge key by key (``merge`` below: the lower value for limits, the
  operator's for ``overflow``);
* a policy's fields are validated as rabbit_policy:set/8 and
  rabbit_runtime_parameters do it: only an ABSENT priority / apply-to defaults (0,
  ``all``), a present ``null`` or ``""`` is refused; every field is checked and all
  the errors are reported, one a line, in RabbitMQ's order (definition, apply-to,
  pattern, priority);
* a set or clear re-evaluates every queue and exchange of the vhost at once
  (``refresh``); how the merged values combine with the queue's own ``x-``
  arguments is ``queue_settings.combine``'s business.

Policies live on their vhost (``Vhost.policies`` / ``Vhost.operator_policies``) and
are durable definitions: ``definitions.py`` exports, imports and stores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .queue_settings import DROP_HEAD, combine

if TYPE_CHECKING:
    from .queue import Queue
    from .vhost import Vhost

POLICY = "policy"
OPERATOR = "operator_policy"

# apply-to values RabbitMQ 4.x accepts (rabbit_policy:apply_to_validation; the three
# queue-type names come from the queue types' policy_apply_to_name/0).
APPLY_TO = ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams")
_QUEUE_TYPE_APPLY_TO = {"classic": "classic_queues", "quorum": "quorum_queues",
                        "stream": "streams"}

# Keys that keep a policy off a queue of that type: RabbitMQ 4.3's
# unsupported_policies (rabbit_classic_queue / rabbit_quorum_queue / rabbit_stream_queue
# capabilities/0), except delivery-limit for classic queues, which Hutch honours.
_HA = ("ha-mode", "ha-params", "ha-sync-mode", "ha-promote-on-shutdown",
       "ha-promote-on-failure")
_JMS = ("selector-fields", "selector-field-max-bytes")
UNSUPPORTED: dict[str, frozenset[str]] = {
    "classic": frozenset({"max-age", "stream-max-segment-size-bytes", "initial-cluster-size",
                          # RabbitMQ lists delivery-limit here too (Hutch: see above)
                          "dead-letter-strategy", "max-in-memory-length",
                          "max-in-memory-bytes", "target-group-size", *_JMS}),
    "quorum": frozenset({"max-priority", "queue-mode", *_HA, "queue-master-locator",
                         "max-age", "stream-max-segment-size-bytes", "initial-cluster-size",
                         *_JMS}),
    "stream": frozenset({"expires", "message-ttl", "dead-letter-exchange",
                         "dead-letter-routing-key", "max-length", "max-in-memory-length",
                         "max-in-memory-bytes", "max-priority", "overflow", "queue-mode",
                         "delivery-limit", *_HA, "queue-master-locator",
                         "dead-letter-strategy", "target-group-size", *_JMS}),
}


@dataclass
class Policy:
    vhost: str
    name: str
    pattern: str
    apply_to: str
    priority: int | float
    definition: dict[str, Any]
    regex: re.Pattern[str] = field(repr=False, compare=False, default=None)  # type: ignore

    def __post_init__(self) -> None:
        if self.regex is None:
            self.regex = re.compile(self.pattern)

    def info(self) -> dict[str, Any]:
        """RabbitMQ's shape (GET /api/policies, definitions' ``policies``)."""
        return {"vhost": self.vhost, "name": self.name, "pattern": self.pattern,
                "apply-to": self.apply_to, "definition": dict(self.definition),
                "priority": self.priority}

    def applies_to(self, name: str, queue_type: str | None) -> bool:
        """``queue_type`` None: an exchange."""
        a = self.apply_to
        if queue_type is None:
            if a not in ("all", "exchanges"):
                return False
        elif a not in ("all", "queues") and a != _QUEUE_TYPE_APPLY_TO.get(queue_type):
            return False
        elif not UNSUPPORTED.get(queue_type, frozenset()).isdisjoint(self.definition):
            return False  # rabbit_queue_type:is_policy_applicable
        return self.regex.search(name) is not None


# -- validation (rabbit_policies:validate_policy0, rabbit_policy:validation) ----------
class PolicyError(ValueError):
    """A refused policy; ``str()`` is RabbitMQ's text without its ``Validation failed``
    header (``validation_text`` adds it)."""


def validation_text(exc: PolicyError) -> str:
    """What RabbitMQ answers (HTTP ``reason``, rabbitmqctl's error)."""
    return f"Validation failed\n\n{exc}\n"


def erl(value: Any) -> str:
    """A JSON value as Erlang's ``~tp`` prints it (RabbitMQ's error texts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return '<<"' + value.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if isinstance(value, list):
        return "[" + ",".join(erl(v) for v in value) + "]"
    if isinstance(value, dict):
        return "#{" + ",".join(f"{erl(k)} => {erl(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _int(minimum: int | None = 0) -> Any:
    def check(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and (minimum is None
                                                                   or v >= minimum)
    return check


def _one_of(*values: str) -> Any:
    return lambda v: v in values


def _binary(v: Any) -> bool:
    return isinstance(v, str)


# key -> (check, RabbitMQ's error text for a bad value).  Every key RabbitMQ 4.3's core
# validates (rabbit_policies, rabbit_classic_queue, rabbit_quorum_queue); what Hutch
# does with each is HONOURED / IGNORED / REFUSED below and the README's table.
_VALIDATORS: dict[str, tuple[Any, str]] = {
    "alternate-exchange": (_binary, "is not a valid alternate exchange name"),
    "consumer-disconnected-timeout": (_int(), "is not a valid consumer disconnected timeout"),
    "consumer-timeout": (_int(), "is not a valid consumer timeout"),
    "dead-letter-exchange": (_binary, "is not a valid dead letter exchange name"),
    "dead-letter-routing-key": (_binary, "is not a valid dead letter routing key"),
    "dead-letter-strategy": (_one_of("at-most-once", "at-least-once"),
                             "is not a valid dead letter strategy"),
    "message-ttl": (_int(), "is not a valid message TTL"),
    "expires": (_int(1), "is not a valid queue expiry"),
    "max-length": (_int(), "is not a valid maximum length"),
    "max-length-bytes": (_int(), "is not a valid maximum length in bytes"),
    "max-in-memory-length": (_int(), "is not a valid maximum memory in bytes"),
    "max-in-memory-bytes": (_int(), "is not a valid maximum memory in bytes"),
    "queue-mode": (_one_of("default", "lazy"), "is not a valid queue-mode value"),
    "queue-version": (lambda v: v in (1, 2) and not isinstance(v, bool),
                      "is not a valid queue-version value"),
    "overflow": (_one_of("drop-head", "reject-publish", "reject-publish-dlx"),
                 "is not a valid overflow value"),
    "delivery-limit": (_int(None), "is not a valid delivery limit"),
    "max-age": (lambda v: isinstance(v, str) and re.fullmatch(r"\d+(Y|M|D|h|m|s)", v)
                is not None, "is not a valid max age"),
    "stream-max-segment-size-bytes": (lambda v: _int()(v) and v <= 3_000_000_000,
                                      "is not a valid segment size"),
    "stream-filter-size-bytes": (lambda v: _int(16)(v) and v <= 255,
                                 "is not a valid filter size. Valid range is 16-255"),
    "queue-leader-locator": (_one_of("client-local", "balanced", "random", "least-leaders"),
                             "is not a valid queue leader locator value"),
    "initial-cluster-size": (_int(), "is not a valid cluster size"),
    "queue-master-locator": (_one_of("min-masters", "client-local", "random"),
                             "is not a valid queue master locator"),
    "target-group-size": (_int(1), "is not a valid target group size"),
    "member-placement-tag": (_binary, "is not a valid member placement tag"),
}
# What Hutch does with them.
HONOURED = frozenset({"alternate-exchange", "consumer-timeout", "dead-letter-exchange",
                      "dead-letter-routing-key", "message-ttl", "expires", "max-length",
                      "max-length-bytes", "overflow", "delivery-limit"})
# Accepted (a definitions file from RabbitMQ imports) and ignored: each only places,
# stores or tunes what a single-node Hutch has no choice about (README, Policies).
IGNORED = frozenset({"queue-mode", "queue-version", "queue-leader-locator",
                     "initial-cluster-size", "queue-master-locator", "target-group-size",
                     "member-placement-tag", "max-in-memory-length", "max-in-memory-bytes",
                     "consumer-disconnected-timeout", "dead-letter-strategy", "max-age",
                     "stream-max-segment-size-bytes", "stream-filter-size-bytes"})
# RabbitMQ 4.3 quorum queues' delayed retry changes when a returned message comes
# back; Hutch does not implement it, so a policy asking for it is refused.
REFUSED = ("delayed-retry-type", "delayed-retry-min", "delayed-retry-max")

# Operator policies take only these (rabbit_policies / rabbit_classic_queue /
# rabbit_quorum_queue operator_policy_validator registrations).
OPERATOR_KEYS = frozenset({"expires", "message-ttl", "max-length", "max-length-bytes",
                           "max-in-memory-length", "max-in-memory-bytes", "delivery-limit",
                           "queue-version", "overflow", "queue-master-locator",
                           "target-group-size"})


def check_definition(definition: Any, operator: bool) -> None:
    """Raise PolicyError with RabbitMQ's text unless ``definition`` is acceptable."""
    if not isinstance(definition, dict):
        raise PolicyError(f"definition must be a dictionary: {erl(definition)}")
    if not definition:
        raise PolicyError("no policy provided")
    known = OPERATOR_KEYS if operator else _VALIDATORS.keys() | set(REFUSED)
    # RabbitMQ sees the definition as a sorted proplist (maps:to_list).
    items = sorted(definition.items())
    for key, value in items:
        if key in REFUSED:
            raise PolicyError(f"{key} is a RabbitMQ quorum-queue setting (delayed retry) "
                              "that Hutch does not implement")
        if key in known:
            check, text = _VALIDATORS[key]
            if not check(value):
                raise PolicyError(f"{erl(value)} {text}")
    unknown = [(k, v) for k, v in items if k not in known]
    if unknown:
        listed = ",".join(f"{{{erl(k)},{erl(v)}}}" for k, v in unknown)
        raise PolicyError(f"[{listed}] are not recognised policy settings")


def check_pattern(pattern: Any) -> None:
    """rabbit_parameter_validation:regex/2."""
    if not isinstance(pattern, str):
        raise PolicyError(f"pattern should be a binary but was {erl(pattern)}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PolicyError("pattern should be regular expression but is invalid: "
                          f'{{"{exc.msg}",{exc.pos or 0}}}') from None


def _ts(value: Any) -> str:
    """A JSON value as Erlang's ``~ts`` prints it: a string as itself, the atoms
    ``true`` / ``false`` / ``null`` bare, a list of strings joined (chardata).  RabbitMQ
    fails with a 500 on anything else (a number); Hutch prints it as ``~tp`` would."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return erl(value)


def make_policy(vhost: str, name: str, body: dict[str, Any], operator: bool) -> Policy:
    """A policy from an HTTP body / definitions entry / ctl arguments, validated as
    rabbit_policy:set/8 does: a missing priority is 0 and a missing apply-to ``all``
    (only missing: ``null`` is refused), then every field is checked and the errors
    of all of them are reported, in the order RabbitMQ lists them (definition,
    apply-to, pattern, priority; rabbit_parameter_validation:proplist collects them
    last field first)."""
    errors: list[str] = []
    definition = body.get("definition")
    try:
        check_definition(definition, operator)
    except PolicyError as exc:
        errors.append(str(exc))
    apply_to = body.get("apply-to", "all")
    if apply_to not in APPLY_TO:
        errors.append(f"apply-to '{_ts(apply_to)}' unrecognised; should be one of: "
                      "'queues', 'classic_queues',  'quorum_queues', 'streams', "
                      "'exchanges', or 'all'")
    pattern = body.get("pattern")
    try:
        check_pattern(pattern)
    except PolicyError as exc:
        errors.append(str(exc))
    priority = body.get("priority", 0)
    # Any number (rabbit_parameter_validation:number/2): 1.5 is a valid priority.
    if not isinstance(priority, (int, float)) or isinstance(priority, bool):
        errors.append(f"priority should be a number, actually was {erl(priority)}")
    if errors:
        raise PolicyError("\n".join(errors))
    assert isinstance(pattern, str) and isinstance(definition, dict)  # checked above
    return Policy(vhost, name, pattern, apply_to, priority, dict(definition))


# -- matching and merging ---------------------------------------------------------------
def best(policies: dict[str, Policy], name: str, queue_type: str | None) -> Policy | None:
    """The policy that applies: highest priority, then the first name."""
    found: Policy | None = None
    for p in policies.values():
        if p.applies_to(name, queue_type) and (
                found is None or p.priority > found.priority
                or (p.priority == found.priority and p.name < found.name)):
            found = p
    return found


def merge(policy: Policy | None, operator: Policy | None) -> dict[str, Any]:
    """The effective definition (rabbit_policy:merge_operator_definitions)."""
    out = dict(policy.definition) if policy is not None else {}
    if operator is None:
        return out
    for key, op in operator.definition.items():
        if key not in out:
            out[key] = op
        elif key == "delivery-limit" and (out[key] < 0 or op < 0):
            out[key] = max(out[key], op)  # one of them is "unlimited": the limited one
        elif key in ("overflow", "queue-version", "queue-master-locator"):
            out[key] = op
        elif isinstance(op, int) and isinstance(out[key], int):
            out[key] = min(out[key], op)
        else:
            out[key] = op
    return dict(sorted(out.items()))


# -- applying ---------------------------------------------------------------------------
def set_policy(vhost: Vhost, policy: Policy, operator: bool) -> bool:
    """Add or replace; returns whether it is new.  Applies at once."""
    table = vhost.operator_policies if operator else vhost.policies
    new = policy.name not in table
    table[policy.name] = policy
    refresh(vhost)
    vhost.broker.definitions_changed()
    return new


def clear_policy(vhost: Vhost, name: str, operator: bool) -> bool:
    table = vhost.operator_policies if operator else vhost.policies
    if table.pop(name, None) is None:
        return False
    refresh(vhost)
    vhost.broker.definitions_changed()
    return True


def refresh(vhost: Vhost) -> None:
    """Re-evaluate every queue and exchange of the vhost (RabbitMQ's
    update_matched_objects): those whose policies changed get new settings now."""
    for q in list(vhost.queues.values()):
        apply_to_queue(q)
    for ex in list(vhost.exchanges.values()):
        apply_to_exchange(vhost, ex)


def apply_to_queue(q: Queue) -> None:
    """Match ``q`` and run it with the combined settings.  A queue of a vhost with no
    policies at all is left as declared (the declare path pays one dict check)."""
    vhost = q.vhost
    old = getattr(q, "policy", None), getattr(q, "operator_policy", None)
    qtype = q.settings.queue_type
    pol = best(vhost.policies, q.name, qtype)
    op = best(vhost.operator_policies, q.name, qtype)
    if (pol, op) == old:
        return
    q.policy, q.operator_policy = pol, op
    before = q.settings
    effective = merge(pol, op)
    q.effective_policy = effective
    settings = combine(q.arguments, effective)
    q.apply_settings(settings)
    # What RabbitMQ's classic queue process does on policy_changed (rabbit_amqqueue_process:
    # process_args_policy): a lower limit drops the excess head at once (drop-head only),
    # a new expiry restarts the countdown.  A new message TTL applies to messages
    # published from now on; those already queued keep the expiry they were given.
    if settings.overflow == DROP_HEAD and (settings.max_length is not None
                                           or settings.max_length_bytes is not None):
        q._enforce_limits()
    if settings.expires != before.expires:
        q._cancel_expiry()
        q.touch()


def apply_to_exchange(vhost: Vhost, ex: Any) -> None:
    if not ex.name or ex.name.startswith("amq."):
        return
    pol = best(vhost.policies, ex.name, None)
    op = best(vhost.operator_policies, ex.name, None)
    ex.policy, ex.operator_policy = pol, op
    # The argument wins over the policy (rabbit_policy:get_arg).
    alt = ex.arguments.get("alternate-exchange")
    if alt is None and pol is not None:
        alt = pol.definition.get("alternate-exchange")
    ex.alternate_exchange = alt


def policy_name(obj: Any) -> str | None:
    p = getattr(obj, "policy", None)
    return p.name if p is not None else None


def operator_policy_name(obj: Any) -> str | None:
    p = getattr(obj, "operator_policy", None)
    return p.name if p is not None else None


def effective_definition(q: Any) -> dict[str, Any]:
    return dict(getattr(q, "effective_policy", None) or {})
