"""The default virtual host and user a blank node starts with (RabbitMQ's "default data").

RabbitMQ seeds them only when its database is empty (rabbit:maybe_insert_default_data)
and only if no definitions are to be imported at boot: a node that loads a definitions
file gets its users from that file, and a ``guest`` nobody asked for never appears.
For Hutch "empty" means the data dir has no definitions file yet; with ``--in-memory``
every start is a first start.  Later starts keep whatever users the operator made,
whatever the configuration says now (RabbitMQ: "this user will only be created on
first node boot").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .users import Permission

if TYPE_CHECKING:
    from .node import Node

log = logging.getLogger("hutch.broker")


@dataclass(frozen=True)
class DefaultData:
    """``default_user``, ``default_pass``, ``default_vhost``, ``default_permissions.*``
    and ``default_user_tags.*``, with RabbitMQ's defaults."""

    user: str = "guest"
    password: str = "guest"
    vhost: str = "/"
    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"
    tags: tuple[str, ...] = field(default=("administrator",))


# RabbitMQ's defaults: guest/guest, administrator, full access to "/".
GUEST = DefaultData()


def seed(node: Node, data: DefaultData, announce: bool = True) -> None:
    if announce:  # RabbitMQ's words, so a search for them finds Hutch's first start too
        log.info("Will seed default virtual host '%s' and user '%s'...", data.vhost, data.user)
    node.add_vhost(data.vhost)
    node.users.add(data.user, data.password, list(data.tags))
    node.users.set_permission(data.vhost, data.user,
                              Permission(data.configure, data.write, data.read))
    node.definitions_changed()
