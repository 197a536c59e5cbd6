#!/usr/bin/env bash
# balancer.sh start|stop|status|restart: HAProxy on 127.0.0.1:$BALANCER_PORT
# in front of several local ingest instances ($BALANCER_BACKENDS), configured
# as compose/haproxy.cfg is (the config is made from it): round robin, each
# instance health-checked on /readyz, a refused connection retried on another.
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

# The compose stack's config is the one source (its comments give the
# reasoning); the local one is made from it, so the two cannot drift. What
# differs is where things are: listening on 127.0.0.1 at our ports, the
# instances listed rather than found through Docker's DNS (no resolvers
# section, no resolver options), no stats page; and the log, a file of the
# stack here, keeps notices only (no line per request). Comments are left out.
write_config() {
  local backends=${BALANCER_BACKENDS:?BALANCER_BACKENDS: the ingest instances, host:port,...}
  local source="$REPO_ROOT/compose/haproxy.cfg"
  mkdir -p "$(dirname "$CONFIG_FILE")"
  {
    echo "# Written by scripts/balancer.sh from compose/haproxy.cfg; read that for the reasoning."
    awk -v port="$BALANCER_PORT" -v health_port="$BALANCER_HEALTH_PORT" -v backends="$backends" '
      /^[[:space:]]*(#|$)/ { next }
      /^[^[:space:]]/ { skip = ($1 == "resolvers" || ($1 == "frontend" && $2 == "stats")) }
      skip { next }
      $1 == "log" && $2 == "stdout" { print "    log stdout format raw local0 notice"; next }
      $1 == "option" && $2 == "httplog" { next }
      $1 == "bind" && $2 == ":8080" { print "    bind 127.0.0.1:" port; next }
      $1 == "bind" && $2 == ":8405" { print "    bind 127.0.0.1:" health_port; next }
      $1 == "default-server" { sub(/ resolvers .*/, ""); print; next }
      $1 == "server-template" {
        count = split(backends, servers, ",")
        for (i = 1; i <= count; i++) if (servers[i] != "") print "    server ingest" (++listed) " " servers[i]
        next
      }
      { print }
    ' "$source"
  } >"$CONFIG_FILE.tmp"
  # A change to compose/haproxy.cfg that these rules no longer fit fails here,
  # not as a balancer that listens elsewhere or resolves through Docker.
  if ! grep -q "^    bind 127.0.0.1:$BALANCER_PORT\$" "$CONFIG_FILE.tmp" ||
    ! grep -q "^    bind 127.0.0.1:$BALANCER_HEALTH_PORT\$" "$CONFIG_FILE.tmp" ||
    ! grep -q "^    server ingest1 " "$CONFIG_FILE.tmp" ||
    grep -Eq "resolvers|server-template|init-addr|bind :" "$CONFIG_FILE.tmp"; then
    die "compose/haproxy.cfg no longer fits the rules that make the local config from it (scripts/balancer.sh)"
  fi
  mv "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

launch_balancer() {
  launch_haproxy "$NAME" "$BALANCER_PORT" "$CONFIG_FILE" write_config
}

await_balancer_ready() {
  wait_for_http "http://127.0.0.1:$BALANCER_HEALTH_PORT/healthz" "$READY_DEADLINE_S" "HAProxy with an ingest instance up" "$NAME"
}

component_cli "$NAME" launch_balancer await_balancer_ready "$STOP_DEADLINE_S" "$@"
