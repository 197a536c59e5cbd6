#!/usr/bin/env bash
# stack-down.sh: stops the local stack started by stack-up.sh (Prometheus,
# Alertmanager, Deephaven, broker), each by its recorded PID: SIGTERM, then
# SIGKILL after a deadline. Components already gone are fine.
#
# Env: STACK_DIR (default $REPO/.stack).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  local i failed=0
  mark_stopping
  # Reverse start order: alert sources first, the broker last.
  for ((i = ${#STACK_COMPONENTS[@]} - 1; i >= 0; i--)); do
    bash "$SCRIPTS_DIR/${STACK_COMPONENTS[i]}.sh" stop || failed=1
  done
  return "$failed"
}

main "$@"
