"""Definitions export/import over the management API and ``hutch ctl``.

This file format is the way to a RabbitMQ cluster: ``hutch ctl
export_definitions defs.json`` then ``rabbitmqctl import_definitions
defs.json`` (and back).  The conversion between broker state and the document
is ``broker/definitions.py`` (the durable definitions file uses it too); this
module adds what only a document from outside needs: every field of every item
is type-checked (``schema.DEFINITIONS``) before anything is applied, so a
malformed file changes nothing.
"""

from __future__ import annotations

from typing import Any

from ..broker import definitions, limits
from ..version import RABBITMQ_VERSION
from .schema import DEFINITIONS, BodyError

RABBIT_VERSION = RABBITMQ_VERSION  # the RabbitMQ release whose format we write


class DefinitionsError(Exception):
    """The file is not usable at all (not an object, wrong types)."""


def export_definitions(broker: Any) -> dict[str, Any]:
    return definitions.export_document(broker)


def export_vhost_definitions(broker: Any, vhost: Any) -> dict[str, Any]:
    return definitions.export_vhost_document(vhost)


def _checked(defs: Any) -> dict[str, list[dict[str, Any]]]:
    if not isinstance(defs, dict):
        raise DefinitionsError("definitions must be a JSON object")
    try:
        checked = DEFINITIONS.check(defs)
    except BodyError as exc:
        raise DefinitionsError(str(exc.reason)) from None
    _check_limits(checked)
    if defs.get("topic_permissions"):
        # Hutch has no topic permissions: importing without them would let every user
        # publish to every routing key the file restricts.  Refused, as a whole.
        raise DefinitionsError(f"topic permissions are not supported by Hutch: remove the "
                               f"{len(defs['topic_permissions'])} topic_permissions entries to "
                               f"import this file (refused rather than grant more than it says)")
    return checked


def _check_limits(defs: dict[str, list[dict[str, Any]]]) -> None:
    """Every limit of the document, before anything is applied: RabbitMQ refuses the whole
    import (400, its validation text) rather than dropping a user's or vhost's limits."""
    terms: list[tuple[Any, str]] = [(u["limits"], "user") for u in defs.get("users", [])
                                    if u.get("limits")]
    terms += [(v["limits"], "vhost") for v in defs.get("vhosts", []) if v.get("limits")]
    terms += [(p.get("value"), "vhost") for p in defs.get("parameters", [])
              if p.get("component") == "vhost-limits"]
    for term, kind in terms:
        try:
            limits.validate(term, kind)
        except limits.LimitsError as exc:
            raise DefinitionsError(str(exc.args[0]).strip()) from None


def import_definitions(broker: Any, defs: Any, only_vhost: str | None = None) -> list[str]:
    """Apply a definitions document; returns one warning per object skipped."""
    return definitions.import_document(broker, _checked(defs), only_vhost=only_vhost)
