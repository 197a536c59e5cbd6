#!/usr/bin/env bash
# bench.sh: ingest throughput and latency on the local real broker, each figure beside a ceiling measured in the
# same run. Prints one JSON line per measurement and a summary; figures vary ±50 % on a shared 2-core machine, so
# compare the ratios within one run.
#
# Measured: release ingest (lz4, acks=all, idempotent) in front of the Tansu broker, driven by tests/src/bin/loadgen.
#   - saturation with 1, 10 and 100 alerts per body (32 connections);
#   - p50/p99 latency at fixed request rates (100 and 1,000 req/s, 10 alerts per body);
#   - ceiling: the same load against the same ingest answering 401 before reading the body (auth on, no
#     credentials sent): HTTP framework and connection costs with no parsing and no Kafka;
#   - peak RSS of ingest (VmHWM).
# Not yet measured: publisher replay rows/s, end-to-end latency (issue 7 lists them).
#
# Env: BENCH_SECONDS (10), BENCH_CONNECTIONS (32).
set -euo pipefail
export STACK_DIR="${STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.stack-bench}"
export BROKER_PORT="${BROKER_PORT:-29092}" TOPIC_PARTITIONS="${TOPIC_PARTITIONS:-6}"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_EACH="${BENCH_SECONDS:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
INGEST_BENCH_PORT=28080
LOADGEN="$REPO_ROOT/target/release/loadgen"

cleanup() {
  stop_process ingest-bench 15 || true
  bash "$SCRIPTS_DIR/broker.sh" stop || true
}

start_ingest() { # extra env assignments...
  stop_process ingest-bench 15 || true
  start_background ingest-bench env INGEST_SERVER__PORT="$INGEST_BENCH_PORT" \
    INGEST_KAFKA__BROKERS="127.0.0.1:$BROKER_PORT" INGEST_KAFKA__TOPIC="$ALERTS_TOPIC" \
    INGEST_LOG__FILTER=error "$@" "$REPO_ROOT/target/release/ingest"
  wait_for_http "http://127.0.0.1:$INGEST_BENCH_PORT/readyz" 30 "ingest" ingest-bench
}

load() { # loadgen args...
  "$LOADGEN" --url "http://127.0.0.1:$INGEST_BENCH_PORT/alerts" --seconds "$SECONDS_EACH" --connections "$CONNECTIONS" "$@"
}

peak_rss_mb() {
  local pid
  read -r pid _ <"$(pid_file ingest-bench)"
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"
}

main() {
  bash "$SCRIPTS_DIR/install-broker.sh"
  (cd "$REPO_ROOT" && cargo build --release --locked --bin ingest --bin loadgen)
  trap cleanup EXIT
  bash "$SCRIPTS_DIR/broker.sh" start

  start_ingest
  log "ingest, saturation"
  for alerts in 1 10 100; do load --alerts "$alerts"; done
  log "ingest, fixed rates (10 alerts per body)"
  for rate in 100 1000; do load --alerts 10 --rate "$rate"; done
  log "ingest peak RSS: $(peak_rss_mb) MB"

  start_ingest INGEST_AUTH__BEARER_TOKENS=bench-token
  log "ceiling: the same HTTP load answered 401 before the body is read"
  for alerts in 1 10 100; do load --alerts "$alerts"; done
}

main "$@"
