#!/usr/bin/env bash
# The report's browser test needs Debian's headless Chromium: install it when it is missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: the tests need Debian's chromium; install it with: sudo apt-get install -y chromium" >&2
    exit 1
fi
echo "Installing Debian's chromium (for the report's browser test)..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends chromium >/tmp/okr-sync-chromium.log 2>&1; then
    apt-get update -q >>/tmp/okr-sync-chromium.log 2>&1
    apt-get install -y -q --no-install-recommends chromium >>/tmp/okr-sync-chromium.log 2>&1 || {
        echo "error: could not install chromium (see /tmp/okr-sync-chromium.log)" >&2
        exit 1
    }
fi
command -v chromium >/dev/null
