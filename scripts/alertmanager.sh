#!/usr/bin/env bash
# alertmanager.sh start|stop|status|restart: the local Alertmanager on
# 127.0.0.1:$ALERTMANAGER_PORT, routing every alert to the ingest webhook at
# $INGEST_URL. Renders alertmanager/config.yml into $STACK_DIR/config/,
# checks it with amtool, and is ready when /-/ready answers 200. No cluster
# gossip port (--cluster.listen-address= empty).
#
# Env: STACK_DIR, ALERTMANAGER_PORT (9093), INGEST_PORT (8080),
#      INGEST_URL (http://127.0.0.1:$INGEST_PORT/alerts), READY_DEADLINE_S (30).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=alertmanager
STOP_DEADLINE_S=15
CONFIG_FILE="$STACK_DIR/config/alertmanager.yml"

launch_alertmanager() {
  command -v prometheus-alertmanager >/dev/null || die "no prometheus-alertmanager: run scripts/install-monitoring.sh"
  port_is_open 127.0.0.1 "$ALERTMANAGER_PORT" &&
    die "port $ALERTMANAGER_PORT is already in use by a process this stack did not start"
  render_config "$REPO_ROOT/alertmanager/config.yml" "$CONFIG_FILE"
  validate_config Alertmanager amtool check-config "$CONFIG_FILE"
  mkdir -p "$STACK_DIR/alertmanager"
  start_background "$NAME" prometheus-alertmanager \
    --config.file="$CONFIG_FILE" \
    --storage.path="$STACK_DIR/alertmanager" \
    --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" \
    --web.external-url="$ALERTMANAGER_URL" \
    --cluster.listen-address=
}

await_alertmanager_ready() {
  wait_for_http "$ALERTMANAGER_URL/-/ready" "$READY_DEADLINE_S" Alertmanager "$NAME"
}

component_cli "$NAME" launch_alertmanager await_alertmanager_ready "$STOP_DEADLINE_S" "$@"
