# shellcheck shell=bash disable=SC2034 # the settings are for the sourcing scripts
# lib.sh: shared helpers for the local real-server stack. Sourced, never run.
#
# Provides: repo root detection, the stack settings (each overridable by env),
# logging, readiness polling (wait_for_port, wait_for_http), background
# processes tracked by PID (start_background, is_running, stop_process),
# config rendering (render_config), the $STACK_DIR/env contract
# (write_env_file) and the start/stop/status dispatcher of the component
# scripts (component_cli).
#
# Settings (env knobs, defaults):
#   STACK_DIR               $REPO_ROOT/.stack   pids/, logs/, config/, data dirs
#   TOOLS_DIR               $REPO_ROOT/.tools   venv/ and bin/ (shared by all stacks)
#   BROKER_PORT             9092                Tansu (Kafka protocol)
#   DEEPHAVEN_PORT          10000               Deephaven gRPC + web IDE
#   PROMETHEUS_PORT         9090
#   ALERTMANAGER_PORT       9093
#   INGEST_PORT             8080                the project's ingest service
#   INGEST_URL              http://127.0.0.1:$INGEST_PORT/alerts   Alertmanager's webhook target
#   PUBLISHER_METRICS_PORT  9102
#   INGEST_METRICS_TARGETS  127.0.0.1:$INGEST_PORT             Prometheus targets (comma-separated,
#                                                              or dns+NAME:PORT: see render-config.sh)
#   PUBLISHER_METRICS_TARGETS 127.0.0.1:$PUBLISHER_METRICS_PORT
#   DEAD_TARGET             127.0.0.1:9         a scrape target that is deliberately down
#   ALERTS_TOPIC            alerts
#   DLQ_TOPIC               alerts.dlq
#   TOPIC_PARTITIONS        6                   partitions of $ALERTS_TOPIC
#   DLQ_PARTITIONS          3                   partitions of $DLQ_TOPIC
#   DEEPHAVEN_HEAP          2g                  JVM -Xmx
#   DEEPHAVEN_TIMEZONE      UTC                 the server's time zone, in which the IDE shows times
#   DEEPHAVEN_PSK           (unset)             set: PSK auth with this key instead of anonymous
#   DEEPHAVEN_BASIC_USER, DEEPHAVEN_BASIC_PASSWORD (unset)  set: basic auth for this one user instead
#   DEEPHAVEN_SESSION_DURATION_MS (unset)       set: -Dhttp.session.durationMs (server default 300000)
#   READY_DEADLINE_S        30                  readiness deadline of the quick components
#   DEEPHAVEN_READY_DEADLINE_S 120

if [[ -n "${ALERTHAVEN_LIB_LOADED:-}" ]]; then
  return 0
fi
ALERTHAVEN_LIB_LOADED=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS_DIR="$REPO_ROOT/scripts"

# --- settings ---------------------------------------------------------------
TOOLS_DIR="${TOOLS_DIR:-$REPO_ROOT/.tools}"
VENV_DIR="$TOOLS_DIR/venv"
VENV_PYTHON="$VENV_DIR/bin/python"
TANSU_BIN="$TOOLS_DIR/bin/tansu"
JAVA17_HOME="/usr/lib/jvm/java-17-openjdk-amd64"

STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
BROKER_PORT="${BROKER_PORT:-9092}"
DEEPHAVEN_PORT="${DEEPHAVEN_PORT:-10000}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
ALERTMANAGER_PORT="${ALERTMANAGER_PORT:-9093}"
INGEST_PORT="${INGEST_PORT:-8080}"
INGEST_URL="${INGEST_URL:-http://127.0.0.1:$INGEST_PORT/alerts}"
PUBLISHER_METRICS_PORT="${PUBLISHER_METRICS_PORT:-9102}"
INGEST_METRICS_TARGETS="${INGEST_METRICS_TARGETS:-127.0.0.1:$INGEST_PORT}"
PUBLISHER_METRICS_TARGETS="${PUBLISHER_METRICS_TARGETS:-127.0.0.1:$PUBLISHER_METRICS_PORT}"
DEAD_TARGET="${DEAD_TARGET:-127.0.0.1:9}"
ALERTS_TOPIC="${ALERTS_TOPIC:-alerts}"
DLQ_TOPIC="${DLQ_TOPIC:-alerts.dlq}"
TOPIC_PARTITIONS="${TOPIC_PARTITIONS:-6}"
DLQ_PARTITIONS="${DLQ_PARTITIONS:-3}"
DEEPHAVEN_HEAP="${DEEPHAVEN_HEAP:-2g}"
DEEPHAVEN_TIMEZONE="${DEEPHAVEN_TIMEZONE:-UTC}"
READY_DEADLINE_S="${READY_DEADLINE_S:-30}"
DEEPHAVEN_READY_DEADLINE_S="${DEEPHAVEN_READY_DEADLINE_S:-120}"

