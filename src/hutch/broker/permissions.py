"""RabbitMQ's access control: configure/write/read regexes per (vhost, user).

The rules, as RabbitMQ 3.10's ``rabbit_channel`` applies them (texts checked
against a real node, see tests/integration/test_permissions.py):

* connection.open to a vhost needs *some* permission entry there, else
  530 ``NOT_ALLOWED - access to vhost '/' refused for user 'bob'``;
* declare/delete of a queue or exchange needs **configure** on it;
  a queue's ``x-dead-letter-exchange`` also needs read on the queue and write
  on that exchange, an exchange's ``alternate-exchange`` read on the exchange
  and write on the alternate;
* queue.bind/unbind and exchange.bind/unbind need **write** on the
  destination and **read** on the source exchange;
* basic.publish needs **write** on the exchange; basic.get, basic.consume and
  queue.purge need **read** on the queue.

The composite rules (declare with a dead-letter or alternate exchange, bind)
are ``Access`` methods, used by the AMQP channel and the management HTTP API
alike, so the two cannot drift apart.

A failure is a channel error 403 ``ACCESS_REFUSED - access to queue 'q' in
vhost '/' refused for user 'bob'``, checked *before* whether the resource
exists (so a missing queue you may not read is 403, not 404).  The default
exchange is named ``amq.default`` for matching and in the text.  The regex is
searched, not anchored (Erlang's ``re:run``), and an empty one matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ChannelError
from ..protocol import constants as rc
from .vhost import server_named

if TYPE_CHECKING:
    from .users import Permission, Users

CONFIGURE, WRITE, READ = 0, 1, 2
_NOTHING = re.compile(r"(?!)")


def compile_regex(pattern: str) -> re.Pattern[str]:
    """An empty permission grants nothing, like RabbitMQ's ``^$`` substitution."""
    return _NOTHING if pattern == "" else re.compile(pattern)


def validate_regex(pattern: str) -> str | None:
    """None if ``pattern`` is usable, else RabbitMQ-like reason text."""
    try:
        compile_regex(pattern)
    except re.error as exc:
        return f"regular expression '{pattern}' is invalid: {exc}"
    return None


class Access:
    """One connection's view of its user's permissions in its vhost.

    Compiled regexes and decisions are cached per resource name; the cache is
    dropped whenever ``Users.generation`` moves, so a permission change applies
    to the very next operation, as in RabbitMQ.
    """

    __slots__ = ("_cache", "_generation", "_regexes", "user", "users", "vhost")

    def __init__(self, users: Users, vhost: str, user: str) -> None:
        self.users = users
        self.vhost = vhost
        self.user = user
        self._generation = -1
        self._regexes: tuple[re.Pattern[str], ...] | None = None
        self._cache: dict[tuple[int, str, str], bool] = {}

    def _refresh(self) -> None:
        self._generation = self.users.generation
        self._cache.clear()
        perm: Permission | None = self.users.permissions.get((self.vhost, self.user))
        if perm is None or self.user not in self.users.users:
            self._regexes = None
        else:
            self._regexes = (compile_regex(perm.configure), compile_regex(perm.write),
                             compile_regex(perm.read))

    def allowed(self, kind: str, name: str, what: int) -> bool:
        if self._generation != self.users.generation:
            self._refresh()
        key = (what, kind, name)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        regexes = self._regexes
        ok = regexes is not None and regexes[what].search(name) is not None
        if len(self._cache) > 1024:
            self._cache.clear()
        self._cache[key] = ok
        return ok

    # -- the rules of one AMQP method each (channel.py and admin/api_objects.py) ---------
    def check_exchange_declare(self, name: str, arguments: Mapping[str, Any]) -> None:
        """A non-passive exchange.declare: configure on it; an ``alternate-exchange``
        also needs read on it and write on the alternate."""
        if not name:
            return  # the default exchange: the vhost refuses it with its own 403
        self.check("exchange", name, CONFIGURE)
        alternate = arguments.get("alternate-exchange")
        if isinstance(alternate, (str, bytes)):
            self.check("exchange", name, READ)
            self.check("exchange", _text(alternate), WRITE)

    def check_exchange_delete(self, name: str) -> None:
        if name and not name.startswith("amq."):  # the vhost refuses those with its own 403
            self.check("exchange", name, CONFIGURE)

    def check_queue_declare(self, name: str, arguments: Mapping[str, Any]) -> None:
        """A non-passive queue.declare (``name`` "" = server-named): configure on it; an
        ``x-dead-letter-exchange`` also needs read on the queue and write on that exchange."""
        if name.startswith("amq."):
            return  # reserved prefix: the vhost refuses it with its own 403
        # A server-named queue is checked under a name of the same shape.
        name = name or server_named("amq.gen-")
        self.check("queue", name, CONFIGURE)
        dlx = arguments.get("x-dead-letter-exchange")
        if isinstance(dlx, (str, bytes)):
            self.check("queue", name, READ)
            self.check("exchange", _text(dlx), WRITE)

    def check_binding(self, kind: str, destination: str, source: str) -> None:
        """(Un)binding needs write on the destination, then read on the source exchange."""
        if destination:
            self.check(kind, destination, WRITE)
        if source and destination:
            self.check("exchange", source, READ)

    def check(self, kind: str, name: str, what: int) -> None:
        """Raise 403 unless the user may do ``what`` to the ``kind`` ('queue' or
        'exchange') named ``name`` in this vhost."""
        if kind == "exchange" and name == "":
            name = "amq.default"
        if not self.allowed(kind, name, what):
            raise ChannelError(rc.ACCESS_REFUSED, f"access to {kind} '{name}' in vhost "
                               f"'{self.vhost}' refused for user '{self.user}'")


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def vhost_access_allowed(users: Users, vhost: str, user: str) -> bool:
    return (vhost, user) in users.permissions
