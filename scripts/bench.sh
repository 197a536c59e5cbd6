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
#   - publisher: a release `publisher replay` of everything the ingest runs left in the topic (about a million
#     alerts) into a fresh Deephaven, timed from start to the last record written; its peak RSS.
# Not yet measured: the raw DoPut + AddTableToInputTable ceiling, end-to-end latency (issue 7 lists them).
#
# Env: BENCH_SECONDS (10), BENCH_CONNECTIONS (32), BENCH_DEEPHAVEN_HEAP (6g).
set -euo pipefail
export STACK_DIR="${STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.stack-bench}"
export BROKER_PORT="${BROKER_PORT:-29092}" TOPIC_PARTITIONS="${TOPIC_PARTITIONS:-6}"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_EACH="${BENCH_SECONDS:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
INGEST_BENCH_PORT=28080
PUBLISHER_BENCH_PORT=28102
export DEEPHAVEN_PORT="${DEEPHAVEN_BENCH_PORT:-20100}" DEEPHAVEN_HEAP="${BENCH_DEEPHAVEN_HEAP:-6g}"
LOADGEN="$REPO_ROOT/target/release/loadgen"

cleanup() {
  stop_process ingest-bench 15 || true
  stop_process publisher-bench 15 || true
  bash "$SCRIPTS_DIR/deephaven.sh" stop || true
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

peak_rss_mb() { # process name
  local pid
  read -r pid _ <"$(pid_file "$1")"
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"
}

metric_sum() { # url metric-name: the sum of the metric's samples
  curl -fsS "$1" | awk -v name="$2" '$1 == name || index($1, name "{") == 1 { sum += $2 } END { printf "%d", sum }'
}

# Replays the whole topic into a fresh Deephaven and times it until every accepted alert is written.
bench_publisher_replay() { # alerts to expect
  local expected=$1 written=0 started elapsed
  bash "$SCRIPTS_DIR/deephaven.sh" start
  stop_process publisher-bench 15 || true
  started=$(date +%s.%N)
  start_background publisher-bench env PUBLISHER_SERVER__PORT="$PUBLISHER_BENCH_PORT" \
    PUBLISHER_KAFKA__BROKERS="127.0.0.1:$BROKER_PORT" PUBLISHER_KAFKA__TOPIC="$ALERTS_TOPIC" \
    PUBLISHER_KAFKA__DLQ_TOPIC="$DLQ_TOPIC" PUBLISHER_KAFKA__GROUP_ID="bench-$$" \
    PUBLISHER_DEEPHAVEN__URL="http://127.0.0.1:$DEEPHAVEN_PORT" PUBLISHER_DEEPHAVEN__TABLE_PREFIX=bench_ \
    PUBLISHER_LOG__FILTER=warn "$REPO_ROOT/target/release/publisher" replay
  while ((written < expected)); do
    is_running publisher-bench || die "the publisher exited during the replay"
    sleep 0.2
    written=$(metric_sum "http://127.0.0.1:$PUBLISHER_BENCH_PORT/metrics" publisher_batch_records_sum || echo 0)
  done
  elapsed=$(awk -v start="$started" -v end="$(date +%s.%N)" 'BEGIN { printf "%.2f", end - start }')
  printf '{"bench":"publisher replay","records":%d,"seconds":%s,"records_per_second":%.0f,"peak_rss_mb":%s}\n' \
    "$written" "$elapsed" "$(awk -v n="$written" -v s="$elapsed" 'BEGIN { print n / s }')" "$(peak_rss_mb publisher-bench)"
  stop_process publisher-bench 15 || true
}

main() {
  bash "$SCRIPTS_DIR/install-broker.sh"
  bash "$SCRIPTS_DIR/install-deephaven.sh"
  (cd "$REPO_ROOT" && cargo build --release --locked --bin ingest --bin loadgen --bin publisher)
  trap cleanup EXIT
  bash "$SCRIPTS_DIR/broker.sh" start

  start_ingest
  log "ingest, saturation"
  for alerts in 1 10 100; do load --alerts "$alerts"; done
  log "ingest, fixed rates (10 alerts per body)"
  for rate in 100 1000; do load --alerts 10 --rate "$rate"; done
  log "ingest peak RSS: $(peak_rss_mb ingest-bench) MB"
  local accepted
  accepted=$(metric_sum "http://127.0.0.1:$INGEST_BENCH_PORT/metrics" ingest_alerts_accepted_total)
  log "publisher: replaying the $accepted alerts in the topic into a fresh Deephaven"
  bench_publisher_replay "$accepted"

  start_ingest INGEST_AUTH__BEARER_TOKENS=bench-token
  log "ceiling: the same HTTP load answered 401 before the body is read"
  for alerts in 1 10 100; do load --alerts "$alerts"; done
}

main "$@"
