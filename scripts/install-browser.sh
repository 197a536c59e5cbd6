#!/usr/bin/env bash
# install-browser.sh: installs what the dashboard's browser test drives:
# Debian's Chromium and its ChromeDriver (packages chromium, chromium-driver),
# only when missing. Idempotent; quick when installed.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  log "chromium and chromedriver present"
else
  apt_install chromium chromium-driver
fi
