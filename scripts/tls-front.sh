#!/usr/bin/env bash
# tls-front.sh start|stop|status|restart: HAProxy terminating TLS on
# 127.0.0.1:$TLS_FRONT_PORT and passing the bytes on to $TLS_FRONT_BACKEND, so
# that a server which speaks plaintext only (the local broker, Deephaven's
# h2c) can be reached over TLS, as managed Kafka and Deephaven behind an
# ingress are. The tests use it with a CA of their own.
#
# Env: STACK_DIR, TLS_FRONT_PORT (required), TLS_FRONT_BACKEND (host:port,
#      required), TLS_FRONT_CERT (PEM file with the certificate chain and its
#      key, required), TLS_FRONT_ALPN (optional, e.g. h2 for gRPC),
#      TLS_FRONT_CLIENT_CA (optional: a CA file; clients must then present a
#      certificate it signed, mutual TLS), READY_DEADLINE_S (30).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=tls-front
STOP_DEADLINE_S=10
CONFIG_FILE="$STACK_DIR/config/tls-front.cfg"

write_config() {
  local port=${TLS_FRONT_PORT:?TLS_FRONT_PORT: the port to take TLS connections on}
  local backend=${TLS_FRONT_BACKEND:?TLS_FRONT_BACKEND: host:port of the plaintext server}
  local cert=${TLS_FRONT_CERT:?TLS_FRONT_CERT: PEM file with the certificate chain and key}
  local alpn=""
  [[ -n "${TLS_FRONT_ALPN:-}" ]] && alpn=" alpn $TLS_FRONT_ALPN"
  local client_verification=""
  [[ -n "${TLS_FRONT_CLIENT_CA:-}" ]] && client_verification=" ca-file $TLS_FRONT_CLIENT_CA verify required"
  mkdir -p "$(dirname "$CONFIG_FILE")"
  cat >"$CONFIG_FILE.tmp" <<CFG
# Written by scripts/tls-front.sh.
global
    log stdout format raw local0 notice

defaults
    mode tcp
    log global
    timeout connect 2s
    # Kafka and gRPC connections are long-lived and may idle between requests.
    timeout client 10m
    timeout server 10m

frontend tls
    bind 127.0.0.1:$port ssl crt $cert$alpn$client_verification
    default_backend plaintext

backend plaintext
    server upstream $backend
CFG
  mv "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

launch_front() {
  launch_haproxy "$NAME" "$TLS_FRONT_PORT" "$CONFIG_FILE" write_config
}

await_front_ready() {
  wait_for_port 127.0.0.1 "$TLS_FRONT_PORT" "$READY_DEADLINE_S" "the TLS front" "$NAME"
}

component_cli "$NAME" launch_front await_front_ready "$STOP_DEADLINE_S" "$@"
