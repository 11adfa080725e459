"""Connection-level behaviour: protocol header, Start/Tune, auth, heartbeats, close."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import amqp
import pika
import pytest
from pamqp import commands, frame, heartbeat


def _addr(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname or "127.0.0.1", u.port or 5672


class RawClient:
    """Just enough AMQP to reach the states pika will not let us reach."""

    def __init__(self, url: str) -> None:
        self.sock = socket.create_connection(_addr(url), timeout=5)
        self.buf = b""

    def send(self, channel: int, method: object) -> None:
        self.sock.sendall(frame.marshal(method, channel))

    def recv(self) -> tuple[int, object]:
        while True:
            try:
                consumed, channel, value = frame.unmarshal(self.buf)
                self.buf = self.buf[consumed:]
                return channel, value
            except Exception:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed") from None
                self.buf += chunk

    def handshake(self, heartbeat: int = 0, user: str = "guest", password: str = "guest") -> object:
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        _, start = self.recv()
        assert isinstance(start, commands.Connection.Start)
        self.send(0, commands.Connection.StartOk(
            client_properties={"capabilities": {"authentication_failure_close": True}},
            mechanism="PLAIN", response=f"\0{user}\0{password}"))
        _, tune = self.recv()
        assert isinstance(tune, commands.Connection.Tune)
        self.send(0, commands.Connection.TuneOk(channel_max=tune.channel_max,
                                                frame_max=tune.frame_max, heartbeat=heartbeat))
        self.send(0, commands.Connection.Open(virtual_host="/"))
        _, ok = self.recv()
        assert isinstance(ok, commands.Connection.OpenOk)
        return start

    def closed_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def test_wrong_protocol_header_gets_ours_back_and_close(broker_url: str) -> None:
    sock = socket.create_connection(_addr(broker_url), timeout=5)
    sock.sendall(b"AMQP\x00\x00\x08\x00")
    data = b""
    try:
        while chunk := sock.recv(100):
            data += chunk
    except ConnectionResetError:
        pass  # RabbitMQ resets right after writing the header: still closed
    assert data == b"AMQP\x00\x00\x09\x01"
    sock.close()


def test_http_request_is_answered_with_protocol_header(broker_url: str) -> None:
    sock = socket.create_connection(_addr(broker_url), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(100) == b"AMQP\x00\x00\x09\x01"
    sock.close()


def test_start_advertises_rabbitmq_capabilities_and_tune_defaults(broker_url: str) -> None:
    c = RawClient(broker_url)
    c.sock.sendall(b"AMQP\x00\x00\x09\x01")
    _, start = c.recv()
    assert isinstance(start, commands.Connection.Start)
    assert (start.version_major, start.version_minor) == (0, 9)
    caps = start.server_properties["capabilities"]
    for cap in ("publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "authentication_failure_close",
                "per_consumer_qos"):
        assert caps[cap] is True, cap
    assert "accept_consumer_cancel_ok" not in caps
    for key in ("product", "version", "platform", "copyright", "information", "cluster_name"):
        assert key in start.server_properties
    assert set(start.mechanisms.split()) >= {"PLAIN", "AMQPLAIN"}
    assert start.locales == "en_US"
    c.send(0, commands.Connection.StartOk(client_properties={}, mechanism="PLAIN",
                                          response="\0guest\0guest"))
    _, tune = c.recv()
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    c.close()


def test_pika_heartbeat_zero_is_accepted(broker_url: str) -> None:
    params = pika.URLParameters(broker_url)
    params.heartbeat = 0
    conn = pika.BlockingConnection(params)
    assert conn._impl.params.heartbeat == 0
    conn.channel().queue_declare("", exclusive=True)
    conn.close()


def test_pika_negotiates_heartbeat_down(broker_url: str) -> None:
    params = pika.URLParameters(broker_url)
    params.heartbeat = 7
    conn = pika.BlockingConnection(params)
    assert conn._impl.params.heartbeat == 7
    conn.close()


def test_server_sends_heartbeats(broker_url: str) -> None:
    c = RawClient(broker_url)
    c.handshake(heartbeat=1)
    c.sock.settimeout(4)
    channel, value = c.recv()
    assert channel == 0 and isinstance(value, heartbeat.Heartbeat)
    c.close()


def test_silent_peer_is_dropped_after_two_missed_heartbeats(broker_url: str) -> None:
    c = RawClient(broker_url)
    c.handshake(heartbeat=1)
    start = time.monotonic()
    # We never send anything (no heartbeats): the broker must give up on us.
    assert c.closed_within(8), "broker kept a silent client"
    assert time.monotonic() - start >= 1.5
    c.close()


def test_wrong_password_is_refused_with_403(broker_url: str) -> None:
    params = pika.URLParameters(broker_url.replace("guest:guest", "guest:wrong"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as info:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(info.value)


def test_raw_refusal_text(broker_url: str) -> None:
    c = RawClient(broker_url)
    c.sock.sendall(b"AMQP\x00\x00\x09\x01")
    c.recv()
    c.send(0, commands.Connection.StartOk(
        client_properties={"capabilities": {"authentication_failure_close": True}},
        mechanism="PLAIN", response="\0guest\0nope"))
    _, close = c.recv()
    assert isinstance(close, commands.Connection.Close)
    assert close.reply_code == 403
    assert close.reply_text == ("ACCESS_REFUSED - Login was refused using authentication mechanism "
                                "PLAIN. For details see the broker logfile.")
    c.close()


def test_amqplain_login_with_py_amqp(broker_url: str) -> None:
    host, port = _addr(broker_url)
    conn = amqp.Connection(f"{host}:{port}", userid="guest", password="guest",
                           login_method="AMQPLAIN")
    conn.connect()
    ch = conn.channel()
    q, _, _ = ch.queue_declare("", exclusive=True)
    ch.basic_publish(amqp.Message("hi"), routing_key=q)
    assert ch.basic_get(q, no_ack=True).body == "hi"
    conn.close()


def test_unknown_vhost_is_refused_after_open(broker_url: str) -> None:
    params = pika.URLParameters(broker_url.rstrip("/") + "/nope")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        pika.BlockingConnection(params)
    assert "(530) 'NOT_ALLOWED - vhost nope not found'" in str(info.value)


def test_client_close_is_answered_with_close_ok(broker_url: str) -> None:
    c = RawClient(broker_url)
    c.handshake()
    c.send(0, commands.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
    _, ok = c.recv()
    assert isinstance(ok, commands.Connection.CloseOk)
    c.close()


@pytest.mark.hutch_only
def test_login_failures_are_logged_like_rabbitmq(hutch) -> None:
    params = pika.URLParameters(hutch.url.replace("guest:guest", "guest:wrong"))
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(params)
    assert hutch.wait_for_log("PLAIN login refused: user 'guest' - invalid credentials")
    host, port = _addr(hutch.url)
    with pytest.raises(amqp.exceptions.AccessRefused):
        amqp.Connection(f"{host}:{port}", userid="bob", password="x",
                        login_method="AMQPLAIN").connect()
    assert hutch.wait_for_log("AMQPLAIN login refused: user 'bob' - invalid credentials")


@pytest.mark.hutch_only
def test_handshake_timeout_drops_idle_socket(hutch) -> None:
    sock = socket.create_connection(_addr(hutch.url), timeout=15)
    start = time.monotonic()
    assert sock.recv(10) == b""  # closed by the broker, never answered
    assert 9 <= time.monotonic() - start <= 13
    sock.close()


@pytest.mark.hutch_only
def test_sigterm_closes_connections_with_320_and_requeues(hutch) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(hutch.url))
    ch = conn.channel()
    ch.queue_declare("work")
    ch.basic_publish("", "work", b"job")
    method, _, _ = ch.basic_get("work")
    assert method is not None
    hutch.stop()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.process_data_events(time_limit=2)
        ch.basic_ack(method.delivery_tag)
    assert info.value.reply_code == 320
    assert "CONNECTION_FORCED" in info.value.reply_text
    assert "stopped" in hutch_log_tail(hutch)


def hutch_log_tail(proc) -> str:
    return proc.log_text()[-2000:]


def test_update_secret(broker_url: str, against_rabbitmq: bool) -> None:
    c = RawClient(broker_url)
    c.handshake()
    c.send(0, commands.Connection.UpdateSecret(new_secret="guest", reason="rotation"))
    _, reply = c.recv()
    assert isinstance(reply, (commands.Connection.UpdateSecretOk, commands.Connection.Close))
    if not against_rabbitmq:
        assert isinstance(reply, commands.Connection.UpdateSecretOk)
    c.close()
