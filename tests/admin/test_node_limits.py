"""Node-wide connection settings (connection_max, channel_max, frame_max, heartbeat,
handshake_timeout) from a real rabbitmq.conf file and from flags, checked by their
effect on real connections; limits kept across a restart.

Hutch only: these are node settings of a broker the test starts itself (RabbitMQ's
connection_max and friends are config-only, and the shared RabbitMQ is not ours to
reconfigure).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import pika
import pika.exceptions
import pytest
import requests

from tests.brokerproc import HutchProcess

pytestmark = pytest.mark.hutch_only

ALL = {"configure": ".*", "write": ".*", "read": ".*"}


def _params(port: int, vhost: str = "/", **kw: Any) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(host="127.0.0.1", port=port, virtual_host=vhost,
                                     connection_attempts=1, **kw)


def _silent_socket_lifetime(port: int, send: bytes = b"") -> float:
    """Seconds until the broker closes a socket that never completes the handshake."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        if send:
            s.sendall(send)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    return time.monotonic() - started


def test_connection_settings_from_a_config_file(tmp_path) -> None:
    conf = tmp_path / "hutch.conf"
    conf.write_text("connection_max = 2\n"
                    "channel_max = 5\n"
                    "frame_max = 8KB\n"
                    "heartbeat = 7\n"
                    "handshake_timeout = 400\n")
    proc = HutchProcess("--config", str(conf), "--in-memory", http=True)
    proc.start()
    held: list[pika.BlockingConnection] = []
    try:
        # What pika negotiated: the server's lower values win over pika's defaults
        # (65535 channels, 131072-byte frames, the server's heartbeat).
        held.append(pika.BlockingConnection(_params(proc.port)))
        params = held[0]._impl.params
        assert (params.channel_max, params.frame_max, params.heartbeat) == (5, 8192, 7)
        info = requests.get(proc.http_url + "api/connections", auth=("guest", "guest"),
                            timeout=5).json()
        assert [(c["channel_max"], c["frame_max"], c["timeout"]) for c in info] == [(5, 8192, 7)]
        # A client that asks for less gets less.
        held.append(pika.BlockingConnection(_params(proc.port, channel_max=3, heartbeat=0)))
        assert held[1]._impl.params.channel_max == 3
        # connection_max = 2: a third connection is refused at connection.open.
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info_:
            pika.BlockingConnection(_params(proc.port))
        assert ("(530) 'NOT_ALLOWED - connection refused: node connection limit (2) is "
                "reached'") in str(info_.value)
        held.pop().close()
        held.append(pika.BlockingConnection(_params(proc.port)))
        held.pop().close()
        # handshake_timeout = 400 ms: a socket that says nothing, or only the protocol
        # header, is closed soon after (the default is 10 s).
        assert 0.3 < _silent_socket_lifetime(proc.port) < 3
        assert 0.3 < _silent_socket_lifetime(proc.port, b"AMQP\x00\x00\x09\x01") < 3
        assert proc.wait_for_log("handshake timeout")
        # A frame larger than the negotiated 8192 bytes still arrives split by pika.
        ch = held[0].channel()
        ch.queue_declare("big")
        ch.basic_publish("", "big", b"x" * 50000)
        _m, _p, body = ch.basic_get("big", auto_ack=True)
        assert body == b"x" * 50000
    finally:
        for c in held:
            if c.is_open:
                c.close()
        proc.stop()


def _serve_fails(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "hutch", "serve", "--port", "0", "--http-port", "0",
                        "--prometheus-port", "0", "--in-memory", *args],
                       capture_output=True, text=True, timeout=30, env=dict(os.environ))
    assert r.returncode != 0, r.stdout + r.stderr
    return r.stderr


@pytest.mark.parametrize(("args", "text"), [
    (["--channel-max", "70000"], "invalid channel_max '70000': an integer from 0 (no limit) to "
                                 "65535"),
    (["--frame-max", "100"], "invalid frame_max '100': 0 (no limit) or a number of bytes"),
    (["--heartbeat", "-1"], "invalid heartbeat '-1'"),
    (["--connection-max", "many"], "invalid connection_max 'many': a non-negative integer or "
                                   "'infinity'"),
    (["--handshake-timeout", "0"], "invalid handshake_timeout '0'"),
])
def test_bad_flag_values_refuse_to_start(args: list[str], text: str) -> None:
    assert text in _serve_fails(*args)


def test_bad_file_values_refuse_to_start(tmp_path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("heartbeat = 30\nframe_max = 1000\n")
    err = _serve_fails("--config", str(conf))
    assert f"{conf}:2" in err and "invalid frame_max '1000'" in err


def test_limits_survive_a_restart() -> None:
    proc = HutchProcess(http=True)
    proc.start()
    vhost, user = f"lim-{uuid.uuid4().hex[:8]}", f"limuser-{uuid.uuid4().hex[:8]}"
    try:
        api = proc.http_url + "api/"
        auth = ("guest", "guest")

        def put(path: str, body: Any) -> None:
            r = requests.put(api + path, json=body, auth=auth, timeout=5)
            assert r.status_code < 300, r.text

        put(f"vhosts/{vhost}", {})
        put(f"permissions/{vhost}/guest", ALL)
        put(f"users/{user}", {"password": "pw", "tags": ""})
        put(f"vhost-limits/{vhost}/max-queues", {"value": 1})
        put(f"vhost-limits/{vhost}/max-connections", {"value": 5})
        put(f"user-limits/{user}/max-channels", {"value": 2})
        proc.stop()
        proc.start()
        api = proc.http_url + "api/"
        got = requests.get(api + f"vhost-limits/{vhost}", auth=auth, timeout=5).json()
        assert got == [{"vhost": vhost, "value": {"max-queues": 1, "max-connections": 5}}]
        got = requests.get(api + f"user-limits/{user}", auth=auth, timeout=5).json()
        assert got == [{"user": user, "value": {"max-channels": 2}}]
        conn = pika.BlockingConnection(_params(proc.port, vhost))
        try:
            ch = conn.channel()
            ch.queue_declare("one", durable=True)
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                ch.queue_declare("two")
            assert info.value.reply_code == 406
        finally:
            conn.close()
    finally:
        proc.stop()
