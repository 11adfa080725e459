"""The AMQP connection state machine, as data: states, legal methods, transitions.

Everything that decides what the client may send on a connection, and where that
leads, is in this file (the shape of h11's ``_state.py``); it does no I/O and knows
nothing of sockets or the event loop.  ``server/connection.py`` drives it::

    pre_init --HEADER--> starting --LOGGED_IN--> tuning --TUNED--> opening --OPENED--> running
    starting | tuning | opening | running --SERVER_CLOSE--> closing --CLOSE_OK--> closed
    starting | tuning | opening | running --CLIENT_CLOSE--> closed
    any state --DROP--> closed      (socket lost or dropped, timeouts, bad header)

Each state names what the broker waits for, as RabbitMQ's rabbit_reader names its
``connection_state``; the management API shows ``running`` and ``closing`` as they are.

Two tables, and a rule for each thing they do not list:

* ``METHODS[state]``: the connection-class methods (channel 0) the state accepts and
  what each means (``Action``).  Any other method (``method_action``): 503
  COMMAND_INVALID naming the one method a handshake state waits for; 504 CHANNEL_ERROR
  "unexpected method in connection state running" once it runs (rabbit_reader's last
  ``handle_method0`` clause); dropped while closing (spec: after connection.close only
  close/close-ok count).
* ``TRANSITIONS[(state, event)]``: where each event leads.  An event with no entry is a
  bug in the broker, not the client's doing: ``LocalProtocolError``.

Frames on channels other than 0 are handled only while running: ``channel_frame``.
"""

from __future__ import annotations

import enum

from . import constants as rc
from .methods import method_name


class ConnState(enum.StrEnum):
    """A connection's state.  A ``StrEnum``: the value is the name RabbitMQ shows, and
    code that still compares with those strings keeps working."""

    PRE_INIT = "pre_init"  # waiting for the protocol header
    STARTING = "starting"  # connection.start sent, waiting for start-ok
    TUNING = "tuning"      # connection.tune sent, waiting for tune-ok
    OPENING = "opening"    # waiting for connection.open
    RUNNING = "running"
    CLOSING = "closing"    # the broker sent connection.close, waiting for close-ok
    CLOSED = "closed"      # gone for the broker; the socket may still be read to its end


PRE_INIT, STARTING, TUNING, OPENING, RUNNING, CLOSING, CLOSED = ConnState
# Groups of states are tuples, not sets: ``in`` then compares identities, where a set
# would call Enum's __hash__, a Python function, on every test.
# The handshake: before connection.open-ok (the handshake timeout applies).
HANDSHAKE = (PRE_INIT, STARTING, TUNING, OPENING)
# After connection.close, either side's: only close/close-ok go out any more, and
# the socket is read whatever else held it back (server/flow.py).
ENDING = (CLOSING, CLOSED)


class Event(enum.Enum):
    HEADER = "a valid protocol header came; connection.start was sent"
    LOGGED_IN = "start-ok authenticated the user; connection.tune was sent"
    TUNED = "tune-ok was accepted"
    OPENED = "connection.open was accepted; open-ok was sent"
    SERVER_CLOSE = "the broker sent connection.close"
    CLIENT_CLOSE = "the client sent connection.close; close-ok was sent"
    CLOSE_OK = "close-ok came for the broker's connection.close"
    DROP = "the socket is closed or gone (also: timeouts, a bad header, a refused login)"


class Action(enum.Enum):
    """What a connection-class method from the client means in the state it came in."""

    START_OK = enum.auto()       # authenticate, then tune
    TUNE_OK = enum.auto()        # take the client's limits
    OPEN = enum.auto()           # enter the vhost
    UPDATE_SECRET = enum.auto()  # answer update-secret-ok
    CLIENT_CLOSE = enum.auto()   # answer close-ok; the connection is closed
    CLOSE_AGAIN = enum.auto()    # both sides closed at once: answer close-ok, wait for ours
    CLOSE_OK = enum.auto()       # the answer to the broker's close: the connection is closed
    IGNORE = enum.auto()


START_OK_M, TUNE_OK_M, OPEN_M = (10, 11), (10, 31), (10, 40)
CLOSE_M, CLOSE_OK_M = (10, 50), (10, 51)
BLOCKED_M, UNBLOCKED_M, UPDATE_SECRET_M = (10, 60), (10, 61), (10, 70)

