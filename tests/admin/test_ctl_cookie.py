"""`hutch ctl` on the broker's machine needs no password, like rabbitmqctl with the
Erlang cookie: the seeds fix a locked-out guest with `change_password guest guest`."""

from __future__ import annotations

import os
import stat
import subprocess

import pika
import pytest

from tests.brokerproc import HutchProcess
from tests.toolproc import hutch_cmd


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUTCH_")}
    return subprocess.run([*hutch_cmd(), "ctl", *args], capture_output=True, text=True, timeout=30,
                          env=env)


@pytest.mark.hutch_only
def test_locked_out_guest_is_fixed_with_change_password_like_the_seeds() -> None:
    proc = HutchProcess(http=True)
    proc.start()
    try:
        cookie = os.path.join(proc.data_dir, "ctl.cookie")
        assert stat.S_IMODE(os.stat(cookie).st_mode) == 0o600
        d = ("--data-dir", proc.data_dir)
        # Someone changed guest's password: the seeds' "PLAIN login refused".
        assert ctl(*d, "change_password", "guest", "s3cret").returncode == 0
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.URLParameters(proc.url))
        # Without the cookie, guest/guest is refused by the management API too.
        denied = ctl("--url", proc.http_url, "list_users")
        assert denied.returncode != 0 and "refused user 'guest'" in denied.stderr
        # With it (the broker's data dir, readable by its user only): no password needed.
        out = ctl(*d, "list_users")
        assert out.returncode == 0 and "guest\t[administrator]" in out.stdout
        assert ctl(*d, "change_password", "guest", "guest").returncode == 0
        pika.BlockingConnection(pika.URLParameters(proc.url)).close()
        # An explicit --user always means basic auth, cookie or not: refused by this
        # broker (its URL given, so the refusal cannot be "nobody listening").
        wrong = ctl(*d, "--url", proc.http_url, "--user", "guest", "--password", "nope",
                    "list_users")
        assert wrong.returncode == 77, wrong.stderr
        assert "refused user 'guest'" in wrong.stderr
    finally:
        proc.stop()
