"""TLS setups other than the shared one of test_tls.py, on private Hutch processes:
several listeners, a required client certificate, EXTERNAL by CN, TLS 1.2 with
a cipher list, HTTPS management and Prometheus, SIGHUP reload, bad settings.

hutch_only: each needs its own broker configuration (RabbitMQ's in CI has one).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from base64 import b64encode

import pika
import pika.credentials
import pika.exceptions
import pytest
from pamqp import commands as cmd

from tests.brokerproc import HutchProcess, free_port
from tests.integration.rawamqp import CLIENT_PROPERTIES, PROTOCOL_HEADER, RawConnection
from tests.integration.tlshelp import TlsBroker, connection_start, hutch_tls_args
from tests.tlscerts import CLIENT_CN, make_certs

pytestmark = pytest.mark.hutch_only


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="hutch-tls-")
    yield make_certs(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def strict(certs):
    """Plain AMQP on two explicit addresses, AMQPS requiring a client certificate
    (TLS 1.2, one cipher), EXTERNAL by CN, HTTPS-only management and Prometheus."""
    p1, p2, https, prom = free_port(), free_port(), free_port(), free_port()
    cert, key = certs.pair("server")
    https_args = []
    for flag in ("http-tls", "prometheus-tls"):
        https_args += [f"--{flag}-certfile", cert, f"--{flag}-keyfile", key]
    proc = HutchProcess(
        "--listen", f"127.0.0.1:{p1}", "--listen", f"[::1]:{p2}",
        *hutch_tls_args(certs, "--tls-fail-if-no-peer-cert", "true",
                        "--tls-versions", "tlsv1.2", "--tls-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256",
                        "--auth-mechanisms", "EXTERNAL,PLAIN", "--ssl-cert-login-from", "common_name"),
        "--http-tls-port", str(https), "--prometheus-tls-port", str(prom), *https_args)
    proc.start()
    proc.listen_ports = (p1, p2)  # type: ignore[attr-defined]
    proc.https_port, proc.prom_https_port = https, prom  # type: ignore[attr-defined]
    yield TlsBroker(certs, proc.tls_port, "", proc)
    proc.stop()
    assert "Traceback" not in proc.log_text(), proc.log_text()


def test_several_plain_listeners(strict):
    p1, p2 = strict.proc.listen_ports
    ready = next(line for line in strict.proc.log_lines if " ready: " in line)
    assert f"amqp://guest:guest@localhost:{p1}/" in ready
    assert f"amqps://localhost:{strict.tls_port}/" in ready
    assert f"127.0.0.1:{p1}" in ready and f"[::1]:{p2}" in ready
    for host, port in (("127.0.0.1", p1), ("::1", p2)):
        conn = pika.BlockingConnection(pika.ConnectionParameters(host, port))
        conn.channel().queue_declare("", exclusive=True)
        conn.close()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.ConnectionParameters("::1", p1, connection_attempts=1))


def test_client_certificate_required(strict):
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, ConnectionError)):
        conn = pika.BlockingConnection(strict.pika_params(strict.client_context()))
        conn.channel()  # pragma: no cover
    assert strict.proc.wait_for_log("PEER_DID_NOT_RETURN_A_CERTIFICATE")
    conn = pika.BlockingConnection(strict.pika_params(strict.client_context("client")))
    conn.channel().queue_declare("", exclusive=True)
    conn.close()


def test_versions_and_ciphers(strict):
    """tlsv1.2 only, with the one cipher configured; a TLS 1.3-only client is refused."""
    import socket

    ctx = strict.client_context("client")
    with socket.create_connection(("127.0.0.1", strict.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == "TLSv1.2"
            assert s.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    ctx13 = strict.client_context("client")
    ctx13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", strict.tls_port), timeout=5) as raw:
            ctx13.wrap_socket(raw, server_hostname="localhost").close()


def test_external_by_common_name_and_mechanisms(strict):
    assert connection_start(strict.tls_port, strict.client_context("client")) == b"PLAIN EXTERNAL"
    # EXTERNAL is not offered, nor accepted, on plain TCP.
    assert connection_start(strict.proc.listen_ports[0], None) == b"PLAIN"
    # (pika will not even try: a raw start-ok.  RabbitMQ closes the socket after 3 s
    # here; Hutch sends connection.close 503 with the same text, as for its other
    # handshake errors.)
    with RawConnection(f"amqp://guest:guest@127.0.0.1:{strict.proc.listen_ports[0]}/") as raw:
        raw.send_bytes(PROTOCOL_HEADER)
        raw.expect(0, cmd.Connection.Start)
        raw.send(0, cmd.Connection.StartOk(client_properties=CLIENT_PROPERTIES,
                                           mechanism="EXTERNAL", response="", locale="en_US"))
        close = raw.expect_connection_close()
    assert (close.reply_code, close.reply_text) == (
        503, "COMMAND_INVALID - invalid authentication mechanism 'EXTERNAL'")
    # A CN naming no user is refused; once the user exists, the certificate logs in.
    ext = pika.credentials.ExternalCredentials()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(strict.pika_params(strict.client_context("client"), ext))
    assert strict.proc.wait_for_log(f"EXTERNAL login refused: user '{CLIENT_CN}' - invalid")
    ctl = [sys.executable, "-m", "hutch", "ctl", "--data-dir", strict.proc.data_dir]
    for args in (["add_user", CLIENT_CN, "unused-password"],
                 ["set_permissions", CLIENT_CN, ".*", ".*", ".*"]):
        subprocess.run(ctl + args, check=True, capture_output=True, timeout=30)
    conn = pika.BlockingConnection(strict.pika_params(strict.client_context("client"), ext))
    conn.channel().queue_declare("", exclusive=True)
    conn.close()


def _https_get(url: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    req.add_header("Authorization", "Basic " + b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        return resp.status, resp.read()


def test_https_management_and_prometheus(strict):
    ctx = ssl.create_default_context(cafile=strict.certs.ca)
    assert strict.proc.https_url == f"https://127.0.0.1:{strict.proc.https_port}/"
    assert strict.proc.http_url == ""  # management.ssl without management.tcp: HTTPS only
    status, body = _https_get(strict.proc.https_url + "api/overview", ctx)
    assert status == 200
    listeners = {(x["protocol"], x["port"]) for x in json.loads(body)["listeners"]}
    assert ("amqp/ssl", strict.tls_port) in listeners
    assert ("https", strict.proc.https_port) in listeners
    conn = pika.BlockingConnection(strict.pika_params(strict.client_context("client")))
    try:
        conns = json.loads(_https_get(strict.proc.https_url + "api/connections", ctx)[1])
        assert [c["ssl"] for c in conns if c["port"] == strict.tls_port] == [True]
    finally:
        conn.close()
    status, body = _https_get(f"https://127.0.0.1:{strict.proc.prom_https_port}/metrics", ctx)
    assert status == 200 and b"rabbitmq_identity_info" in body
    # A client that does not trust the CA is refused, and the listener logs one line.
    with pytest.raises(urllib.error.URLError):
        _https_get(strict.proc.https_url + "api/overview", ssl.create_default_context(
            cafile=strict.certs.other_ca))
    assert strict.proc.wait_for_log("management HTTPS TLS handshake from")


def _peer_cert(port: int, ca: str) -> bytes:
    import socket

    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def _der(pem_path: str) -> bytes:
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_sighup_reloads_certificates_without_dropping_connections(certs, tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    shutil.copy(certs.path("server.pem"), cert)
    shutil.copy(certs.path("server-key.pem"), key)
    proc = HutchProcess("--tls-port", "0", "--tls-certfile", cert, "--tls-keyfile", key)
    proc.start()
    try:
        broker = TlsBroker(certs, proc.tls_port, "", proc)
        before = pika.BlockingConnection(broker.pika_params(broker.client_context()))
        ch = before.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        assert _peer_cert(proc.tls_port, certs.ca) == _der(certs.path("server.pem"))
        shutil.copy(certs.path("server2.pem"), cert)
        shutil.copy(certs.path("server2-key.pem"), key)
        proc.proc.send_signal(signal.SIGHUP)
        assert proc.wait_for_log("TLS certificates for AMQP reloaded")
        assert _peer_cert(proc.tls_port, certs.ca) == _der(certs.path("server2.pem"))
        # The connection opened before the reload is still up and works.
        ch.basic_publish("", q, b"after reload")
        assert ch.basic_get(q, auto_ack=True)[2] == b"after reload"
        # A reload that fails keeps the certificates in use and says so in one line.
        with open(cert, "w") as f:
            f.write("not a certificate\n")
        proc.proc.send_signal(signal.SIGHUP)
        assert proc.wait_for_log("TLS certificate reload for AMQP failed, keeping the previous")
        assert _peer_cert(proc.tls_port, certs.ca) == _der(certs.path("server2.pem"))
        ch.basic_publish("", q, b"still")
        assert ch.basic_get(q, auto_ack=True)[2] == b"still"
        before.close()
    finally:
        proc.stop()
    assert "Traceback" not in proc.log_text()
    assert proc.log_text().count("TLS certificate reload for AMQP failed") == 1


def test_tls_only(certs):
    cert, key = certs.pair("server")
    proc = HutchProcess("--listen", "none", "--tls-port", "0", "--tls-certfile", cert,
                        "--tls-keyfile", key)
    proc.start()
    try:
        ready = next(line for line in proc.log_lines if " ready: " in line)
        assert "amqp://" not in ready and f"amqps://localhost:{proc.tls_port}/" in ready
        broker = TlsBroker(certs, proc.tls_port, "", proc)
        conn = pika.BlockingConnection(broker.pika_params(broker.client_context()))
        conn.close()
    finally:
        proc.stop()


@pytest.mark.parametrize(("args", "message"), [
    (["--tls-versions", "tlsv1.1"], "TLS version 'tlsv1.1' is not supported"),
    (["--tls-ciphers", "NO-SUCH-CIPHER"], "unknown cipher 'NO-SUCH-CIPHER'"),
    # OpenSSL drops an unknown name from a list without a word; Erlang refuses it.
    (["--tls-ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384,NO-SUCH-CIPHER"],
     "unknown cipher 'NO-SUCH-CIPHER'"),
    (["--tls-ciphers", "TLS_AES_256_GCM_SHA384"], "lists only TLS 1.3 suites while tlsv1.2"),
    # Erlang refuses both combinations: the first would let clients in without a
    # certificate, the second refuse every certificate.
    (["--tls-fail-if-no-peer-cert", "true"], "fail_if_no_peer_cert = true needs verify = verify_peer"),
    (["--tls-verify", "verify_peer"], "verify = verify_peer needs cacertfile"),
    # OpenSSL would ask for the pass phrase on the terminal (blocking the loop).
    (["--tls-keyfile", "{encrypted-key}"], "cannot load TLS certificate"),
    (["--tls-certfile", "/nonexistent/cert.pem"], "cannot read TLS certificate/key"),
    (["--tls-keyfile", "{other-key}"], "cannot load TLS certificate"),
    (["--tls-verify", "verify_maybe"], "invalid verify value"),
    (["--listen", "[::1:5672"], "invalid listener"),
    (["--auth-mechanisms", "PLAIN,CRAM-MD5"], "unsupported authentication mechanism"),
], ids=["old-version", "cipher", "cipher-in-a-list", "tls13-only-ciphers-with-tls12",
        "fail-without-verify", "verify-without-ca", "encrypted-key-no-password", "missing-cert",
        "key-mismatch", "verify", "listener", "mechanism"])
def test_bad_tls_settings_stop_the_start_with_one_line(certs, args, message, tmp_path):
    cert, key = certs.pair("server")
    encrypted = tmp_path / "server-key-encrypted.pem"
    encrypted.write_bytes(_encrypted_key(key, b"S3cret"))
    args = [a.replace("{other-key}", certs.path("client-key.pem"))
            .replace("{encrypted-key}", str(encrypted)) for a in args]
    base = ["--tls-port", "0", "--tls-certfile", cert, "--tls-keyfile", key]
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "hutch", "serve", "--port", "0", "--http-port",
                          "0", "--prometheus-port", "0", "--in-memory", *base, *args],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def _encrypted_key(key_path: str, password: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(password))


def test_an_encrypted_key_with_its_password_and_tls13_suites(certs, tmp_path):
    """ssl_options.password opens an encrypted key; TLS 1.3 suite names (RabbitMQ's ssl.md
    example for versions = tlsv1.3) start the broker, with a warning that Python's ssl
    offers OpenSSL's TLS 1.3 defaults."""
    cert, key = certs.pair("server")
    encrypted = tmp_path / "key.pem"
    encrypted.write_bytes(_encrypted_key(key, b"S3cret"))
    proc = HutchProcess("--in-memory", "--tls-port", "0", "--tls-certfile", cert, "--tls-keyfile",
                        str(encrypted), "--tls-password", "S3cret", "--tls-versions", "tlsv1.3",
                        "--tls-ciphers", "TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256")
    proc.start()
    try:
        broker = TlsBroker(certs, proc.tls_port, "", proc)
        conn = pika.BlockingConnection(broker.pika_params(broker.client_context()))
        conn.close()
        assert "TLS 1.3 cipher suites (TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256) cannot " \
               "be chosen" in proc.log_text()
    finally:
        proc.stop()


