"""sd_notify(3) without libsystemd: one datagram to ``$NOTIFY_SOCKET``.

A ``Type=notify`` unit (contrib/hutch.service) waits for ``READY=1``, which
``hutch serve`` sends once every listener accepts connections, and ``STOPPING=1``
when it begins a clean stop.  The socket is a path, or (leading ``@``) a name in
Linux's abstract namespace.  Outside systemd the variable is unset and this does
nothing; a notification that cannot be sent is logged, never fatal (as libsystemd's
sd_notify returns an error the caller may ignore).
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("hutch.systemd")


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=..."``); False if not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    elif address[0] != "/":
        # vsock:... (systemd in a VM) and anything else: not something a broker needs.
        log.warning("NOTIFY_SOCKET %r is not a unix socket path: not notifying", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify systemd through %s: %s", os.environ["NOTIFY_SOCKET"],
                    exc.strerror or exc)
        return False
    return True
