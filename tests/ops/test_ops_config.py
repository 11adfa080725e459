"""The ops keys from real configuration files, checked by their effect on a real
``hutch serve``: contrib/hutch.conf loads cleanly and works; log.*, default_*,
loopback_users.*, definitions.* from a file; ``hutch ctl environment`` shows each
setting's value and source.  Hutch-only: node configuration (see test_first_start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pika
import pytest
import requests

from hutch.config import load
from tests.brokerproc import HutchProcess
from tests.ops.test_first_start import connect, non_loopback_address, refused
from tests.ops.test_logs import LINE

pytestmark = pytest.mark.hutch_only

SAMPLE = Path(__file__).resolve().parents[2] / "contrib" / "hutch.conf"


def ctl(proc: HutchProcess, user: str, password: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hutch", "ctl", "--url", proc.http_url,
                           "--user", user, "--password", password, *args],
                          capture_output=True, text=True, timeout=30)


def line_of(path: Path, key: str) -> int:
    """The line setting ``key`` (or, ending in '.', the first key under it)."""
    for number, text in enumerate(path.read_text().splitlines(), 1):
        name = text.split("=")[0].strip()
        if name == key or (key.endswith(".") and name.startswith(key)):
            return number
    raise KeyError(key)


def test_the_sample_file_loads_cleanly_and_takes_effect(tmp_path: Path) -> None:
    assert load(str(SAMPLE)).warnings == []
    log = tmp_path / "hutch.log"
    # Paths and ports of a test machine override the sample's (flags win over the file).
    proc = HutchProcess("--config", str(SAMPLE), "--log-file", str(log), http=True)
    proc.start()
    try:
        assert refused(proc.port, "guest", "guest")
        with connect(proc.port, "admin", "change-me-before-the-first-start") as conn:
            # channel_max and heartbeat from the sample, as connection.tune proposed them.
            params = conn._impl.params
            assert (params.channel_max, params.heartbeat) == (2047, 60)
        # log.console.level = warning: no info line on the console, all in the file.
        console = [x for x in proc.log_lines if LINE.match(x)]
        assert not any("[info]" in x for x in console), console
        assert "[info] <hutch> started TCP listener" in log.read_text()
        env = ctl(proc, "admin", "change-me-before-the-first-start", "environment")
        assert env.returncode == 0, env.stderr
        rows = {x.split(" = ")[0]: x for x in env.stdout.splitlines() if " = " in x}
        assert rows["default_pass"].split("#")[0].split(" = ")[1].strip() == "********"
        assert "change-me" not in env.stdout
        assert rows["default_user"].endswith(f"# {SAMPLE}:{line_of(SAMPLE, 'default_user')}")
        assert rows["log.file.rotation.count"].startswith("log.file.rotation.count = 5 ")
        assert rows["log.file"].startswith(f"log.file = {log} ")
        assert rows["log.file"].endswith("# flag --log-file")
        assert rows["log.file.formatter"].endswith("# default")
        for key in ("vm_memory_high_watermark.*", "disk_free_limit.*", "connection_max"):
            assert rows[key].endswith(f"# {SAMPLE}:{line_of(SAMPLE, key.replace('*', ''))}"), \
                rows[key]
        as_json = ctl(proc, "admin", "change-me-before-the-first-start", "--formatter", "json",
                      "environment")
        docs = json.loads(as_json.stdout)
        assert {"key": "log.console.level", "value": "warning",
                "source": f"{SAMPLE}:{line_of(SAMPLE, 'log.console.level')}"} in docs
        status = ctl(proc, "admin", "change-me-before-the-first-start", "status")
        assert f"Config files\n\n * {SAMPLE}\n" in status.stdout
        assert f"Log file(s)\n\n * {log}\n * <stderr>\n" in status.stdout
        node = requests.get(proc.http_url + "api/nodes", timeout=5,
                            auth=("admin", "change-me-before-the-first-start")).json()[0]
        assert node["config_files"] == [str(SAMPLE)]
    finally:
        proc.stop()


def test_ops_keys_from_a_file(tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    defs = tmp_path / "defs.json"
    defs.write_text(json.dumps({"users": [{"name": "carol", "password": "pw", "tags": []}],
                                "vhosts": [{"name": "/"}],
                                "permissions": [{"user": "carol", "vhost": "/", "configure": "",
                                                 "write": ".*", "read": ".*"}]}))
    addr = non_loopback_address()
    conf = tmp_path / "hutch.conf"
    conf.write_text(f"""
log.dir = {tmp_path}
log.file = h.log
log.file.formatter = json
log.file.level = debug
log.console = false
default_user = bob
default_pass = pw
default_vhost = work
default_permissions.configure = ^$
default_user_tags.monitoring = true
default_user_tags.administrator = false
loopback_users.bob = true
loopback_users.guest = false
""")
    extra = ["--host", "0.0.0.0"] if addr else []
    proc = HutchProcess("--config", str(conf), *extra, http=True)
    proc.start()
    try:
        connect(proc.port, "bob", "pw", "work").close()
        with connect(proc.port, "bob", "pw", "work") as conn, \
                pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            conn.channel().queue_declare("q")
        assert info.value.reply_code == 403
        me = requests.get(proc.http_url + "api/whoami", auth=("bob", "pw"), timeout=5)
        assert me.json()["tags"] == ["monitoring"]
        if addr:
            assert refused(proc.port, "bob", "pw", "work", host=addr)  # loopback_users.bob
        # log.console = false: nothing but serve's own lines on the console; the file
        # (log.dir + log.file) has JSON lines down to debug.
        assert not [x for x in proc.log_lines if not x.startswith("hutch ")], proc.log_lines
        docs = [json.loads(x) for x in log.read_text().splitlines()]
        assert any(d["msg"].startswith("started TCP listener") for d in docs)
        proc.stop()
        # The data dir is not blank any more: load definitions at the next start.
        with conf.open("a") as f:
            f.write(f"definitions.import_backend = local_filesystem\n"
                    f"definitions.local.path = {defs}\n")
        proc.start()
        connect(proc.port, "carol", "pw").close()
        connect(proc.port, "bob", "pw", "work").close()  # an import adds, never removes
    finally:
        proc.stop()


@pytest.mark.parametrize(("text", "message"), [
    ("log.file.level = loud\n", "log.file.level: invalid log level 'loud'"),
    ("log.console = yes\n", "log.console: invalid value 'yes': true or false"),
    ("default_pass = encrypted:abcd\n", "default_pass: encrypted values are not supported"),
    ("loopback_users = all\n", "loopback_users: invalid value 'all': none"),
    ("definitions.import_backend = https\n", "definitions.import_backend 'https' is not "
                                             "supported"),
])
def test_bad_ops_values_refuse_to_start(tmp_path: Path, text: str, message: str) -> None:
    conf = tmp_path / "hutch.conf"
    conf.write_text(text)
    out = subprocess.run([sys.executable, "-m", "hutch", "serve", "--config", str(conf),
                          "--in-memory", "--port", "0", "--http-port", "0",
                          "--prometheus-port", "0"], capture_output=True, text=True, timeout=30,
                         env=dict(os.environ))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hutch: configuration file {conf}:1: ")
    assert message in lines[0], lines[0]
