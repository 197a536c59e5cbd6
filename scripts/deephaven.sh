#!/usr/bin/env bash
# deephaven.sh start|stop|status|restart: the local Deephaven server (embedded
# from Python by scripts/deephaven_server.py), on 127.0.0.1:$DEEPHAVEN_PORT,
# gRPC and web IDE on the same port. State under $STACK_DIR/deephaven/ (no
# persistence: every table is gone after a restart). Ready when GET /ide/ is 200.
# Runs the dashboard (dashboard/) in Application Mode unless told otherwise.
#
# Env: STACK_DIR, DEEPHAVEN_PORT (10000), DEEPHAVEN_HEAP (2g), DEEPHAVEN_TIMEZONE (UTC),
#      DEEPHAVEN_PSK (unset: anonymous auth; set: pre-shared key auth),
#      DEEPHAVEN_BASIC_USER + DEEPHAVEN_BASIC_PASSWORD (set: HTTP basic auth
#        accepting this one user; its handler is compiled on first use),
#      DEEPHAVEN_SESSION_DURATION_MS (unset: server default 300000),
#      DEEPHAVEN_SCRIPT (a Python file run in the server once it serves; bench.sh),
#      DEEPHAVEN_APP_DIR (the Application Mode directory run at start; default
#        dashboard/, the dashboard; empty for none),
#      ALERTHAVEN_TABLE_PREFIX (the publisher's table prefix, read by the dashboard),
#      DEEPHAVEN_JVM_OPTIONS (more JVM options, space-separated, after the
#        package's own: e.g. another garbage collector),
#      DEEPHAVEN_READY_DEADLINE_S (120), DEEPHAVEN_JAVA_HOME (Debian's Java 17).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=deephaven
# Shutdown hooks flush and close; give them time before SIGKILL.
STOP_DEADLINE_S=30

launch_deephaven() {
  [[ -x "$VENV_PYTHON" ]] || die "no venv: run scripts/install-deephaven.sh"
  port_is_open 127.0.0.1 "$DEEPHAVEN_PORT" &&
    die "port $DEEPHAVEN_PORT is already in use by a process this stack did not start"
  # DEEPHAVEN_PSK and DEEPHAVEN_BASIC_* reach the launcher through the
  # environment, not argv (ps); the basic password goes no further than the
  # environment (the JVM's handler reads it there).
  JAVA_HOME="${DEEPHAVEN_JAVA_HOME:-$JAVA17_HOME}" \
    start_background "$NAME" "$VENV_PYTHON" -u "$SCRIPTS_DIR/deephaven_server.py" \
    --host 127.0.0.1 --port "$DEEPHAVEN_PORT" --heap "$DEEPHAVEN_HEAP" --timezone "$DEEPHAVEN_TIMEZONE" \
    --state-dir "$STACK_DIR/deephaven"
}

await_deephaven_ready() {
  wait_for_http "$DEEPHAVEN_URL/ide/" "$DEEPHAVEN_READY_DEADLINE_S" "Deephaven web IDE" "$NAME"
}

component_cli "$NAME" launch_deephaven await_deephaven_ready "$STOP_DEADLINE_S" "$@"
