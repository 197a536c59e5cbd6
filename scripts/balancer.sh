#!/usr/bin/env bash
# balancer.sh start|stop|status|restart: HAProxy on 127.0.0.1:$BALANCER_PORT
# in front of several local ingest instances ($BALANCER_BACKENDS), the local
# twin of compose/haproxy.cfg: round robin, each instance health-checked on
# /readyz every second, a refused connection retried on another instance.
# Ready when its own /healthz answers 200, i.e. some instance is up.
#
# Env: STACK_DIR, BALANCER_PORT (8080), BALANCER_BACKENDS (comma-separated
#      host:port list, required), BALANCER_HEALTH_PORT ($BALANCER_PORT + 1000),
#      READY_DEADLINE_S (30).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=balancer
STOP_DEADLINE_S=10
BALANCER_PORT="${BALANCER_PORT:-8080}"
BALANCER_HEALTH_PORT="${BALANCER_HEALTH_PORT:-$((BALANCER_PORT + 1000))}"
CONFIG_FILE="$STACK_DIR/config/haproxy.cfg"

write_config() {
  local backends=${BALANCER_BACKENDS:?BALANCER_BACKENDS: the ingest instances, host:port,...}
  local server index=0
  mkdir -p "$(dirname "$CONFIG_FILE")"
  {
    cat <<CFG
# Written by scripts/balancer.sh; see compose/haproxy.cfg for the reasoning.
global
    log stdout format raw local0 notice

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 30s
    timeout server 15s
    timeout http-request 10s
    retries 2
    option redispatch

frontend webhooks
    bind 127.0.0.1:$BALANCER_PORT
    default_backend ingest

frontend health
    bind 127.0.0.1:$BALANCER_HEALTH_PORT
    monitor-uri /healthz
    acl no_instance_up nbsrv(ingest) lt 1
    monitor fail if no_instance_up

backend ingest
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 1
CFG
    for server in ${backends//,/ }; do
      index=$((index + 1))
      echo "    server ingest$index $server"
    done
  } >"$CONFIG_FILE.tmp"
  mv "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

launch_balancer() {
  launch_haproxy "$NAME" "$BALANCER_PORT" "$CONFIG_FILE" write_config
}

await_balancer_ready() {
  wait_for_http "http://127.0.0.1:$BALANCER_HEALTH_PORT/healthz" "$READY_DEADLINE_S" "HAProxy with an ingest instance up" "$NAME"
}

component_cli "$NAME" launch_balancer await_balancer_ready "$STOP_DEADLINE_S" "$@"
