"""Refresh the README's screenshots of the web UI (docs/ui-overview.png, docs/ui-queue.png).

    python3 scripts/ui_screenshots.py [--seconds 60]

Runs tests/ui/test_screenshots.py (a real broker, real publishers and a consumer,
Debian's headless Chromium) with a longer scene so the charts have history, then
copies its two screenshots into docs/.  Needs what the browser tests need
(chromium, chromium-driver, selenium).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOTS = {"docs-overview.png": "ui-overview.png", "docs-queue.png": "ui-queue.png"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="how long the scene runs before the pictures (chart history)")
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="hutch-ui-shots-")
    env = dict(os.environ, HUTCH_UI_SCREENSHOTS=out, HUTCH_UI_SCENE_SECONDS=str(args.seconds))
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/ui/test_screenshots.py"], cwd=ROOT, env=env)
    if rc != 0:
        print(f"the screenshot tests failed (exit {rc}); docs/ left as it was", file=sys.stderr)
        return rc
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    for src, dest in SHOTS.items():
        shutil.copyfile(os.path.join(out, src), os.path.join(ROOT, "docs", dest))
        print("wrote", os.path.join("docs", dest))
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
