#!/usr/bin/env bash
# install-deephaven.sh: installs what the local Deephaven server needs: Java 17
# with its compiler (Debian's openjdk-17-jdk-headless, only when missing; javac
# builds the basic-auth handler in scripts/deephaven-auth/) and the pinned PyPI
# packages in the shared venv $TOOLS_DIR/venv: deephaven-server, and the
# deephaven.ui and plotly-express plugins the dashboard (dashboard/) is built with.
# Idempotent; quick when already installed.
#
# Env: TOOLS_DIR (default $REPO/.tools), PYTHON (interpreter for a new venv).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEEPHAVEN_SERVER_PIN="deephaven-server==42.7"
# Pinned like the server: the browser test (e2e/tests/system/dashboard.rs) shows they work with it.
DEEPHAVEN_PLUGIN_PINS=("deephaven-plugin-ui==0.43.1" "deephaven-plugin-plotly-express==0.21.0")

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
  local pin
  for pin in "${DEEPHAVEN_PLUGIN_PINS[@]}"; do pip_install_pinned "$pin"; done
}

main "$@"
