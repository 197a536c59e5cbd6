#!/usr/bin/env bash
# start.sh: the one-command local demo. Installs the prerequisites, builds the
# ingest and publisher binaries (release), starts the stack (stack-up.sh) and
# the services, prints where to look, then stays in the foreground until
# Ctrl-C (or SIGTERM), which stops everything this run started. From another
# terminal, scripts/stop.sh stops everything; this script then ends too.
#
# Env: every setting in lib.sh (STACK_DIR, ports, topics, Deephaven knobs);
#      SKIP_BUILD=1 starts whatever binaries target/release already has;
#      SKIP_PUBLISHER=1 builds and starts ingest only (the publisher is
#      otherwise started whenever target/release/publisher exists).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Every process this script may start, in start order.
ALL_PROCESSES=("${STACK_COMPONENTS[@]}" "${SERVICES[@]}")
declare -A was_running=()
watch_sleep_pid=""

record_what_runs_already() {
  local name
  for name in "${ALL_PROCESSES[@]}"; do
    if is_running "$name"; then was_running[$name]=1; fi
  done
}

# On any exit: stop, in reverse start order, what this run started (and
# nothing that was running before it).
stop_what_we_started() {
  local status=$? i name
  trap - EXIT INT TERM
  # Output may be a pipe whose reader died with the same Ctrl-C: keep going.
  trap '' PIPE
  if [[ -n "$watch_sleep_pid" ]]; then kill "$watch_sleep_pid" 2>/dev/null || true; fi
  for ((i = ${#ALL_PROCESSES[@]} - 1; i >= 0; i--)); do
    name=${ALL_PROCESSES[i]}
    if [[ -n "${was_running[$name]:-}" ]] || ! is_running "$name"; then continue; fi
    if [[ -f "$SCRIPTS_DIR/$name.sh" ]]; then
      bash "$SCRIPTS_DIR/$name.sh" stop || true
    else
      stop_process "$name" "$SERVICE_STOP_DEADLINE_S" || true
    fi
  done
  exit "$status"
}

# cargo build --release --bins: every binary of the workspace (ingest, the
# publisher and the bench tools); with SKIP_PUBLISHER, ingest's only.
build_services() {
  command -v cargo >/dev/null || die "cargo not found"
  local args=(build --release)
  [[ -f "$REPO_ROOT/Cargo.lock" ]] && args+=(--locked)
  if [[ -n "${SKIP_PUBLISHER:-}" ]]; then args+=(--bin ingest); else args+=(--bins); fi
  log "cargo ${args[*]}"
  (cd "$REPO_ROOT" && cargo "${args[@]}")
}

service_binary() { echo "$REPO_ROOT/target/release/$1"; }

# start_service NAME [VAR=VALUE...]: starts target/release/NAME, tracked by
# PID, with the given settings added to its environment.
start_service() {
  local name=$1 bin
  shift
  bin=$(service_binary "$name")
  [[ -x "$bin" ]] || die "$bin not built (run without SKIP_BUILD)"
  if is_running "$name"; then
    log "$name already running (pid $(pid_of "$name"))"
    return 0
  fi
  start_background "$name" env "$@" "$bin" || {
    print_log_tail "$name" 20
    die "could not start $name"
  }
}

# Starts ingest, then the publisher (when built and not skipped), each waited
# for by condition: ingest until /readyz answers 200 (it reached the broker and
# found the topic), the publisher until /healthz does. The stack's addresses
# come from $STACK_DIR/env, written by stack-up.sh.
start_services() {
  # shellcheck source=/dev/null # written by stack-up.sh
  source "$STACK_DIR/env"
  start_service ingest \
    INGEST_SERVER__HOST=127.0.0.1 INGEST_SERVER__PORT="$INGEST_PORT" \
    INGEST_KAFKA__BROKERS="$KAFKA_BROKERS" INGEST_KAFKA__TOPIC="$ALERTS_TOPIC"
  wait_for_http "http://127.0.0.1:$INGEST_PORT/readyz" "$READY_DEADLINE_S" ingest ingest ||
    die "ingest did not get ready"
  log "ingest ready"

  if [[ -n "${SKIP_PUBLISHER:-}" ]]; then
    log "SKIP_PUBLISHER set: publisher not started"
    return 0
  fi
  if [[ ! -x "$(service_binary publisher)" ]]; then
    log "no $(service_binary publisher) (SKIP_BUILD, never built): publisher not started"
    return 0
  fi
  local settings=(
    PUBLISHER_SERVER__HOST=127.0.0.1 PUBLISHER_SERVER__PORT="$PUBLISHER_METRICS_PORT"
    PUBLISHER_KAFKA__BROKERS="$KAFKA_BROKERS" PUBLISHER_KAFKA__TOPIC="$ALERTS_TOPIC"
    PUBLISHER_KAFKA__DLQ_TOPIC="$DLQ_TOPIC" PUBLISHER_DEEPHAVEN__URL="$DEEPHAVEN_URL"
    # Below alertmanager/config.yml's group_interval (5 s), so that a re-fire shows at once (docs/tables.md, "Which state is current").
    PUBLISHER_DEEPHAVEN__REFIRE_GRACE=4s
  )
  # A Deephaven started with a pre-shared key (DEEPHAVEN_PSK) wants it.
  [[ -n "${DEEPHAVEN_PSK:-}" ]] && settings+=(PUBLISHER_DEEPHAVEN__PSK="$DEEPHAVEN_PSK")
  start_service publisher "${settings[@]}"
  wait_for_http "http://127.0.0.1:$PUBLISHER_METRICS_PORT/healthz" "$READY_DEADLINE_S" publisher publisher ||
    die "publisher did not get ready"
  log "publisher ready"
}

print_where_to_look() {
  local publisher_state=" (not running)"
  is_running publisher && publisher_state=""
  cat >&2 <<EOF

  alerthaven demo is up.
    Deephaven IDE      $DEEPHAVEN_URL/ide/
    Prometheus         $PROMETHEUS_URL/alerts
    Alertmanager       $ALERTMANAGER_URL/#/alerts
    ingest webhook     $INGEST_URL
    ingest metrics     http://127.0.0.1:$INGEST_PORT/metrics
    publisher metrics  http://127.0.0.1:$PUBLISHER_METRICS_PORT/metrics$publisher_state
    Kafka broker       $KAFKA_BROKERS (topics $ALERTS_TOPIC, $DLQ_TOPIC)
    logs               $STACK_DIR/logs/
  Ctrl-C here, or scripts/stop.sh from anywhere, stops it.

EOF
}

# Stays until a signal, or until everything is gone (scripts/stop.sh); says
# so once when one process dies by itself.
watch_until_stopped() {
  local name watched=() alive gone
  for name in "${ALL_PROCESSES[@]}"; do
    if is_running "$name"; then watched+=("$name"); fi
  done
  while true; do
    alive=() gone=()
    for name in "${watched[@]}"; do
      if is_running "$name"; then alive+=("$name"); else gone+=("$name"); fi
    done
    if ((${#alive[@]} == 0)); then
      log "everything has stopped"
      return 0
    fi
    # Some gone while others run, and no stop in progress: a crash.
    if [[ ! -e "$STOPPING_MARKER" ]]; then
      for name in "${gone[@]}"; do
        warn "$name is not running any more"
        print_log_tail "$name" 20
      done
    fi
    watched=("${alive[@]}")
    # Sleep in the background so that a signal's trap runs at once.
    sleep 2 &
    watch_sleep_pid=$!
    wait "$watch_sleep_pid" || true
    watch_sleep_pid=""
  done
}

main() {
  record_what_runs_already
  trap stop_what_we_started EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  bash "$SCRIPTS_DIR/install.sh"
  if [[ -z "${SKIP_BUILD:-}" ]]; then build_services; fi
  SKIP_INSTALL=1 bash "$SCRIPTS_DIR/stack-up.sh"
  start_services
  print_where_to_look
  watch_until_stopped
}

main "$@"
