#!/usr/bin/env bash
# install-deephaven.sh: installs what the local Deephaven server needs: Java 17
# with its compiler (Debian's openjdk-17-jdk-headless, only when missing; javac
# builds the basic-auth handler in scripts/deephaven-auth/) and the pinned PyPI
# package deephaven-server in the shared venv $TOOLS_DIR/venv.
# Idempotent; quick when already installed.
#
# Env: TOOLS_DIR (default $REPO/.tools), PYTHON (interpreter for a new venv).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEEPHAVEN_SERVER_PIN="deephaven-server==42.7"

ensure_java17() {
  if [[ -x "$JAVA17_HOME/bin/java" && -x "$JAVA17_HOME/bin/javac" ]]; then
    log "Java 17 JDK present ($JAVA17_HOME)"
    return 0
  fi
  apt_install openjdk-17-jdk-headless
  [[ -x "$JAVA17_HOME/bin/javac" ]] || die "Java 17 JDK still missing at $JAVA17_HOME"
}

main() {
  ensure_java17
  ensure_venv
  pip_install_pinned "$DEEPHAVEN_SERVER_PIN"
}

main "$@"
