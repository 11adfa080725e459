"""examples/celery, examples/dramatiq and examples/faststream: their own tests (the hutch_broker
fixture, as a user's project would run them) pass in a pytest of their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.frameworks._dq_procs import ROOT


@pytest.mark.hutch_only  # the hutch_broker fixture starts a Hutch of its own
@pytest.mark.timeout(90)
@pytest.mark.parametrize(("dirs", "passed"), [
    # One pytest per example whose test module shares a basename with another's
    # (test_tasks.py), as a user's project would have only one of them.
    (["examples/celery"], 1),
    (["examples/dramatiq", "examples/faststream"], 4),
])
def test_the_examples_own_tests_pass(dirs, passed):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.join(ROOT, "src"), env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *dirs],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=80)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert f"{passed} passed" in r.stdout
