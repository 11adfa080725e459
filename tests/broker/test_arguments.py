"""Queue argument validation texts (RabbitMQ 3.10's, see .ci/RABBITMQ_BEHAVIOUR.md)."""

from __future__ import annotations

import pytest

from hutch.broker.arguments import validate_queue_args
from hutch.broker.users import check_password, hash_password
from hutch.errors import ChannelError


@pytest.mark.parametrize(("args", "detail"), [
    ({"x-max-length": -1}, "invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}"),
    ({"x-max-length": "abc"},
     "invalid arg 'x-max-length' for queue 'q' in vhost '/': \"expected integer, got longstr\""),
    ({"x-expires": 0}, "invalid arg 'x-expires' for queue 'q' in vhost '/': {value_zero,0}"),
    ({"x-overflow": "bogus"}, "invalid arg 'x-overflow' for queue 'q' in vhost '/': invalid_overflow"),
    ({"x-overflow": 1},
     "invalid arg 'x-overflow' for queue 'q' in vhost '/': {unacceptable_type,signedint}"),
    ({"x-max-priority": 300},
     "invalid arg 'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,300}"),
    ({"x-queue-type": "bogus"},
     "invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'bogus'\""),
    ({"x-dead-letter-routing-key": "k"},
     "invalid arg 'x-dead-letter-routing-key' for queue 'q' in vhost '/': routing_key_but_no_dlx_defined"),
    ({"x-dead-letter-exchange": 1},
     "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'"),
])
def test_invalid_arguments(args: dict, detail: str) -> None:
    with pytest.raises(ChannelError) as info:
        validate_queue_args("/", "q", True, False, False, args)
    assert info.value.code == 406
    assert info.value.text == "PRECONDITION_FAILED - " + detail


def test_quorum_rules() -> None:
    validate_queue_args("/", "q", True, False, False, {"x-queue-type": "quorum"})
    for durable, exclusive, auto_delete, prop in ((False, False, False, "non-durable"),
                                                  (True, True, False, "exclusive-owner"),
                                                  (True, False, True, "auto-delete")):
        with pytest.raises(ChannelError) as info:
            validate_queue_args("/", "q", durable, exclusive, auto_delete, {"x-queue-type": "quorum"})
        assert info.value.text == (f"PRECONDITION_FAILED - invalid property '{prop}' "
                                   "for queue 'q' in vhost '/'")


def test_unknown_x_arguments_are_accepted() -> None:
    validate_queue_args("/", "q", False, False, False, {"x-whatever": [1, "two"], "plain": True})


def test_password_hash_is_rabbitmq_sha256() -> None:
    # rabbitmqctl add_user hashprobe guest; export_definitions
    known = "uqKLw7AuKdPT8c21c5u7KM0WiFoqfUWzviLDGLzH0TapDdSn"  # exported by RabbitMQ 3.10
    assert check_password("guest", known)
    assert not check_password("guesT", known)
    h = hash_password("s3cret")
    assert check_password("s3cret", h) and not check_password("s3cre", h)
