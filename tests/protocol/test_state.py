"""The connection state machine (hutch.protocol.state), in process and without I/O.

The expectations are written out here independently of the module's tables: every
legal handshake sequence, every method in every state (the action, or the reply code
and text RabbitMQ's reader answers with), every event in every state.
"""

from __future__ import annotations

import ast
import inspect

import pytest

from hutch.protocol import constants as rc
from hutch.protocol import methods as m
from hutch.protocol import state as s
from hutch.protocol.state import (
    CLOSED,
    CLOSING,
    OPENING,
    PRE_INIT,
    RUNNING,
    STARTING,
    TUNING,
    Action,
    ConnState,
    Event,
    LocalProtocolError,
    RemoteProtocolError,
    advance,
    channel_frame,
    method_action,
)

ALL_METHODS = [(cid, mid, name) for cid, mid, name, _f, _c in m.SPEC]
HANDSHAKE_WAITS = {STARTING: "connection.start_ok", TUNING: "connection.tune_ok",
                   OPENING: "connection.open"}
LEGAL = {
    STARTING: {"connection.start_ok": Action.START_OK, "connection.close": Action.CLIENT_CLOSE},
    TUNING: {"connection.tune_ok": Action.TUNE_OK, "connection.close": Action.CLIENT_CLOSE},
    OPENING: {"connection.open": Action.OPEN, "connection.close": Action.CLIENT_CLOSE},
    RUNNING: {"connection.close": Action.CLIENT_CLOSE,
              "connection.update_secret": Action.UPDATE_SECRET,
              "connection.blocked": Action.IGNORE, "connection.unblocked": Action.IGNORE,
              "connection.close_ok": Action.IGNORE},
    CLOSING: {"connection.close": Action.CLOSE_AGAIN, "connection.close_ok": Action.CLOSE_OK},
}
EXPECTED_TRANSITIONS = {
    (PRE_INIT, Event.HEADER): STARTING,
    (STARTING, Event.LOGGED_IN): TUNING,
    (TUNING, Event.TUNED): OPENING,
    (OPENING, Event.OPENED): RUNNING,
    **{(st, Event.SERVER_CLOSE): CLOSING for st in (STARTING, TUNING, OPENING, RUNNING)},
    **{(st, Event.CLIENT_CLOSE): CLOSED for st in (STARTING, TUNING, OPENING, RUNNING)},
    (CLOSING, Event.CLOSE_OK): CLOSED,
    **{(st, Event.DROP): CLOSED for st in ConnState},
}


def run(events: list[Event]) -> ConnState:
    state = PRE_INIT
    for event in events:
        state = advance(state, event)
    return state


def test_state_names_are_rabbitmqs() -> None:
    # The management API shows these values (running, closing) as they are.
    assert [str(st) for st in ConnState] == [
        "pre_init", "starting", "tuning", "opening", "running", "closing", "closed"]
    assert RUNNING == "running" and f"{CLOSING}" == "closing"


def test_the_handshake() -> None:
    state = PRE_INIT
    for event, method, after in ((Event.HEADER, None, STARTING),
                                 (Event.LOGGED_IN, (10, 11), TUNING),
                                 (Event.TUNED, (10, 31), OPENING),
                                 (Event.OPENED, (10, 40), RUNNING)):
        if method is not None:
            assert method_action(state, *method) is not Action.IGNORE
        state = advance(state, event)
        assert state is after


HANDSHAKE_PREFIXES = [[Event.HEADER], [Event.HEADER, Event.LOGGED_IN],
                      [Event.HEADER, Event.LOGGED_IN, Event.TUNED],
                      [Event.HEADER, Event.LOGGED_IN, Event.TUNED, Event.OPENED]]


@pytest.mark.parametrize("prefix", HANDSHAKE_PREFIXES)
def test_every_way_to_close(prefix: list[Event]) -> None:
    """From each state after the header: the client closes (close-ok, closed); the
    broker closes (closing until close-ok, or its timeout); the socket goes."""
    state = run(prefix)
    assert method_action(state, 10, 50) is Action.CLIENT_CLOSE
    assert advance(state, Event.CLIENT_CLOSE) is CLOSED
    closing = advance(state, Event.SERVER_CLOSE)
    assert closing is CLOSING
    assert method_action(closing, 10, 51) is Action.CLOSE_OK
    assert method_action(closing, 10, 50) is Action.CLOSE_AGAIN
    assert advance(closing, Event.CLOSE_OK) is CLOSED
    assert advance(closing, Event.DROP) is CLOSED
    assert advance(state, Event.DROP) is CLOSED


@pytest.mark.parametrize("state", [STARTING, TUNING, OPENING, RUNNING, CLOSING, CLOSED])
@pytest.mark.parametrize("cid,mid,name", ALL_METHODS)
def test_every_method_in_every_state(state: ConnState, cid: int, mid: int, name: str) -> None:
    legal = LEGAL.get(state, {})
    if name in legal:
        assert method_action(state, cid, mid) is legal[name]
    elif state in (CLOSING, CLOSED):
        # Spec: after connection.close only close/close-ok count; closed reads to the end.
        assert method_action(state, cid, mid) is Action.IGNORE
    else:
        with pytest.raises(RemoteProtocolError) as info:
            method_action(state, cid, mid)
        if state is RUNNING:  # a second start-ok/tune-ok/open, or any other class on 0
            assert (info.value.code, info.value.detail) == (
                rc.CHANNEL_ERROR, "unexpected method in connection state running")
        else:
            assert (info.value.code, info.value.detail) == (
                rc.COMMAND_INVALID, f"expected '{HANDSHAKE_WAITS[state]}', got '{name}'")


def test_no_frames_before_the_header() -> None:
    with pytest.raises(LocalProtocolError):
        method_action(PRE_INIT, 10, 11)
    with pytest.raises(LocalProtocolError):
        channel_frame(PRE_INIT)


@pytest.mark.parametrize("state", list(ConnState))
def test_channel_frames_outside_running(state: ConnState) -> None:
    if state in (STARTING, TUNING, OPENING):
        with pytest.raises(RemoteProtocolError) as info:
            channel_frame(state)
        assert (info.value.code, info.value.detail) == (
            rc.COMMAND_INVALID, "channel frame before connection.open")
    elif state in (CLOSING, CLOSED):
        assert channel_frame(state) is Action.IGNORE
    else:  # running handles them itself, pre_init reads no frames
        with pytest.raises(LocalProtocolError):
            channel_frame(state)


@pytest.mark.parametrize("state", list(ConnState))
@pytest.mark.parametrize("event", list(Event))
def test_every_event_in_every_state(state: ConnState, event: Event) -> None:
    target = EXPECTED_TRANSITIONS.get((state, event))
    if target is None:  # a missing transition is the broker's bug
        with pytest.raises(LocalProtocolError, match=f"no transition from {state} on {event.name}"):
            advance(state, event)
    else:
        assert advance(state, event) is target
    assert s.TRANSITIONS == EXPECTED_TRANSITIONS


def test_sets() -> None:
    assert set(s.HANDSHAKE) == {PRE_INIT, STARTING, TUNING, OPENING}
    assert set(s.ENDING) == {CLOSING, CLOSED}


def test_no_io() -> None:
    """The state machine imports nothing but the standard enum module and protocol/."""
    tree = ast.parse(inspect.getsource(s))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported == {"__future__", "enum", ".", ".methods"}
