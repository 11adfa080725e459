"""Management API health checks, as RabbitMQ 3.10's ``rabbit_mgmt_wm_health_check_*``
and ``rabbit_mgmt_wm_aliveness_test``.

A passing check answers 200 ``{"status": "ok", ...}``; a failing one 503
``{"status": "failed", "reason": ...}`` with the check's details, the bodies
RabbitMQ sends.  Any management user may run them; the aliveness test needs
access to its vhost and runs as that user, so its permissions apply.
"""

from __future__ import annotations

import re

from aiohttp import web

from ..broker.message import Message
from ..broker.permissions import READ, WRITE
from ..protocol.frames import content_header_payload
from ..protocol.properties import encode_properties
from .api_objects import _channel_vhost
from .http_api import Request, Router, bad_request, json_response
from .views import node_name

FAILED = 503  # ?HEALTH_CHECK_FAILURE_STATUS
ALIVENESS_QUEUE = "aliveness-test"

# normalize_protocol in rabbit_mgmt_wm_health_check_protocol_listener: the names
# Hutch has listeners for; anything else is compared as given (lower case).
PROTOCOL_ALIASES = {
    **dict.fromkeys(("amqp091", "amqp0.9.1", "amqp0-9-1", "amqp0_9_1", "amqp10", "amqp1.0",
                     "amqp1-0", "amqp1_0"), "amqp"),
    "amqps": "amqp/ssl",
    **dict.fromkeys(("http1", "http1.1", "http_api", "management", "management_ui", "ui"),
                    "http"),
    "cli": "clustering", "distribution": "clustering",
}


def failed(reason: str, **details: object) -> web.Response:
    return json_response({"status": "failed", "reason": reason, **details}, FAILED)


async def health_node(req: Request) -> web.Response:
    return json_response({"status": "ok"})


def _alarms(req: Request) -> list[dict[str, str]]:
    # rabbit_alarm:format_as_maps ("disk space", "memory"), in get_alarms' order.
    alarms = req.broker.resources.alarms
    return [{"resource": resource, "node": node_name()}
            for name, resource in (("disk", "disk space"), ("memory", "memory"))
            if name in alarms]


async def health_alarms(req: Request) -> web.Response:
    alarms = _alarms(req)
    if alarms:
        return failed("There are alarms in effect in the cluster", alarms=alarms)
    return json_response({"status": "ok"})


async def health_local_alarms(req: Request) -> web.Response:
    alarms = _alarms(req)
    if alarms:
        return failed("There are alarms in effect on the node", alarms=alarms)
    return json_response({"status": "ok"})


async def health_port_listener(req: Request) -> web.Response:
    text = req.args["port"]
    if not re.fullmatch(r"[+-]?[0-9]+", text):  # binary_to_integer
        raise bad_request("Invalid port")
    port = int(text)
    ports = [entry["port"] for entry in req.api.listeners()]
    if port not in ports:
        return failed("No active listener", missing=port, ports=ports)
    return json_response({"status": "ok", "port": port})


async def health_protocol_listener(req: Request) -> web.Response:
    protocol = req.args["protocol"].lower()
    protocol = PROTOCOL_ALIASES.get(protocol, protocol)
    protocols = [entry["protocol"] for entry in req.api.listeners()]
    if protocol not in protocols:
        return failed("No active listener", missing=protocol, protocols=protocols)
    return json_response({"status": "ok", "protocol": protocol})


async def health_virtual_hosts(req: Request) -> web.Response:
    # A Hutch vhost cannot be "down" (RabbitMQ's may be, if its process crashed).
    return json_response({"status": "ok"})


async def health_quorum_critical(req: Request) -> web.Response:
    # One node: RabbitMQ answers this for a single-node cluster.
    return json_response({"status": "ok", "reason": "single node cluster"})


async def aliveness_test(req: Request) -> web.Response:
    """Declare ``aliveness-test``, publish ``test_message`` to it and get it back, on
    the user's own channel (so needing configure, write and read there). The queue is
    kept: RabbitMQ does not delete it either, to be cheap when polled."""
    req.vhost()  # 401 without access, then 404 for a missing vhost (resource_exists)
    vhost = _channel_vhost(req, "Aliveness test error")
    with req.amqp("Aliveness test error", style="channel"):
        access = req.access(vhost)
        access.check_queue_declare(ALIVENESS_QUEUE, {})
        q = vhost.declare_queue(ALIVENESS_QUEUE, False, False, False, False, {}, None)
        access.check("exchange", "", WRITE)
        access.check("queue", ALIVENESS_QUEUE, READ)
    body = b"test_message"
    header = content_header_payload(len(body), encode_properties({}))
    q.enqueue(Message("", ALIVENESS_QUEUE, header, body, False, None))
    msg = q.get(no_ack=True)
    if msg is None:
        return failed("aliveness-test queue is empty")
    return json_response({"status": "ok"})


def register(router: Router) -> None:
    add = router.add
    add("GET", "healthchecks/node", health_node)
    add("GET", "health/checks/alarms", health_alarms)
    add("GET", "health/checks/local-alarms", health_local_alarms)
    add("GET", "health/checks/port-listener/{port}", health_port_listener)
    add("GET", "health/checks/protocol-listener/{protocol}", health_protocol_listener)
    add("GET", "health/checks/virtual-hosts", health_virtual_hosts)
    add("GET", "health/checks/node-is-quorum-critical", health_quorum_critical)
    add("GET", "aliveness-test/{vhost}", aliveness_test)
