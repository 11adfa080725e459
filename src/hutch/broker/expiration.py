"""The ``expiration`` property of a published message, checked as RabbitMQ 3.10 does.

RabbitMQ (rabbit_channel:check_expiration_header -> rabbit_basic:parse_expiration ->
rabbit_misc:check_expiry) reads the property with Erlang's ``string:to_integer``: an
optional sign, ASCII digits, nothing after them.  It must be 0 .. 315,360,000,000 ms
(ten years, the ``?MAX_EXPIRY_TIMER`` of 3.10.8).  Anything else closes the channel
with 406 and the text ``invalid expiration '<value>': <reason>``, where the reason is
an Erlang term printed with ``~p``:

    no_integer                     "abc", "", " 5", "+"
    {leftover_string,"..."}        "5 ", "1.5", "1_000" (a list of bytes if not printable)
    {value_negative,-1}            "-1"
    {value_too_large,N}            "315360000001", "20000000000000000000"

``~p`` breaks a term that would run past column 78, so long values put the number on
a second line indented under the brace; that is reproduced here byte for byte (checked
against RabbitMQ 3.10.8 in tests/integration/test_expiration.py).

Checking the range before anything is queued matters: a larger value used to pass,
overflow the store's 64-bit expiry field after the body had been counted by the
memory alarm, and leave the alarm raised for good.
"""

from __future__ import annotations

from ..errors import ChannelError
from ..protocol import constants as rc

# rabbit_misc:check_expiry's bound in 3.10.8 (read from its compiled code).
MAX_EXPIRY_MS = 315_360_000_000
# io_lib_pretty keeps a term on its line while it ends by this column.
_LINE_END = 78
_PRINTABLE = frozenset(range(32, 127)) | frozenset(range(160, 256)) | {8, 9, 10, 11, 12, 13, 27}
_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v",
            8: "\\b", 12: "\\f", 27: "\\e"}


def parse_expiration(value: str) -> int:
    """The per-message TTL in milliseconds, or ChannelError 406 with RabbitMQ's text.

    ``value`` is the property as decoded by codec.decode_shortstr (bytes that are not
    UTF-8 are escaped), so the text quotes exactly the bytes the client sent."""
    raw = value.encode("utf-8", "surrogateescape")
    i = 1 if raw[:1] in (b"+", b"-") else 0
    j = i
    while j < len(raw) and 48 <= raw[j] <= 57:  # ASCII digits only, as Erlang's
        j += 1
    reason: tuple[str, int | bytes] | str
    if j == i:
        reason = "no_integer"
    elif j < len(raw):
        reason = ("leftover_string", raw[j:])
    else:
        n = int(raw[:j])
        if n < 0:
            reason = ("value_negative", n)
        elif n > MAX_EXPIRY_MS:
            reason = ("value_too_large", n)
        else:
            return n
    prefix = b"invalid expiration '" + raw + b"': "
    text = prefix + _pretty(reason, len(prefix)).encode("latin-1")
    # The bytes go on the wire as they are (RabbitMQ's ~s of a binary): a str that
    # encodes back to them (errors.truncate_reply and the encoders use surrogateescape).
    raise ChannelError(rc.PRECONDITION_FAILED, text.decode("utf-8", "surrogateescape"))


def _pretty(reason: tuple[str, int | bytes] | str, column: int) -> str:
    """``io_lib:format("~p", [Reason])`` starting at ``column`` (latin-1 chars)."""
    if isinstance(reason, str):
        return reason
    tag, value = reason
    if isinstance(value, int):
        inner = str(value)
    elif all(b in _PRINTABLE for b in value):
        inner = '"' + "".join(_ESCAPES.get(b, chr(b)) for b in value) + '"'
    else:  # not a printable string: Erlang prints the list of byte values
        inner = "[" + ",".join(str(b) for b in value) + "]"
    one_line = "{" + tag + "," + inner + "}"
    if column + len(one_line) <= _LINE_END:
        return one_line
    # Too long: the tag stays, the value goes on the next line under the brace.  (For a
    # long list of non-printable bytes Erlang also folds the list itself; not copied.)
    return "{" + tag + ",\n" + " " * (column + 1) + inner + "}"
