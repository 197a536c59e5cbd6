#!/usr/bin/env bash
# start.sh: the one-command local demo. Installs the prerequisites, builds the
# ingest and publisher binaries (release), starts the stack (stack-up.sh) and
# the services, prints where to look, then stays in the foreground until
# Ctrl-C (or SIGTERM), which stops everything this run started. From another
# terminal, scripts/stop.sh stops everything; this script then ends too.
#
# Env: every setting in lib.sh (STACK_DIR, ports, topics, Deephaven knobs);
#      SKIP_BUILD=1 starts whatever binaries target/release already has.
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

crate_has_binary() { # crate directory
  local dir="$REPO_ROOT/$1"
  [[ -f "$dir/Cargo.toml" ]] || return 1
  [[ -f "$dir/src/main.rs" ]] || compgen -G "$dir/src/bin/*.rs" >/dev/null ||
    grep -q '^\[\[bin\]\]' "$dir/Cargo.toml"
}

build_services() {
  local name bins=()
  for name in "${SERVICES[@]}"; do
    if crate_has_binary "$name"; then bins+=(--bin "$name"); fi
  done
  if ((${#bins[@]} == 0)); then
    warn "no service crate has a binary yet: nothing to build"
    return 0
  fi
  command -v cargo >/dev/null || die "cargo not found"
  local locked=()
  [[ -f "$REPO_ROOT/Cargo.lock" ]] && locked=(--locked)
  log "cargo build --release ${bins[*]}"
  (cd "$REPO_ROOT" && cargo build --release "${locked[@]}" "${bins[@]}")
}

# start_service NAME: starts target/release/NAME if built; the caller's
# VAR=value prefixes reach its environment.
start_service() {
  local bin="$REPO_ROOT/target/release/$1"
  if [[ ! -x "$bin" ]]; then
    warn "$bin not built: $1 not started"
    return 1
  fi
  if is_running "$1"; then
    log "$1 already running (pid $(pid_of "$1"))"
    return 0
  fi
  start_background "$1" "$bin" || {
    print_log_tail "$1" 20
    return 1
  }
}

# >>> start_services: TO BE FINISHED (lead) ---------------------------------
# The variable names below are placeholders for ingest's and publisher's real
# settings; the stack's addresses come from $STACK_DIR/env (KAFKA_BROKERS,
# ALERTS_TOPIC, DLQ_TOPIC, DEEPHAVEN_URL, INGEST_PORT, ...), exported here.
start_services() {
  # shellcheck source=/dev/null # written by stack-up.sh
  source "$STACK_DIR/env"
  if INGEST_LISTEN_ADDR="127.0.0.1:$INGEST_PORT" \
    INGEST_KAFKA_BROKERS="$KAFKA_BROKERS" INGEST_TOPIC="$ALERTS_TOPIC" \
    start_service ingest; then
    wait_for_port 127.0.0.1 "$INGEST_PORT" "$READY_DEADLINE_S" ingest ingest ||
      die "ingest did not get ready"
  fi
  if PUBLISHER_KAFKA_BROKERS="$KAFKA_BROKERS" PUBLISHER_TOPIC="$ALERTS_TOPIC" \
    PUBLISHER_DLQ_TOPIC="$DLQ_TOPIC" PUBLISHER_DEEPHAVEN_URL="$DEEPHAVEN_URL" \
    PUBLISHER_METRICS_ADDR="127.0.0.1:$PUBLISHER_METRICS_PORT" \
    start_service publisher; then
    wait_for_port 127.0.0.1 "$PUBLISHER_METRICS_PORT" "$READY_DEADLINE_S" "publisher metrics" publisher ||
      die "publisher did not get ready"
  fi
}
# <<< start_services ----------------------------------------------------------

print_where_to_look() {
  local service_state=" (not running)"
  is_running ingest && service_state=""
  cat >&2 <<EOF

  alerthaven demo is up.
    Deephaven IDE   $DEEPHAVEN_URL/ide/
    Prometheus      $PROMETHEUS_URL/alerts
    Alertmanager    $ALERTMANAGER_URL/#/alerts
    ingest webhook  $INGEST_URL$service_state
    Kafka broker    $KAFKA_BROKERS (topics $ALERTS_TOPIC, $DLQ_TOPIC)
    logs            $STACK_DIR/logs/
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
