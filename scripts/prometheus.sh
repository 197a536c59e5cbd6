#!/usr/bin/env bash
# prometheus.sh start|stop|status|restart: the local Prometheus on
# 127.0.0.1:$PROMETHEUS_PORT, scraping the stack and the project's services,
# evaluating prometheus/rules.yml and alerting to the local Alertmanager.
# Renders prometheus/prometheus.yml (+ rules.yml beside it) into
# $STACK_DIR/config/, checks them with promtool, and is ready when /-/ready
# answers 200. The alert resend delay is 5 s: with the default 1 m the first
# webhook waited out a whole resend delay (measured: docs/benchmarks.md,
# section "Figures moved out of code comments (2026-12-06)").
#
# Env: STACK_DIR, PROMETHEUS_PORT (9090), ALERTMANAGER_PORT (9093),
#      INGEST_METRICS_TARGETS, PUBLISHER_METRICS_TARGETS, DEAD_TARGET (see
#      lib.sh), READY_DEADLINE_S (30).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=prometheus
STOP_DEADLINE_S=20
CONFIG_FILE="$STACK_DIR/config/prometheus.yml"

launch_prometheus() {
  command -v prometheus >/dev/null || die "no prometheus: run scripts/install-monitoring.sh"
  port_is_open 127.0.0.1 "$PROMETHEUS_PORT" &&
    die "port $PROMETHEUS_PORT is already in use by a process this stack did not start"
  render_config "$REPO_ROOT/prometheus/prometheus.yml" "$CONFIG_FILE"
  # rules.yml has no placeholders; prometheus.yml names it relative to itself.
  cp -f "$REPO_ROOT/prometheus/rules.yml" "$(dirname "$CONFIG_FILE")/rules.yml"
  validate_config Prometheus promtool check config "$CONFIG_FILE"
  mkdir -p "$STACK_DIR/prometheus"
  start_background "$NAME" prometheus \
    --config.file="$CONFIG_FILE" \
    --storage.tsdb.path="$STACK_DIR/prometheus" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --web.external-url="$PROMETHEUS_URL" \
    --rules.alert.resend-delay=5s
}

await_prometheus_ready() {
  wait_for_http "$PROMETHEUS_URL/-/ready" "$READY_DEADLINE_S" Prometheus "$NAME"
}

component_cli "$NAME" launch_prometheus await_prometheus_ready "$STOP_DEADLINE_S" "$@"