def test_config_file_tls_keys(certs, tmp_path):
    """A real rabbitmq.conf with the TLS keys, loaded by ``hutch serve --config``."""
    plain, amqps, https, prom = free_port(), free_port(), free_port(), free_port()
    cert, key = certs.pair("server")
    conf = tmp_path / "hutch.conf"
    conf.write_text(f"""
listeners.tcp.local = 127.0.0.1:{plain}
listeners.ssl.default = {amqps}
ssl_options.cacertfile = {certs.ca}
ssl_options.certfile = {cert}
ssl_options.keyfile = {key}
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
ssl_options.ciphers.1 = ECDHE-ECDSA-AES256-GCM-SHA384
ssl_options.honor_cipher_order = true
ssl_options.honor_ecc_order = true
ssl_handshake_timeout = 3000
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = EXTERNAL
ssl_cert_login_from = common_name
management.ssl.port = {https}
management.ssl.ip = 127.0.0.1
management.ssl.certfile = {cert}
management.ssl.keyfile = {key}
prometheus.ssl.port = {prom}
prometheus.ssl.certfile = {cert}
prometheus.ssl.keyfile = {key}
""")
    # --http-port 0 / --prometheus-port 0 only turn the plain HTTP listeners off; no
    # --port: a flag would win over the file's listeners.tcp.
    data = str(tmp_path / "data")
    proc = HutchProcess("--config", str(conf), "--http-port", "0", "--prometheus-port", "0",
                        "--data-dir", data, data_dir=data, base_flags=False)
    proc.start()
    try:
        assert proc.port == plain and proc.tls_port == amqps
        assert proc.wait_for_log("ssl_options.honor_ecc_order is not supported")
        broker = TlsBroker(certs, amqps, "", proc)
        # listeners.ssl.default = PORT listens on every interface, as RabbitMQ's.
        assert f"TLS 0.0.0.0:{amqps}" in next(x for x in proc.log_lines if " ready: " in x)
        assert connection_start(amqps, broker.client_context("client")) == b"PLAIN EXTERNAL"
        assert connection_start(plain, None) == b"PLAIN"
        ctl = [sys.executable, "-m", "hutch", "ctl", "--data-dir", proc.data_dir]
        for args in (["add_user", CLIENT_CN, "unused-password"],
                     ["set_permissions", CLIENT_CN, ".*", ".*", ".*"]):
            subprocess.run(ctl + args, check=True, capture_output=True, timeout=30)
        conn = pika.BlockingConnection(broker.pika_params(
            broker.client_context("client"), pika.credentials.ExternalCredentials()))
        conn.channel().queue_declare("", exclusive=True)
        conn.close()
        ctx = ssl.create_default_context(cafile=certs.ca)
        assert proc.https_url == f"https://127.0.0.1:{https}/"
        assert _https_get(proc.https_url + "api/overview", ctx)[0] == 200
        assert _https_get(f"https://localhost:{prom}/metrics", ctx)[0] == 200
    finally:
        proc.stop()
    assert "Traceback" not in proc.log_text()


def test_config_file_refuses_an_old_tls_version(certs, tmp_path):
    conf = tmp_path / "hutch.conf"
    conf.write_text("listeners.ssl.default = 5999\nssl_options.versions.1 = tlsv1.1\n")
    out = subprocess.run([sys.executable, "-m", "hutch", "serve", "--config", str(conf),
                          "--in-memory", "--port", "0", "--http-port", "0", "--prometheus-port",
                          "0"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert f"{conf}:2: ssl_options.versions.1: TLS version 'tlsv1.1' is not supported" in \
        out.stderr, out.stderr
