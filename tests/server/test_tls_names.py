"""The user name EXTERNAL takes from a client certificate's subject, byte for byte as
RabbitMQ prints it (rabbit_cert_info:subject/1).  The expected strings were produced by
RabbitMQ 3.10.8's own formatter (run in `erl`) on certificates with these subjects; the
subjects are what Python's ``getpeercert()`` gives for them."""

from __future__ import annotations

import pytest

from hutch.server.tls import common_names, distinguished_name

CASES = [
    ((("countryName", "SE"),), (("streetAddress", "Main St 1"),), (("commonName", "u1"),)),
    ((("businessCategory", "Bank"),), (("commonName", "u2"),)),
    ((("postalCode", "12345"),), (("commonName", "u3"),)),
    ((("organizationName", "Bjärne Ltd"),), (("commonName", "ålice"),)),
    ((("organizationalUnitName", "#ops, team+x"),), (("commonName", ' a"b;c<d>e\\ '),)),
    ((("commonName", "m1"), ("userId", "uid1")), (("domainComponent", "example"),)),
    ((("emailAddress", "a@b.c"),), (("serialNumber", "42"),), (("commonName", "u4"),)),
    ((("1.2.3.4.5", "custom"),), (("commonName", "u5"),)),
    ((("dnQualifier", "q1"),), (("organizationIdentifier", "VATSE-1"),), (("commonName", "u6"),)),
]
RABBITMQ = [
    "CN=u1,2.5.4.9=Main St 1,C=SE",
    "CN=u2,2.5.4.15=Bank",
    "CN=u3,2.5.4.17=12345",
    "CN=\\C3\\A5lice,O=Bj\\C3\\A4rne Ltd",
    'CN=\\ a\\"b\\;c\\<d\\>e\\\\\\ ,OU=\\#ops\\, team\\+x',
    "DC=example,CN=m1+UID=uid1",
    "CN=u4,SERIALNUMBER=42,EMAILADDRESS=a@b.c",
    "CN=u5,1.2.3.4.5=custom",
    "CN=u6,2.5.4.97=VATSE-1,2.5.4.46=q1",
]


@pytest.mark.parametrize(("subject", "expected"), list(zip(CASES, RABBITMQ, strict=True)),
                         ids=["street", "business", "postal", "unicode", "escapes", "multi",
                              "email", "unknown-oid", "dn-qualifier"])
def test_distinguished_name_as_rabbitmq(subject, expected):
    assert distinguished_name({"subject": subject}) == expected


def test_common_name():
    assert common_names({"subject": CASES[0]}) == ["u1"]
