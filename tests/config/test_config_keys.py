"""What a configuration file's keys do, without a broker: the table, the types, the
refusals and the warnings (test_serve_config.py checks the effects on a real broker)."""

from __future__ import annotations

import argparse

import pytest

from hutch.cli import build_parser
from hutch.config import ConfigError, load, load_text
from hutch.config.convert import information_unit
from hutch.config.keys import KEYS, matches
from hutch.config.rabbitmq_keys import RABBITMQ_KEYS


def _serve_dests() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest for a in sub.choices["serve"]._actions}


def test_every_key_sets_a_flag_of_hutch_serve() -> None:
    dests = _serve_dests()
    assert {k.dest for k in KEYS if k.dest is not None} <= dests


def test_every_key_is_rabbitmqs_or_in_hutchs_namespace() -> None:
    """A key Hutch invents outside ``hutch.`` could clash with a future RabbitMQ key."""
    for k in KEYS:
        if k.pattern.startswith("hutch."):
            continue
        # An exact key, or a pattern covering at least one of RabbitMQ's (keys.py's
        # `vm_memory_high_watermark.*` stands for .relative and .absolute).
        assert k.pattern in RABBITMQ_KEYS or any(
            matches(k.pattern, rk.replace("*", "x")) is not None for rk in RABBITMQ_KEYS), k


def test_unknown_key_refuses_with_cuttlefishs_words_and_the_line() -> None:
    with pytest.raises(ConfigError) as exc:
        load_text("heartbeat_typo = 10\n", "hutch.conf")
    assert str(exc.value) == "hutch.conf:1: Conf file attempted to set unknown variable: heartbeat_typo"


def test_rabbitmq_keys_hutch_lacks_are_warned_about_with_a_reason() -> None:
    loaded = load_text("cluster_formation.peer_discovery_backend = classic_config\n"
                       "mqtt.listeners.tcp.default = 1883\n"
                       "management.tcp.port = 15999\n", "r.conf")
    assert loaded.values == {"http_port": 15999}
    assert loaded.warnings == [
        "r.conf:1: cluster_formation.peer_discovery_backend is not supported and has no effect: "
        "Hutch is a single node; for a cluster, move to RabbitMQ",
        "r.conf:2: mqtt.listeners.tcp.default is not supported and has no effect: "
        "the rabbitmq_mqtt plugin is not part of Hutch"]


def test_a_bad_value_names_line_key_and_what_is_wanted() -> None:
    with pytest.raises(ConfigError) as exc:
        load_text("# x\nmanagement.tcp.port = 99999\n", "h.conf")
    assert str(exc.value) == ("h.conf:2: management.tcp.port: 99999 is out of range: "
                              "must be between 0 and 65535")
    with pytest.raises(ConfigError,
                       match=r"h.conf:1: hutch.sync: invalid value 'sometimes': one of always, none"):
        load_text("hutch.sync = sometimes\n", "h.conf")
    with pytest.raises(ConfigError, match="true or false"):
        load_text("hutch.in_memory = yes\n", "h.conf")


def test_an_authentication_backend_other_than_internal_refuses_to_start() -> None:
    assert load_text("auth_backends.1 = internal\n").values == {}
    with pytest.raises(ConfigError, match="only the internal user database"):
        load_text("auth_backends.1 = ldap\n")


def test_last_setting_wins_and_is_reported() -> None:
    loaded = load_text("max_message_size = 1000\nmax_message_size = 2000\n", "m.conf")
    assert loaded.values == {"max_message_size": 2000}
    assert loaded.origins == {"max_message_size": "m.conf:2"}
    assert loaded.warnings == ["m.conf:2: max_message_size is set again (line 1 is overridden)"]


@pytest.mark.parametrize(("text", "value"), [
    ("50000000", 50_000_000), ("50MB", 50_000_000), ("50M", 50_000_000), ("2GB", 2_000_000_000),
    ("1GiB", 1024**3), ("512MiB", 512 * 1024**2), ("10kB", 10_000), ("10Ki", 10 * 1024),
])
def test_information_units_as_rabbitmq_4(text: str, value: int) -> None:
    assert information_unit(text) == value


@pytest.mark.parametrize("text", ["", "1.5GB", "-1", "10 MB", "10XB", "GB"])
def test_bad_information_units(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        information_unit(text)


def test_a_missing_or_binary_file_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file: No such file"):
        load(str(tmp_path / "absent.conf"))
    bad = tmp_path / "bin.conf"
    bad.write_bytes(b"heartbeat = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(str(bad))


@pytest.mark.parametrize("prefix", ["ssl_options"])
def test_crl_check_true_refuses_to_start_false_is_accepted(prefix: str) -> None:
    """Ignoring it would accept revoked client certificates.  (RabbitMQ has the key for
    ssl_options only: management.ssl.crl_check is unknown to both and refused as such.)"""
    assert load_text(f"{prefix}.crl_check = false\n").warnings == []
    with pytest.raises(ConfigError, match="does not check certificate revocation lists"):
        load_text(f"{prefix}.crl_check = true\n")


@pytest.mark.parametrize(("line", "harmless"), [
    ("management.listener.ssl = true", "management.listener.ssl = false"),
    ("management.listener.ssl_opts.certfile = /etc/c.pem", None),
    ("management.disable_basic_auth = true", "management.disable_basic_auth = false"),
    ("prometheus.authentication.enabled = true", "prometheus.authentication.enabled = false"),
    ("credential_validator.min_length = 20", None),
    ("credential_validator.validation_backend = regexp",
     "credential_validator.validation_backend = accept_everything"),
    ("management.restrictions.operator_policy_changes.disabled = true",
     "management.restrictions.operator_policy_changes.disabled = false"),
    ("ssl_options.depth = 2", "ssl_options.depth = 100"),
    ("password_hashing_module = rabbit_password_hashing_sha512",
     "password_hashing_module = rabbit_password_hashing_sha256"),
    ("vhost_max = 10", "vhost_max = infinity"),
    ("consumer_max_per_channel = 5", "consumer_max_per_channel = infinity"),
])
def test_keys_that_would_leave_the_broker_more_open_refuse_to_start(line, harmless) -> None:
    """Warning and going on would run the broker more open than its file says (plain HTTP
    on the port meant for HTTPS, metrics without authentication, no password policy, no
    limit): such a key refuses unless it says what Hutch does anyway."""
    with pytest.raises(ConfigError, match="is not supported: "):
        load_text(line + "\n", "h.conf")
    if harmless:
        loaded = load_text(harmless + "\n", "h.conf")
        assert loaded.values == {} and loaded.warnings == []


def test_escaped_dots_are_part_of_one_segment() -> None:
    """cuttlefish reads ``loopback_users.app\\.user`` as the user ``app.user``."""
    loaded = load_text("loopback_users.app\\.user = true\n", "h.conf")
    assert loaded.warnings == []
    assert "app.user" in str(loaded.values)


def test_rabbitmq_4_name_of_connection_max() -> None:
    assert load_text("max_connections = 100\n").values == {"connection_max": 100}
