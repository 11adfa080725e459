"""``hutch ctl`` set/clear/list_vhost_limits and set/clear/list_user_limits: rabbitmqctl
3.10's output and exit codes (recorded from a real node), and the effect on the broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.admin.test_ctl import ctl
from tests.mgmt import Api, seg

pytestmark = pytest.mark.hutch_only


@pytest.fixture
def names(api: Api) -> Iterator[tuple[str, str]]:
    vhost, user = f"limctl-{uuid.uuid4().hex[:8]}", f"limcu-{uuid.uuid4().hex[:8]}"
    api.ok("PUT", f"vhosts/{seg(vhost)}")
    api.ok("PUT", f"users/{seg(user)}", {"password": "pw", "tags": ""})
    try:
        yield vhost, user
    finally:
        api.delete(f"vhosts/{seg(vhost)}")
        api.delete(f"users/{seg(user)}")


def test_vhost_limits_commands(hutch_exe: list[str], http_url: str, api: Api,
                               names: tuple[str, str]) -> None:
    vhost, _ = names
    r = ctl(hutch_exe, http_url, "set_vhost_limits", "-p", vhost,
            '{"max-connections": -1, "max-queues": 0}')
    assert (r.returncode, r.stdout) == (0, f'Setting vhost limits to "{{"max-connections": -1, '
                                           f'"max-queues": 0}}" for vhost "{vhost}" ...\n')
    assert api.get(f"vhost-limits/{seg(vhost)}").json() == [
        {"vhost": vhost, "value": {"max-connections": -1, "max-queues": 0}}]
    r = ctl(hutch_exe, http_url, "list_vhost_limits", "--vhost", vhost)
    assert r.stdout == (f'Listing limits for vhost "{vhost}" ...\n'
                        '{"max-connections":-1,"max-queues":0}\n')
    r = ctl(hutch_exe, http_url, "-q", "list_vhost_limits", "--global")
    lines = r.stdout.splitlines()
    assert lines[0] == "vhost\tlimits"
    assert f'{vhost}\t{{"max-connections":-1,"max-queues":0}}' in lines
    # The whole set is replaced: max-connections goes.
    ctl(hutch_exe, http_url, "set_vhost_limits", "-p", vhost, '{"max-queues": 3}')
    assert api.get(f"vhost-limits/{seg(vhost)}").json()[0]["value"] == {"max-queues": 3}
    # Refusals: RabbitMQ's texts and exit codes.
    r = ctl(hutch_exe, http_url, "set_vhost_limits", "-p", vhost, '{"max-foo": 1}')
    assert r.returncode == 69
    assert r.stderr == ('Error:\nValidation failed\n\nUnrecognised terms [{<<"max-foo">>,1}] in '
                        'limits\n')
    r = ctl(hutch_exe, http_url, "set_vhost_limits", "-p", vhost, "nojson")
    assert (r.returncode, r.stderr) == (69, "Error:\nJSON decoding error. Reason: badarg\n")
    r = ctl(hutch_exe, http_url, "set_vhost_limits", "-p", f"no-{vhost}", '{"max-queues": 1}')
    assert (r.returncode, r.stderr) == (65, f"Error: Virtual host 'no-{vhost}' does not exist\n")
    r = ctl(hutch_exe, http_url, "clear_vhost_limits", "-p", vhost)
    assert (r.returncode, r.stdout) == (0, f'Clearing vhost "{vhost}" limits ...\n')
    assert api.get(f"vhost-limits/{seg(vhost)}").json() == []
    r = ctl(hutch_exe, http_url, "list_vhost_limits", "-p", vhost)
    assert r.stdout == f'Listing limits for vhost "{vhost}" ...\n\n'
    r = ctl(hutch_exe, http_url, "clear_vhost_limits", "-p", vhost)
    assert (r.returncode, r.stderr) == (69, "Error:\nParameter does not exist\n")


def test_user_limits_commands(hutch_exe: list[str], http_url: str, api: Api,
                              names: tuple[str, str]) -> None:
    _, user = names
    r = ctl(hutch_exe, http_url, "set_user_limits", user,
            '{"max-connections": 2, "max-channels": -1}')
    assert r.returncode == 0, r.stderr
    assert r.stdout == (f'Setting user limits to "{{"max-connections": 2, "max-channels": -1}}" '
                        f'for user "{user}" ...\n')
    r = ctl(hutch_exe, http_url, "list_user_limits", "--user", user)
    assert r.stdout.splitlines()[0] == f'Listing limits for user "{user}" ...'
    assert json.loads(r.stdout.splitlines()[1]) == {"max-connections": 2, "max-channels": -1}
    r = ctl(hutch_exe, http_url, "-q", "list_user_limits", "--global")
    assert r.stdout.splitlines()[0] == "user\tlimits"
    assert any(line.startswith(f"{user}\t") for line in r.stdout.splitlines())
    # Merged: max-connections stays.
    ctl(hutch_exe, http_url, "set_user_limits", user, '{"max-channels": 9}')
    assert api.get(f"user-limits/{seg(user)}").json()[0]["value"] == {"max-connections": 2,
                                                                      "max-channels": 9}
    r = ctl(hutch_exe, http_url, "clear_user_limits", user, "max-channels")
    assert (r.returncode, r.stdout) == (0, f'Clearing "max-channels" limit for user "{user}" ...\n')
    assert api.get(f"user-limits/{seg(user)}").json()[0]["value"] == {"max-connections": 2}
    r = ctl(hutch_exe, http_url, "clear_user_limits", user, "all")
    assert (r.returncode, r.stdout) == (0, f'Clearing all limits for user "{user}" ...\n')
    r = ctl(hutch_exe, http_url, "list_user_limits", "--user", user)
    assert r.stdout == f'Listing limits for user "{user}" ...\n{{}}\n'
    r = ctl(hutch_exe, http_url, "set_user_limits", user, '{"max-x": 2}')
    assert (r.returncode, r.stderr) == (69, 'Error:\nUnrecognised terms [{<<"max-x">>,2}] in '
                                            'user-limits\n')
    r = ctl(hutch_exe, http_url, "set_user_limits", user, '{"max-channels":"x"}')
    assert (r.returncode, r.stderr) == (69, 'Error:\nmax-channels should be a number, actually '
                                            'was <<"x">>\n')
    for args in (["set_user_limits", f"no-{user}", '{"max-connections": 2}'],
                 ["clear_user_limits", f"no-{user}", "all"],
                 ["list_user_limits", "--user", f"no-{user}"]):
        r = ctl(hutch_exe, http_url, *args)
        assert (r.returncode, r.stderr) == (69, f'Error:\n{{:no_such_user, "no-{user}"}}\n')
