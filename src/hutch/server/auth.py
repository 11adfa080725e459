"""SASL mechanisms of connection.start / start-ok: PLAIN, AMQPLAIN and EXTERNAL.

Which are offered is ``auth_mechanisms.N`` (RabbitMQ's default: PLAIN and
AMQPLAIN; Hutch does not have 4.x's ANONYMOUS).  EXTERNAL is RabbitMQ's
``rabbitmq_auth_mechanism_ssl``: the user is named by the client certificate —
its subject as RabbitMQ prints it (``ssl_cert_login_from = distinguished_name``,
the default) or its CN (``common_name``) — and logs in without a password.  Like
the plugin, it is offered on TLS connections only (also those without a client
certificate, so the refusal says why), and refuses when ``ssl_options.verify``
is not ``verify_peer`` ("TLS configuration is unsafe").

``login`` returns the user or raises ``LoginRefusedError`` with the text RabbitMQ logs
("<MECH> login refused: <reason>"); the client is told only the safe text
(connection.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import HardError
from ..protocol import constants as rc
from ..protocol.codec import DecodeError, decode_table
from .tls import common_names, distinguished_name

log = logging.getLogger("hutch.connection")

# RabbitMQ lists the enabled mechanisms in its registry's (ETS hash) order, not the
# configuration's: "AMQPLAIN PLAIN" by default, "PLAIN EXTERNAL AMQPLAIN" once
# rabbitmq_auth_mechanism_ssl is loaded (and "PLAIN AMQPLAIN" on its plain port),
# as seen from RabbitMQ 3.10.8.
KNOWN = ("AMQPLAIN", "EXTERNAL", "PLAIN")
_ORDER_WITH_EXTERNAL = ("PLAIN", "EXTERNAL", "AMQPLAIN")
_ORDER = ("AMQPLAIN", "PLAIN")
# Names RabbitMQ has a module for but Hutch does not offer: "invalid", not "unknown".
_OTHER_RABBIT = ("ANONYMOUS", "RABBIT-CR-DEMO")
CERT_LOGIN_FROM = ("distinguished_name", "common_name")


def parse_mechanism(text: str) -> str:
    name = text.strip().upper()
    if name not in KNOWN:
        raise ValueError(f"unsupported authentication mechanism {text!r} "
                         f"(Hutch has {', '.join(KNOWN)})")
    return name


def parse_cert_login_from(text: str) -> str:
    if text not in CERT_LOGIN_FROM:
        raise ValueError(f"unsupported ssl_cert_login_from {text!r} "
                         f"(expected distinguished_name or common_name)")
    return text


class LoginRefusedError(Exception):
    """Login refused; ``str()`` is the reason RabbitMQ logs after "<MECH> login refused: "."""


@dataclass(frozen=True)
class AuthSettings:
    mechanisms: tuple[str, ...] = ("PLAIN", "AMQPLAIN")
    cert_login_from: str = "distinguished_name"
    # ssl_options.verify = verify_peer: EXTERNAL trusts only verified certificates.
    verify_peer: bool = False

    def offered(self, tls: bool) -> list[str]:
        order = _ORDER_WITH_EXTERNAL if "EXTERNAL" in self.mechanisms else _ORDER
        return [n for n in order if n in self.mechanisms and (tls or n != "EXTERNAL")]

    def mechanisms_field(self, tls: bool) -> bytes:
        return " ".join(self.offered(tls)).encode()

    def check_mechanism(self, name: str, tls: bool) -> None:
        """RabbitMQ's rabbit_reader:auth_mechanism_to_module errors (503)."""
        if name in self.offered(tls):
            return
        if name in KNOWN or name in _OTHER_RABBIT:
            raise HardError(rc.COMMAND_INVALID, f"invalid authentication mechanism '{name}'")
        raise HardError(rc.COMMAND_INVALID, f"unknown authentication mechanism '{name}'")

    def login(self, users: Any, mechanism: str, response: bytes,
              transport: Any) -> tuple[str, Any]:
        """(user name, user) for a start-ok; raises ``LoginRefusedError`` or ``HardError``."""
        if mechanism == "EXTERNAL":
            name = self._external_name(transport)
            user = users.users.get(name)
            if user is None:
                raise LoginRefusedError(f"user '{name}' - invalid credentials")
            return name, user
        if mechanism == "PLAIN":
            parts = response.split(b"\x00")
            # RabbitMQ takes no authorization identity: the response must start with NUL
            # (rabbit_auth_mechanism_plain), or anyone could name another identity.
            if len(parts) != 3 or parts[0]:
                raise HardError(rc.ACCESS_REFUSED, "PLAIN: malformed response")
            name, password = parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
        else:  # AMQPLAIN
            try:
                table, _ = decode_table(len(response).to_bytes(4, "big") + response, 0)
            except DecodeError:
                raise HardError(rc.ACCESS_REFUSED, "AMQPLAIN: malformed response") from None
            name = str(table.get("LOGIN", ""))
            password = str(table.get("PASSWORD", ""))
        user = users.authenticate(name, password)
        if user is None:
            raise LoginRefusedError(f"user '{name}' - invalid credentials")
        return name, user

    def _external_name(self, transport: Any) -> str:
        """rabbit_auth_mechanism_ssl:init, with its refusal texts."""
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        if sslobj is None:
            raise LoginRefusedError("not a TLS-enabled connection")
        cert = sslobj.getpeercert()
        if not cert:
            # Also the case under verify_none: no certificate is asked for.
            if not self.verify_peer and sslobj.getpeercert(binary_form=True):
                raise LoginRefusedError("TLS configuration is unsafe")
            raise LoginRefusedError("connection peer presented no TLS (x.509) certificate")
        if not self.verify_peer:
            log.warning("TLS peer verification (authentication) is disabled, "
                        "ssl_options.verify value used: verify_none. See "
                        "https://www.rabbitmq.com/docs/ssl#peer-verification to learn more.")
            raise LoginRefusedError("TLS configuration is unsafe")
        if self.cert_login_from == "common_name":
            cns = common_names(cert)
            if not cns:
                raise LoginRefusedError("no name found")
            return ",".join(cns)
        return distinguished_name(cert)
