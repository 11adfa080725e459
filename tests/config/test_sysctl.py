"""The rabbitmq.conf format (cuttlefish's sysctl syntax) as Hutch parses it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hutch.config.sysctl import ConfigError, Entry, parse


def test_settings_comments_blanks_and_inline_comments() -> None:
    text = ("# RabbitMQ's own sample starts like this\n"
            "\n"
            "listeners.tcp.default = 5672\n"
            "   management.tcp.port=15672   # the UI\n"
            "\tlog.file.level\t=\tdebug\n")
    assert parse(text) == [Entry("listeners.tcp.default", "5672", 3),
                           Entry("management.tcp.port", "15672", 4),
                           Entry("log.file.level", "debug", 5)]


def test_quoted_value_keeps_hash_and_blanks() -> None:
    assert parse("default_pass = ' a#b '  # comment\n") == [Entry("default_pass", " a#b ", 1)]


def test_crlf_bom_hyphen_and_escaped_dot_in_keys() -> None:
    text = "\ufeffloopback_users.my-user = false\r\nx.a\\.b = 1\r\n"
    assert parse(text) == [Entry("loopback_users.my-user", "false", 1), Entry("x.a\\.b", "1", 2)]


def test_a_key_set_twice_appears_twice_in_file_order() -> None:
    assert [e.value for e in parse("heartbeat = 10\nheartbeat = 20\n")] == ["10", "20"]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("heartbeat 10\n", 1, "expected 'key = value'"),
    ("# ok\nheartbeat =\n", 2, "has no value"),
    ("a = 1\n\nheart beat = 2\n", 3, "invalid key"),
    ("default_pass = 'open\n", 1, "no closing quote"),
    ("default_pass = 'a' b\n", 1, "unexpected text after the quoted value"),
    ("x..y = 1\n", 1, "invalid key"),
    ("= 1\n", 1, "invalid key"),
    ("include /etc/rabbitmq/conf.d/*.conf\n", 1, "include is not supported"),
])
def test_errors_name_the_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(text, "/etc/hutch/hutch.conf")
    assert exc.value.line == line
    assert str(exc.value).startswith(f"/etc/hutch/hutch.conf:{line}: ")
    assert words in str(exc.value)


_segment = st.from_regex(r"[A-Za-z0-9_\-]{1,8}", fullmatch=True)
_key = st.lists(_segment, min_size=1, max_size=4).map(".".join)
# A value as an operator writes it: no '#', no quote first, no blanks or line breaks at
# either end (the parser strips those), no line-breaking characters inside.
_EDGE = r"[^#'\s\x00-\x1f\x7f\x85\x1c-\x1e\u2028\u2029]"
_INNER = r"[^#\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"
_plain = st.from_regex(rf"{_EDGE}({_INNER}*{_EDGE})?", fullmatch=True)


@given(st.lists(st.tuples(_key, _plain, st.booleans()), max_size=8))
def test_written_settings_read_back(settings: list[tuple[str, str, bool]]) -> None:
    """Any key/value written as a line (with or without a trailing comment) reads back."""
    lines = [f"{k} = {v}" + ("  # note" if comment else "") for k, v, comment in settings]
    parsed = parse("\n".join(lines) + "\n")
    assert [(e.key, e.value) for e in parsed] == [(k, v) for k, v, _ in settings]
