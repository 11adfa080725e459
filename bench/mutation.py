"""Mutation testing: which one-line breakages of the code do the tests not notice?

Runs cosmic-ray (a well-kept mutation tool: it edits the module on disk, one
mutation at a time, and runs a test command) against a throw-away git worktree of
HEAD, so the checkout you work in is never touched, and prints per module how many
mutants the tests killed and which survived (file:line and the operator).

    pip install -e '.[bench]'
    python bench/mutation.py                        # every module below (hours)
    python bench/mutation.py --module store/log.py  # one module (~1 h on 2 busy cores)
    python bench/mutation.py --module store/log.py --rev adc75e8   # the same, as it was

Each module is tested with the test files that are about it (TESTS below); broker
subprocesses import the worktree's code through PYTHONPATH.  Not run by CI: it
takes hours for the broker-process suites.  The README's testing section quotes the
latest figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module (under src/hutch/) -> the tests that are about it
TESTS = {
    "store/log.py": "tests/store/test_log.py",
    "store/recovery.py": "tests/store/test_log.py tests/store/test_snapshot.py",
    "store/records.py": "tests/store/test_log.py",
    "broker/queue.py": ("tests/integration/test_wq_basic.py tests/integration/test_wq_dispatch.py "
                        "tests/integration/test_wq_queues.py tests/store/test_paging.py"),
    "server/channel.py": ("tests/integration/test_wq_basic.py tests/integration/test_errors_ack.py "
                          "tests/integration/test_errors_publish.py tests/integration/test_wq_clients.py"),
}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, **kw)


def mutate(tree: str, module: str, tests: str, timeout: float, workdir: str) -> dict:
    name = module.replace("/", "_").removesuffix(".py")
    config = os.path.join(workdir, f"{name}.toml")
    session = os.path.join(workdir, f"{name}.sqlite")
    with open(config, "w") as f:
        f.write(f"""[cosmic-ray]
module-path = "src/hutch/{module}"
timeout = {timeout}
excluded-modules = []
test-command = "{sys.executable} -m pytest -x -q -p no:cacheprovider {tests}"

[cosmic-ray.distributor]
name = "local"
""")
    env = dict(os.environ, PYTHONPATH=os.path.join(tree, "src") + os.pathsep + tree)
    run(["cosmic-ray", "init", config, session], cwd=tree, env=env, check=True,
        stdout=subprocess.DEVNULL)
    # A baseline first: a mutant "killed" by tests that fail anyway proves nothing.
    base = run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests.split()],
               cwd=tree, env=env, capture_output=True)
    if base.returncode != 0:
        raise SystemExit(f"the tests for {module} fail without any mutation:\n{base.stdout[-2000:]}")
    run(["cosmic-ray", "exec", config, session], cwd=tree, env=env, check=True)
    db = sqlite3.connect(session)
    rows = db.execute(
        "SELECT m.operator_name, m.start_pos_row, r.test_outcome FROM mutation_specs m "
        "JOIN work_results r ON r.job_id = m.job_id").fetchall()
    survivors = sorted((line, op) for op, line, outcome in rows if outcome == "SURVIVED")
    return {"module": module, "mutants": len(rows), "survived": len(survivors),
            "survivors": survivors}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--module", action="append", choices=sorted(TESTS),
                   help="a module to mutate (repeatable; default: all)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant's test run")
    p.add_argument("--keep", action="store_true", help="keep the worktree and sessions")
    p.add_argument("--rev", default="HEAD",
                   help="the revision to mutate, with its own tests (e.g. an older one, for a "
                        "before/after comparison; default HEAD)")
    args = p.parse_args()
    if shutil.which("cosmic-ray") is None:
        raise SystemExit("cosmic-ray is not installed: pip install -e '.[bench]'")
    workdir = tempfile.mkdtemp(prefix="hutch-mutation-")
    tree = os.path.join(workdir, "tree")
    run(["git", "worktree", "add", "--detach", tree, args.rev], cwd=ROOT, check=True,
        capture_output=True)
    try:
        results = [mutate(tree, m, TESTS[m], args.timeout, workdir) for m in (args.module or sorted(TESTS))]
    finally:
        if not args.keep:
            run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'module':<22} {'mutants':>8} {'survived':>9} {'killed %':>9}")
    for r in results:
        killed = 100.0 * (r["mutants"] - r["survived"]) / max(1, r["mutants"])
        print(f"{r['module']:<22} {r['mutants']:>8} {r['survived']:>9} {killed:>8.1f}%")
    for r in results:
        for line, op in r["survivors"]:
            print(f"survived: src/hutch/{r['module']}:{line} {op}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
