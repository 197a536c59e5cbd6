#!/usr/bin/env bash
# stop.sh: stops the demo started by start.sh (from any terminal): the
# project's services (publisher, then ingest), then the stack (stack-down.sh).
# Everything by recorded PID; what is already gone is fine.
#
# Env: STACK_DIR (default $REPO/.stack).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  local failed=0
  mark_stopping
  stop_services || failed=1
  bash "$SCRIPTS_DIR/stack-down.sh" || failed=1
  return "$failed"
}

main "$@"