KAFKA_BROKERS="127.0.0.1:$BROKER_PORT"
DEEPHAVEN_URL="http://127.0.0.1:$DEEPHAVEN_PORT"
PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
ALERTMANAGER_URL="http://127.0.0.1:$ALERTMANAGER_PORT"

# --- logging ----------------------------------------------------------------
LOG_TAG="${LOG_TAG:-$(basename "${BASH_SOURCE[1]:-$0}" .sh)}"

# A log line that cannot be written (terminal or pipe gone) must not abort a
# cleanup in progress.
log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$LOG_TAG" "$*" >&2 || true; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}

# --- readiness polling --------------------------------------------------------
# All waits poll a condition against a deadline; none sleeps a fixed time and
# hopes. An optional process NAME makes them give up at once when it died.
POLL_INTERVAL_S=0.25

port_is_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

http_status() { # url -> prints the HTTP status code (000 when no answer)
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

# _wait_until DEADLINE_S WHAT NAME CMD...: poll CMD until it succeeds.
_wait_until() {
  local deadline_s=$1 what=$2 name=$3
  shift 3
  local end=$((SECONDS + deadline_s))
  until "$@"; do
    if [[ -n "$name" ]] && ! is_running "$name"; then
      log "ERROR: $name exited while waiting for $what"
      print_log_tail "$name"
      return 1
    fi
    if ((SECONDS >= end)); then
      log "ERROR: $what not ready after ${deadline_s}s"
      [[ -n "$name" ]] && print_log_tail "$name"
      return 1
    fi
    sleep "$POLL_INTERVAL_S"
  done
}

wait_for_port() { # host port deadline_s what [process-name]
  _wait_until "$3" "$4 (tcp $1:$2)" "${5:-}" port_is_open "$1" "$2"
}

_http_is_200() { [[ "$(http_status "$1")" == 200 ]]; }

wait_for_http() { # url deadline_s what [process-name]
  _wait_until "$2" "$3 ($1)" "${4:-}" _http_is_200 "$1"
}

# --- HAProxy -----------------------------------------------------------------
# launch_haproxy NAME PORT CONFIG_FILE WRITE_CONFIG: writes the config (the
# WRITE_CONFIG function), checks it, and runs HAProxy in the foreground (-db),
# so that the tracked PID is HAProxy itself. Shared by balancer.sh and
# tls-front.sh.
launch_haproxy() {
  local name=$1 port=$2 config_file=$3 write_config=$4
  command -v haproxy >/dev/null || die "no haproxy: run scripts/install-monitoring.sh"
  port_is_open 127.0.0.1 "$port" &&
    die "port $port is already in use by a process this stack did not start"
  "$write_config"
  haproxy -c -q -f "$config_file" || die "haproxy refused $config_file"
  start_background "$name" haproxy -db -f "$config_file"
}

# --- processes tracked by PID -----------------------------------------------
# A pid file holds "PID STARTTIME"; the start time (from /proc) guards against
# a recycled PID being taken for ours. Processes are stopped by that PID only.
pid_file() { echo "$STACK_DIR/pids/$1.pid"; }
log_file() { echo "$STACK_DIR/logs/$1.log"; }

_proc_start_time() { # pid -> field 22 of /proc/PID/stat
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  # The command name (field 2) may contain spaces: cut after the last ')'.
  stat=${stat##*) }
  # shellcheck disable=SC2086 # word splitting wanted
  set -- $stat
  # Now $1 is field 3 (state); field 22 is $20. A zombie counts as gone:
  # nothing may reap it here (PID 1 is not always an init).
  [[ "$1" != Z ]] || return 1
  echo "${20}"
}

pid_of() { # name -> pid, if the pid file names a live process we started
  local file pid start now
  file=$(pid_file "$1")
  [[ -f "$file" ]] || return 1
  read -r pid start <"$file" || return 1
  [[ -n "$pid" ]] || return 1
  now=$(_proc_start_time "$pid") || return 1
  [[ -z "$start" || "$now" == "$start" ]] || return 1
  echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

print_log_tail() { # name [lines]
  local file
  file=$(log_file "$1")
  [[ -s "$file" ]] || return 0
  log "last ${2:-40} lines of $file:"
  tail -n "${2:-40}" "$file" | sed 's/^/    /' >&2
}

# start_background NAME CMD...: run CMD detached (own session, so a Ctrl-C in
# the terminal reaches only the script, which then stops things in order),
# stdin from /dev/null, output to logs/NAME.log (previous log kept as .log.1).
start_background() {
  local name=$1
  shift
  local pidf logf pid start
  pidf=$(pid_file "$name")
  logf=$(log_file "$name")
  mkdir -p "$(dirname "$pidf")" "$(dirname "$logf")"
  [[ -f "$logf" ]] && mv -f "$logf" "$logf.1"
  rm -f "$pidf"
  # The child writes its own PID before exec'ing CMD: that PID is exactly the
  # process to signal later, whether or not setsid had to fork.
  # shellcheck disable=SC2016 # expanded by the child shell
  setsid bash -c 'echo "$$" >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
    "$pidf" "$@" </dev/null >>"$logf" 2>&1 &
  _wait_until 10 "pid file of $name" "" test -s "$pidf" || return 1
  read -r pid <"$pidf"
  start=$(_proc_start_time "$pid") || {
    rm -f "$pidf"
    log "ERROR: $name exited right after start"
    return 1
  }
  echo "$pid $start" >"$pidf"
  log "started $name (pid $pid, log $logf)"
}

# stop_process NAME [DEADLINE_S]: SIGTERM, wait up to DEADLINE_S, then SIGKILL.
# Returns 0 when stopped (or already gone), 2 when SIGKILL was needed.
stop_process() {
  local name=$1 deadline_s=${2:-20} pid
  if ! pid=$(pid_of "$name"); then
    rm -f "$(pid_file "$name")"
    log "$name is not running"
    return 0
  fi
  log "stopping $name (pid $pid, SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  if _wait_until "$deadline_s" "exit of $name" "" _is_gone "$name" 2>/dev/null; then
    rm -f "$(pid_file "$name")"
    log "stopped $name"
    return 0
  fi
  warn "$name (pid $pid) did not exit within ${deadline_s}s of SIGTERM: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  _wait_until 5 "exit of $name after SIGKILL" "" _is_gone "$name" || true
  rm -f "$(pid_file "$name")"
  return 2
}

_is_gone() { ! is_running "$1"; }

# stop_every_process_under DIR: stops every process started by start_background
# in a directory under DIR (each one a STACK_DIR of its own, as the tests'
# private brokers and servers are), then removes those directories: what test
# binaries killed before their clean-up left running.
stop_every_process_under() {
  local dir=$1 component pidf
  for component in "$dir"/*/; do
    [[ -d "$component" ]] || continue
    for pidf in "$component"pids/*.pid; do
      [[ -e "$pidf" ]] || continue
      _stop_process_in "${component%/}" "$(basename "$pidf" .pid)" || true
    done
    rm -rf "$component"
  done
}

_stop_process_in() { # dir name: stop_process NAME with DIR as the STACK_DIR (bash's locals reach callees)
  local STACK_DIR=$1
  stop_process "$2"
}

# --- config rendering -----------------------------------------------------
# The repo's config files carry ${NAME} placeholders, filled in by
# scripts/render-config.sh (also the compose stack's renderer) from these
# local addresses. A *_TARGETS value may be a comma-separated list.
render_config() { # template destination
  PROMETHEUS_TARGET="127.0.0.1:$PROMETHEUS_PORT" \
    ALERTMANAGER_TARGET="127.0.0.1:$ALERTMANAGER_PORT" \
    INGEST_URL="$INGEST_URL" DEAD_TARGET="$DEAD_TARGET" \
    INGEST_METRICS_TARGETS="$INGEST_METRICS_TARGETS" \
    PUBLISHER_METRICS_TARGETS="$PUBLISHER_METRICS_TARGETS" \
    bash "$SCRIPTS_DIR/render-config.sh" "$1" "$2" || die "could not render $1"
}

# validate_config WHAT CMD...: run a config checker, show its words on failure.
validate_config() {
  local what=$1 output
  shift
  if ! output=$("$@" 2>&1); then
    printf '%s\n' "$output" | sed 's/^/    /' >&2
    die "invalid $what config (checked with: $*)"
  fi
  log "$what config valid"
}

# --- the $STACK_DIR/env contract ---------------------------------------------
# Written (atomically, whole) by every component start: all values follow from
# the settings, so each writer produces the same file.
write_env_file() {
  local file="$STACK_DIR/env" key
  local keys=(KAFKA_BROKERS ALERTS_TOPIC DLQ_TOPIC TOPIC_PARTITIONS DEEPHAVEN_URL
    PROMETHEUS_URL ALERTMANAGER_URL INGEST_PORT INGEST_URL PUBLISHER_METRICS_PORT
    STACK_DIR REPO_ROOT)
  [[ -n "${DEEPHAVEN_PSK:-}" ]] && keys+=(DEEPHAVEN_PSK)
  [[ -n "${DEEPHAVEN_SESSION_DURATION_MS:-}" ]] && keys+=(DEEPHAVEN_SESSION_DURATION_MS)
  mkdir -p "$STACK_DIR"
  {
    echo "# Written by scripts/*.sh: the local stack's addresses. Source it."
    for key in "${keys[@]}"; do
      printf 'export %s=%q\n' "$key" "${!key}"
    done
  } >"$file.tmp"
  chmod 600 "$file.tmp" # may hold DEEPHAVEN_PSK
  if ! cmp -s "$file.tmp" "$file"; then mv -f "$file.tmp" "$file"; else rm -f "$file.tmp"; fi
}

# --- component scripts ------------------------------------------------------
# component_cli NAME LAUNCH_FN AWAIT_READY_FN STOP_DEADLINE_S ACTION
#   start:  launch unless already running, then await readiness (quick when
#           ready already) and write $STACK_DIR/env. A process launched now
#           that never gets ready is stopped again.
#   stop:   stop by PID.   status: exit 0 when running, 3 when not.
component_cli() {
  local name=$1 launch=$2 await_ready=$3 stop_deadline=$4 action=${5:-}
  case "$action" in
    start)
      mkdir -p "$STACK_DIR"/{pids,logs,config}
      local launched=false
      if is_running "$name"; then
        log "$name already running (pid $(pid_of "$name"))"
      else
        "$launch" || {
          print_log_tail "$name"
          die "could not start $name"
        }
        launched=true
      fi
      if ! "$await_ready"; then
        if [[ "$launched" == true ]]; then stop_process "$name" "$stop_deadline" || true; fi
        die "$name did not get ready"
      fi
      write_env_file
      log "$name ready"
      ;;
    stop) stop_process "$name" "$stop_deadline" || [[ $? == 2 ]] ;;
    status)
      if is_running "$name"; then
        echo "$name: running (pid $(pid_of "$name"))"
      else
        echo "$name: stopped"
        return 3
      fi
      ;;
    restart)
      stop_process "$name" "$stop_deadline" || true
      component_cli "$name" "$launch" "$await_ready" "$stop_deadline" start
      ;;
    *)
      echo "usage: $(basename "$0") start|stop|status|restart" >&2
      return 64
      ;;
  esac
}

# --- what runs --------------------------------------------------------------
# The stack's components (each has scripts/NAME.sh) and the project's own
# services (started by start.sh), in start order.
STACK_COMPONENTS=(broker deephaven alertmanager prometheus)
SERVICES=(ingest publisher)
SERVICE_STOP_DEADLINE_S=15
# Present while stack-down.sh runs, so that start.sh's watcher takes the
# processes' exits as intended rather than as crashes.
STOPPING_MARKER="$STACK_DIR/stopping"

# Sets the marker until the calling script exits (takes over its EXIT trap).
mark_stopping() {
  mkdir -p "$STACK_DIR"
  touch "$STOPPING_MARKER"
  trap 'rm -f "$STOPPING_MARKER"' EXIT
}

# Stops the project's services in reverse start order; gone ones are fine.
stop_services() {
  local i failed=0
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    stop_process "${SERVICES[i]}" "$SERVICE_STOP_DEADLINE_S" || failed=1
  done
  return "$failed"
}

# --- venv -------------------------------------------------------------------
ensure_venv() {
  [[ -x "$VENV_PYTHON" ]] && return 0
  local python=${PYTHON:-python3}
  command -v "$python" >/dev/null || die "$python not found (set PYTHON)"
  log "creating venv $VENV_DIR"
  "$python" -m venv "$VENV_DIR"
}

# pip_install_pinned DIST==VERSION: skip when that version is installed.
pip_install_pinned() {
  local spec=$1 dist=${1%%==*} version=${1##*==} have
  have=$("$VENV_PYTHON" -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$dist")
  if [[ "$have" == "$version" ]]; then
    log "$dist $version already installed"
    return 0
  fi
  log "pip install $spec${have:+ (have $have)}"
  "$VENV_PYTHON" -m pip install -q --disable-pip-version-check "$spec"
}

# apt_install PKG...: installs with services kept from starting (their
# postinst would try; there is no init system to start them here).
apt_install() {
  [[ $EUID == 0 ]] || die "apt-get needs root: install $* by hand"
  local policy=/usr/sbin/policy-rc.d created=false
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created=true
  fi
  # Called only when something is missing, so the index refresh is worth it.
  log "apt-get update"
  local status=0
  apt-get update -qq || status=$?
  if ((status == 0)); then
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
  fi
  if [[ "$created" == true ]]; then rm -f "$policy"; fi
  ((status == 0)) || die "apt-get install $* failed"
}
