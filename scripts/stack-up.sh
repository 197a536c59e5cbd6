#!/usr/bin/env bash
# stack-up.sh: installs (unless SKIP_INSTALL=1) and starts the local stack:
# Tansu broker, Deephaven, Alertmanager, Prometheus, all on 127.0.0.1, and
# waits until every one is ready; then $STACK_DIR/env holds their addresses.
# Components already running are left as they are. Stop with stack-down.sh.
#
# Env: SKIP_INSTALL (unset), plus every setting in lib.sh (STACK_DIR, ports,
#      topics, Deephaven knobs).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

deephaven_job=""

# Never leave the Deephaven start running unattended when this script ends
# early: a stack-down racing it could miss the process it is launching.
finish_deephaven_start() {
  [[ -n "$deephaven_job" ]] || return 0
  local job=$deephaven_job
  deephaven_job=""
  wait "$job"
}

main() {
  local started_at=$SECONDS
  if [[ -z "${SKIP_INSTALL:-}" ]]; then
    bash "$SCRIPTS_DIR/install.sh"
  fi
  mkdir -p "$STACK_DIR"
  write_env_file
  trap 'finish_deephaven_start || true' EXIT
  # Deephaven is by far the slowest to get ready: start it first, alongside.
  bash "$SCRIPTS_DIR/deephaven.sh" start &
  deephaven_job=$!
  bash "$SCRIPTS_DIR/broker.sh" start
  # Alertmanager before Prometheus, which sends alerts to it.
  bash "$SCRIPTS_DIR/alertmanager.sh" start
  bash "$SCRIPTS_DIR/prometheus.sh" start
  finish_deephaven_start || die "Deephaven did not start (log: $(log_file deephaven))"
  log "stack ready in $((SECONDS - started_at))s; addresses in $STACK_DIR/env:"
  sed -n 's/^export /    /p' "$STACK_DIR/env" >&2
}

main "$@"
