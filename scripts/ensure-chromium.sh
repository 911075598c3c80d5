#!/usr/bin/env bash
# The dashboard's browser test drives Debian's Chromium (/usr/bin/chromium) with playwright-core;
# playwright's own browser download cannot work on a closed network. Installs it when missing and
# this user may (root with apt-get); otherwise says how. Run by `npm test` (pretest) and .ci/run.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the dashboard's browser test…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "error: $CHROMIUM is missing: the dashboard test needs Debian's chromium (sudo apt-get install chromium)" >&2
exit 1
