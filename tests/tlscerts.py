"""Test certificates for the TLS tests (and for RabbitMQ in CI), made with ``cryptography``.

``python3 -m tests.tlscerts DIR`` writes them to DIR (``.ci/run`` does, for RabbitMQ):

  ca.pem / ca-key.pem                 the test CA
  server.pem / server-key.pem         CN=localhost, SAN localhost, 127.0.0.1, ::1 (by the CA)
  server2.pem / server2-key.pem       the same names, another key and serial (reload tests)
  client.pem / client-key.pem         CN=tls-client, O=Hutch Tests, C=SE (by the CA)
  expired.pem / expired-key.pem       CN=tls-client, expired yesterday (by the CA)
  other-ca.pem                        another CA
  other-client.pem / -key.pem         CN=tls-client, by the other CA
  other-server.pem / -key.pem         CN=localhost, by the other CA

EC P-256 keys: quick to generate, and every client and RabbitMQ speaks them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_CN = "tls-client"
CLIENT_DN = f"CN={CLIENT_CN},O=Hutch Tests,C=SE"  # as RabbitMQ prints the subject


@dataclass
class Certs:
    dir: str

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    @property
    def ca(self) -> str:
        return self.path("ca.pem")

    @property
    def other_ca(self) -> str:
        return self.path("other-ca.pem")

    def pair(self, name: str) -> tuple[str, str]:
        """(certfile, keyfile) of ``server``, ``client``, ``expired``, ..."""
        return self.path(f"{name}.pem"), self.path(f"{name}-key.pem")


def _name(cn: str, org: bool = False) -> x509.Name:
    attrs = []
    if org:
        attrs += [x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
                  x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hutch Tests")]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _write_key(path: str, key: ec.EllipticCurvePrivateKey) -> None:
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))


def _write_cert(path: str, cert: x509.Certificate) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], name: x509.Name, *,
          server: bool, expired: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=825)
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                        critical=False))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def make_certs(directory: str) -> Certs:
    """Write every file listed in the module docstring to ``directory``."""
    os.makedirs(directory, exist_ok=True)
    certs = Certs(directory)
    ca = _ca("Hutch Test CA")
    other = _ca("Hutch Other CA")
    _write_cert(certs.ca, ca[0])
    _write_key(certs.path("ca-key.pem"), ca[1])
    _write_cert(certs.other_ca, other[0])
    leaves = {
        "server": _leaf(ca, _name("localhost"), server=True),
        "server2": _leaf(ca, _name("localhost"), server=True),
        "client": _leaf(ca, _name(CLIENT_CN, org=True), server=False),
        "expired": _leaf(ca, _name(CLIENT_CN, org=True), server=False, expired=True),
        "other-client": _leaf(other, _name(CLIENT_CN, org=True), server=False),
        "other-server": _leaf(other, _name("localhost"), server=True),
    }
    for name, (cert, key) in leaves.items():
        certfile, keyfile = certs.pair(name)
        _write_cert(certfile, cert)
        _write_key(keyfile, key)
        os.chmod(keyfile, 0o644)  # RabbitMQ in CI runs as another user and must read it
    return certs


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 -m tests.tlscerts DIR")
    make_certs(sys.argv[1])
    print(sys.argv[1])
