#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (no browser downloads). Install it when we can (root + apt);
# otherwise those tests skip with a reason.
set -uo pipefail
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests (once)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "chromium install failed; browser tests will skip"
else
  echo "no /usr/bin/chromium and no root: browser tests will skip (apt-get install chromium chromium-driver)"
fi
exit 0