METHODS: dict[ConnState, dict[tuple[int, int], Action]] = {
    STARTING: {START_OK_M: Action.START_OK, CLOSE_M: Action.CLIENT_CLOSE},
    TUNING: {TUNE_OK_M: Action.TUNE_OK, CLOSE_M: Action.CLIENT_CLOSE},
    OPENING: {OPEN_M: Action.OPEN, CLOSE_M: Action.CLIENT_CLOSE},
    RUNNING: {
        CLOSE_M: Action.CLIENT_CLOSE,
        # Hutch has no token-based auth backend: it accepts a new secret as RabbitMQ
        # does for its internal backend, which ignores it.
        UPDATE_SECRET_M: Action.UPDATE_SECRET,
        # Client-sent notifications, and a close-ok nobody asked for: RabbitMQ ignores them.
        BLOCKED_M: Action.IGNORE,
        UNBLOCKED_M: Action.IGNORE,
        CLOSE_OK_M: Action.IGNORE,
    },
    CLOSING: {CLOSE_M: Action.CLOSE_AGAIN, CLOSE_OK_M: Action.CLOSE_OK},
    CLOSED: {},
}

# The one method each handshake state waits for (named in its 503).
_EXPECTED = {STARTING: method_name(*START_OK_M), TUNING: method_name(*TUNE_OK_M),
             OPENING: method_name(*OPEN_M)}

_ANY_STATE = tuple(ConnState)
_FROM = {
    Event.HEADER: ((PRE_INIT,), STARTING),
    Event.LOGGED_IN: ((STARTING,), TUNING),
    Event.TUNED: ((TUNING,), OPENING),
    Event.OPENED: ((OPENING,), RUNNING),
    Event.SERVER_CLOSE: ((STARTING, TUNING, OPENING, RUNNING), CLOSING),
    Event.CLIENT_CLOSE: ((STARTING, TUNING, OPENING, RUNNING), CLOSED),
    Event.CLOSE_OK: ((CLOSING,), CLOSED),
    # connection_lost comes last whatever happened before, a closed connection included.
    Event.DROP: (_ANY_STATE, CLOSED),
}
TRANSITIONS: dict[tuple[ConnState, Event], ConnState] = {
    (state, event): target for event, (sources, target) in _FROM.items() for state in sources}


class RemoteProtocolError(Exception):
    """The client sent a method its connection's state does not allow: a hard error
    with ``code`` and ``detail`` (the reply text after RabbitMQ's ``NAME - `` prefix)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class LocalProtocolError(Exception):
    """The broker drove the state machine along a transition it does not have."""


def method_action(state: ConnState, class_id: int, method_id: int) -> Action:
    """What the connection-class method ``(class_id, method_id)`` from the client means
    in ``state``; raises ``RemoteProtocolError`` if the state does not allow it."""
    try:
        return METHODS[state][(class_id, method_id)]
    except KeyError:
        pass
    if state in ENDING:
        return Action.IGNORE
    expected = _EXPECTED.get(state)
    if expected is not None:
        raise RemoteProtocolError(rc.COMMAND_INVALID,
                            f"expected '{expected}', got '{method_name(class_id, method_id)}'")
    if state is RUNNING:
        raise RemoteProtocolError(rc.CHANNEL_ERROR, "unexpected method in connection state running")
    raise LocalProtocolError(f"no frames are read in state {state}")


def channel_frame(state: ConnState) -> Action:
    """A frame on a channel other than 0 outside ``running`` (the caller checks for
    ``running`` itself, per frame): dropped while closing, refused before open."""
    if state in ENDING:
        return Action.IGNORE
    if state is PRE_INIT:
        raise LocalProtocolError("no frames are read before the protocol header")
    if state is RUNNING:
        raise LocalProtocolError("channel frames are handled while running")
    raise RemoteProtocolError(rc.COMMAND_INVALID, "channel frame before connection.open")


def advance(state: ConnState, event: Event) -> ConnState:
    """The state ``event`` leads to from ``state``."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise LocalProtocolError(f"no transition from {state} on {event.name}") from None
