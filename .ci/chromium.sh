#!/usr/bin/env bash
# Debian's headless Chromium and its ChromeDriver for the browser tests (tests/ui),
# installed when missing.  Fails loudly: tests/ui fails under CI=true without them.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "!! chromium/chromium-driver missing and not root: cannot install them" >&2
    exit 1
fi
echo "== installing chromium and chromium-driver via apt-get (tests/ui)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q chromium chromium-driver >/dev/null; then
    apt-get update -q >/dev/null || true
    apt-get install -y -q chromium chromium-driver >/dev/null
fi
/usr/bin/chromium --version
