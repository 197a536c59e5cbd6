#!/usr/bin/env bash
# bench.sh: the throughput, latency and memory figures of docs/benchmarks.md, each beside a ceiling from the same run,
# on the local real stack (Tansu broker, Deephaven 42.7, release builds). Prints one JSON line per measurement
# (stdout) and progress on stderr. The machine is shared: compare figures within one run, not across runs.
#
#   1. broker ceiling: `produce-ceiling` produces 1M distinct alert records (ingest's format and producer
#      settings) straight to the broker; the topic is left holding exactly these for step 2.
#   2. publisher: a release `publisher replay` of those 1M records into a fresh Deephaven, timed from its start
#      until `publisher_batch_records_sum` reaches 1M; peak RSS, the CPU seconds each process spent, and
#      Deephaven's RSS before and after (what keeping the derived tables costs it).
#   3. peer: Deephaven's own Kafka consumer (scripts/bench/kafka_peer.py, run inside a fresh server) consuming the
#      same topic into an append table with a last-by view, timed from its start until `table-progress` sees
#      every record in it.
#   4. Deephaven ceiling: `deephaven-ceiling` appends the same rows, converted before the clock starts, in
#      10,000-row batches into a fresh Deephaven (DoPut + AddTableToInputTable): the publisher's own layout (log +
#      derived tables), the blink log alone, and the keyed layout before it. The Python client's reference figure
#      (docs/benchmarks.md, section "Results — 2026-11-26", its table "publisher") is printed beside it.
#   5. clock: the same records replayed into a fresh Deephaven by a publisher whose time-window tables move on
#      every BENCH_CLOCK_STEP_SECONDS (5); once every record is written, the update graph's work over a minute of
#      nothing written, per step of that clock, as Deephaven's update performance log accounts it
#      (scripts/bench/update_work.py): what a step costs with the records in the tables (a deployment steps once
#      a minute, `deephaven.window_step`).
#   6. ingest, on a fresh broker: `loadgen` saturation at 1, 10 and 100 alerts per body, then fixed request rates
#      (open loop); the same load against `http-ceiling` (actix-web reading the body and answering 200, no parsing,
#      no Kafka); ingest's peak RSS.
#   7. end to end, on a fresh broker and Deephaven: ingest and a following publisher; after a 10 s warm-up,
#      `latency` posts 100 and 1,000 alerts/s and measures from each 200 to the row's `SeenAt = now()` in
#      Deephaven, with the publisher's delay histograms over each run (Kafka against Deephaven); peak RSS of both.
#   8. retention (only when asked for: BENCH_STEPS=retention), on a fresh broker and Deephaven each time: ingest and
#      a publisher at `deephaven.retention` 60 s, then at the default 30 days, under 500 new alert states/s for
#      BENCH_RETENTION_SECONDS; Deephaven's live heap after a full GC every 30 s (what the retention bounds).
#
# Fresh broker and Deephaven between steps because both slow down as they fill (Deephaven's heap fills with a million
# wide rows per table; Tansu 0.6.0, as install-broker.sh pins it, lists every batch of a partition to serve a fetch:
# upstream nisshi-io/nisshi#684, Tansu's repository renamed). The broker's part of that reason goes when the pinned
# Tansu has #684 fixed.
#
# Env: BENCH_SECONDS (10, per load run), BENCH_CONNECTIONS (32), BENCH_RECORDS (1000000),
#      BENCH_LATENCY_SECONDS (30), BENCH_RETENTION_SECONDS (300), BENCH_CLOCK_STEP_SECONDS (5),
#      BENCH_DEEPHAVEN_HEAP (6g), BENCH_STEPS ("publisher clock ingest end-to-end": steps 2-4, 5, 6 and 7;
#      "retention" for step 8; step 1, the broker ceiling, always runs).
set -euo pipefail
export STACK_DIR="${STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.stack-bench}"
export BROKER_PORT="${BROKER_PORT:-29092}" TOPIC_PARTITIONS="${TOPIC_PARTITIONS:-6}"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_EACH="${BENCH_SECONDS:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
RECORDS="${BENCH_RECORDS:-1000000}"
LATENCY_SECONDS="${BENCH_LATENCY_SECONDS:-30}"
RETENTION_SECONDS="${BENCH_RETENTION_SECONDS:-300}"
STEPS="${BENCH_STEPS:-publisher clock ingest end-to-end}"
CLOCK_STEP_SECONDS="${BENCH_CLOCK_STEP_SECONDS:-5}"
INGEST_BENCH_PORT=28080
HTTP_CEILING_PORT=28090
PUBLISHER_BENCH_PORT=28102
export DEEPHAVEN_PORT="${DEEPHAVEN_BENCH_PORT:-20100}" DEEPHAVEN_HEAP="${BENCH_DEEPHAVEN_HEAP:-6g}"
DEEPHAVEN_URL="http://127.0.0.1:$DEEPHAVEN_PORT"
BIN="$REPO_ROOT/target/release"

cleanup() {
  for name in ingest-bench http-ceiling publisher-bench; do stop_process "$name" 15 || true; done
  bash "$SCRIPTS_DIR/deephaven.sh" stop || true
  bash "$SCRIPTS_DIR/broker.sh" stop || true
}

fresh_broker() {
  bash "$SCRIPTS_DIR/broker.sh" stop
  bash "$SCRIPTS_DIR/broker.sh" start
}

fresh_deephaven() {
  bash "$SCRIPTS_DIR/deephaven.sh" stop
  bash "$SCRIPTS_DIR/deephaven.sh" start
}

start_ingest() {
  stop_process ingest-bench 15 || true
  start_background ingest-bench env INGEST_SERVER__PORT="$INGEST_BENCH_PORT" \
    INGEST_KAFKA__BROKERS="127.0.0.1:$BROKER_PORT" INGEST_KAFKA__TOPIC="$ALERTS_TOPIC" \
    INGEST_LOG__FILTER=error "$BIN/ingest"
  wait_for_http "http://127.0.0.1:$INGEST_BENCH_PORT/readyz" 30 "ingest" ingest-bench
}

start_publisher() { # publisher arguments (none: follow; "replay")
  stop_process publisher-bench 15 || true
  start_background publisher-bench env PUBLISHER_SERVER__PORT="$PUBLISHER_BENCH_PORT" \
    PUBLISHER_KAFKA__BROKERS="127.0.0.1:$BROKER_PORT" PUBLISHER_KAFKA__TOPIC="$ALERTS_TOPIC" \
    PUBLISHER_KAFKA__DLQ_TOPIC="$DLQ_TOPIC" PUBLISHER_KAFKA__GROUP_ID="bench-$$-$RANDOM" \
    PUBLISHER_DEEPHAVEN__URL="$DEEPHAVEN_URL" PUBLISHER_DEEPHAVEN__TABLE_PREFIX=bench_ \
    PUBLISHER_LOG__FILTER=warn "$BIN/publisher" "$@"
}

load() { # port loadgen-args...
  local port=$1
  shift
  "$BIN/loadgen" --url "http://127.0.0.1:$port/alerts" --seconds "$SECONDS_EACH" --connections "$CONNECTIONS" "$@"
}

pid_by_name() { local pid _rest; read -r pid _rest <"$(pid_file "$1")"; echo "$pid"; }

peak_rss_mb() { # process name
  awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$(pid_by_name "$1")/status"
}

rss_mb() { # process name: resident now
  awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$(pid_by_name "$1")/status"
}

live_heap_mb() { # Deephaven's live heap after a full GC, with the jcmd of the JDK whose libjvm.so the server runs
  local pid libjvm jcmd
  pid=$(pid_by_name deephaven)
  libjvm=$(grep -o '/[^ ]*/libjvm.so' "/proc/$pid/maps" | head -n 1)
  jcmd="$(dirname "$(dirname "$(dirname "$libjvm")")")/bin/jcmd"
  "$jcmd" "$pid" GC.run >/dev/null
  "$jcmd" "$pid" GC.heap_info | sed -n 's/.*used \([0-9]*\)K.*/\1/p' | head -n 1 | awk '{ printf "%.0f", $1 / 1024 }'
}

cpu_seconds() { # pid: user + system CPU seconds so far
  awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$1/stat"
}

metric_sum() { # url metric-name [printf format, %d]: the sum of the metric's samples
  curl -fsS "$1" | awk -v name="$2" -v format="${3:-%d}" \
    '$1 == name || index($1, name "{") == 1 { sum += $2 } END { printf format, sum }'
}

# Waits until the running publisher has written $1 records; prints how many it wrote.
wait_until_written() { # records to expect
  local written=0
  while ((written < $1)); do
    is_running publisher-bench || die "the publisher exited during the replay"
    sleep 0.2
    written=$(metric_sum "http://127.0.0.1:$PUBLISHER_BENCH_PORT/metrics" publisher_batch_records_sum || echo 0)
  done
  echo "$written"
}

# Replays the pre-filled topic into a fresh Deephaven and times it until every record is written.
bench_publisher_replay() { # records to expect
  local expected=$1 written started elapsed publisher deephaven broker deephaven_rss_before
  local metrics="http://127.0.0.1:$PUBLISHER_BENCH_PORT/metrics"
  local -a cpu_before
  deephaven=$(pid_by_name deephaven) broker=$(pid_by_name broker)
  deephaven_rss_before=$(rss_mb deephaven)
  cpu_before=("$(cpu_seconds "$deephaven")" "$(cpu_seconds "$broker")")
  started=$(date +%s.%N)
  start_publisher replay
  written=$(wait_until_written "$expected")
  elapsed=$(awk -v start="$started" -v end="$(date +%s.%N)" 'BEGIN { printf "%.2f", end - start }')
  publisher=$(pid_by_name publisher-bench)
  printf '{"bench":"publisher replay","records":%d,"seconds":%s,"records_per_s":%.0f,' \
    "$written" "$elapsed" "$(awk -v n="$written" -v s="$elapsed" 'BEGIN { print n / s }')"
  # How many writes, and how long they took together: the rest of the time the writer waited for records.
  printf '"batches":%s,"writing_s":%s,' "$(metric_sum "$metrics" publisher_batch_records_count)" \
    "$(metric_sum "$metrics" publisher_write_duration_seconds_sum %.1f)"
  printf '"deephaven_rss_mb":{"before":%s,"after":%s},' "$deephaven_rss_before" "$(rss_mb deephaven)"
  printf '"peak_rss_mb":%s,"cpu_s":{"publisher":%s,"deephaven":%s,"broker":%s}}\n' "$(peak_rss_mb publisher-bench)" \
    "$(cpu_seconds "$publisher")" \
    "$(awk -v a="$(cpu_seconds "$deephaven")" -v b="${cpu_before[0]}" 'BEGIN { printf "%.1f", a - b }')" \
    "$(awk -v a="$(cpu_seconds "$broker")" -v b="${cpu_before[1]}" 'BEGIN { printf "%.1f", a - b }')"
  stop_process publisher-bench 15
}

# The update graph's work per step of the time-window tables' clock, with the pre-filled topic's records in the
# tables, as its own performance log accounts it (scripts/bench/update_work.py), in a fresh Deephaven.
bench_clock_step() { # records to expect
  local work="$STACK_DIR/update-work.csv" started ended interval_ms=10000
  bash "$SCRIPTS_DIR/deephaven.sh" stop
  rm -f "$work"
  DEEPHAVEN_SCRIPT="$SCRIPTS_DIR/bench/update_work.py" BENCH_UPDATE_WORK="$work" \
    JAVA_TOOL_OPTIONS="-DUpdatePerformanceTracker.reportIntervalMillis=$interval_ms" \
    bash "$SCRIPTS_DIR/deephaven.sh" start
  PUBLISHER_DEEPHAVEN__WINDOW_STEP="${CLOCK_STEP_SECONDS}s" start_publisher replay
  wait_until_written "$1" >/dev/null
  # The replay's last update cycles are not the clock's: the measured minute starts one interval later.
  sleep $((interval_ms / 1000))
  started=$(date +%s%N)
  sleep 60
  ended=$(date +%s%N)
  # Every interval inside the minute is in the file once one starting after the minute's end is.
  local deadline=$((SECONDS + 60))
  until [[ -s "$work" ]] && awk -F, -v until="$ended" '$1 >= until { found = 1 } END { exit !found }' "$work"; do
    ((SECONDS < deadline)) || die "Deephaven reported no update work after the measured minute in $work"
    sleep 1
  done
  awk -F, -v from="$started" -v until="$ended" -v interval="$interval_ms" -v step="$CLOCK_STEP_SECONDS" \
    -v n="$1" '$1 >= from && $1 + interval * 1e6 <= until { intervals++; usage += $2; cpu += $3 }
    END {
      steps = intervals * interval / 1000 / step
      if (steps < 1) { print "no reporting interval inside the measured minute" > "/dev/stderr"; exit 1 }
      printf "{\"bench\":\"clock step\",\"records\":%d,\"step_s\":%d,\"steps\":%.0f,", n, step, steps
      printf "\"update_ms_per_step\":%.1f,\"update_cpu_ms_per_step\":%.1f}\n", usage / 1e6 / steps, cpu / 1e6 / steps
    }' "$work"
  stop_process publisher-bench 15
}

# Deephaven's own Kafka consumer on the same topic, in a fresh server: from the moment it starts consuming until
# every record is in its table.
bench_kafka_peer() { # records to expect
  local expected=$1 started finished deephaven cpu_before
  bash "$SCRIPTS_DIR/deephaven.sh" stop
  DEEPHAVEN_SCRIPT="$SCRIPTS_DIR/bench/kafka_peer.py" BENCH_PEER_BROKERS="127.0.0.1:$BROKER_PORT" \
    BENCH_PEER_TOPIC="$ALERTS_TOPIC" bash "$SCRIPTS_DIR/deephaven.sh" start
  deephaven=$(pid_by_name deephaven)
  cpu_before=$(cpu_seconds "$deephaven")
  finished=$("$BIN/table-progress" --url "$DEEPHAVEN_URL" --table peer_alert_log --records "$expected" |
    sed -n 's/.*"finished_at":\([0-9.]*\).*/\1/p')
  started=$(sed -n 's/^kafka-peer-started \([0-9.]*\)$/\1/p' "$(log_file deephaven)" | tail -n 1)
  [[ -n "$started" && -n "$finished" ]] || die "the Kafka peer did not report its start or end"
  awk -v n="$expected" -v a="$started" -v b="$finished" -v c0="$cpu_before" -v c1="$(cpu_seconds "$deephaven")" \
    'BEGIN { printf "{\"bench\":\"Deephaven Kafka consumer (peer)\",\"records\":%d,\"seconds\":%.2f,\"records_per_s\":%.0f,\"cpu_s\":{\"deephaven\":%.1f}}\n", n, b - a, n / (b - a), c1 - c0 }'
}

bench_ingest() {
  start_ingest
  log "ingest: saturation"
  for alerts in 1 10 100; do load "$INGEST_BENCH_PORT" --alerts "$alerts"; done
  log "ingest: fixed request rates (open loop)"
  for rate in 100 1000; do load "$INGEST_BENCH_PORT" --alerts 10 --rate "$rate"; done
  load "$INGEST_BENCH_PORT" --alerts 1 --rate 5000
  printf '{"bench":"ingest peak RSS","peak_rss_mb":%s}\n' "$(peak_rss_mb ingest-bench)"
  stop_process ingest-bench 15

  log "ceiling: the same load against actix-web reading the body and answering 200"
  start_background http-ceiling "$BIN/http-ceiling" --port "$HTTP_CEILING_PORT"
  wait_for_port 127.0.0.1 "$HTTP_CEILING_PORT" 30 "http-ceiling" http-ceiling
  for alerts in 1 10 100; do load "$HTTP_CEILING_PORT" --alerts "$alerts"; done
  stop_process http-ceiling 15
}

bench_end_to_end() {
  start_ingest
  start_publisher
  wait_for_http "http://127.0.0.1:$PUBLISHER_BENCH_PORT/readyz" 60 "publisher" publisher-bench
  latency() { # rate seconds
    "$BIN/latency" --url "http://127.0.0.1:$INGEST_BENCH_PORT/alerts" --deephaven "$DEEPHAVEN_URL" \
      --table bench_alert_events --rate "$1" --alerts 10 --seconds "$2" \
      --publisher-metrics "http://127.0.0.1:$PUBLISHER_BENCH_PORT/metrics"
  }
  # A just-started Deephaven compiles its hot paths during the first seconds of load; a deployed one has long
  # since done so, so the measured runs follow a warm-up that is reported on stderr only.
  log "warm-up: $(latency 1000 10)"
  for rate in 100 1000; do latency "$rate" "$LATENCY_SECONDS"; done
  printf '{"bench":"end to end peak RSS","ingest_mb":%s,"publisher_mb":%s}\n' \
    "$(peak_rss_mb ingest-bench)" "$(peak_rss_mb publisher-bench)"
  stop_process publisher-bench 15
  stop_process ingest-bench 15
}

# Deephaven's live heap under a steady stream of new alert states, with the publisher at retention $1.
bench_retention() { # retention
  local samples elapsed=0 loadgen
  fresh_broker
  fresh_deephaven
  start_ingest
  # The grace and a check must fit a slice (a quarter of the retention).
  PUBLISHER_DEEPHAVEN__RETENTION="$1" PUBLISHER_DEEPHAVEN__REFIRE_GRACE=5s start_publisher
  wait_for_http "http://127.0.0.1:$PUBLISHER_BENCH_PORT/readyz" 60 "publisher" publisher-bench
  samples=$(live_heap_mb)
  "$BIN/loadgen" --url "http://127.0.0.1:$INGEST_BENCH_PORT/alerts" --seconds "$RETENTION_SECONDS" --connections 4 \
    --alerts 10 --rate 50 >/dev/null &
  loadgen=$!
  while ((elapsed < RETENTION_SECONDS)); do
    sleep 30
    elapsed=$((elapsed + 30))
    samples="$samples,$(live_heap_mb)"
  done
  wait "$loadgen"
  printf '{"bench":"Deephaven live heap under new states","retention":"%s","states_per_s":500,"every_s":30,"live_heap_mb":[%s]}\n' \
    "$1" "$samples"
  stop_process publisher-bench 15
  stop_process ingest-bench 15
}

main() {
  bash "$SCRIPTS_DIR/install-broker.sh"
  bash "$SCRIPTS_DIR/install-deephaven.sh"
  (cd "$REPO_ROOT" && cargo build --release --locked --bin ingest --bin publisher --bin loadgen \
    --bin produce-ceiling --bin deephaven-ceiling --bin http-ceiling --bin latency --bin table-progress)
  trap cleanup EXIT

  fresh_broker
  log "broker ceiling: $RECORDS records produced directly (and the topic pre-filled for the publisher)"
  "$BIN/produce-ceiling" --brokers "127.0.0.1:$BROKER_PORT" --topic "$ALERTS_TOPIC" --records "$RECORDS"
  if wants publisher; then
    fresh_deephaven
    log "publisher: replaying the $RECORDS records into a fresh Deephaven"
    bench_publisher_replay "$RECORDS"
    log "peer: Deephaven's own Kafka consumer on the same topic"
    bench_kafka_peer "$RECORDS"

    fresh_deephaven
    log "Deephaven ceiling: prepared 10,000-row batches into a fresh Deephaven"
    "$BIN/deephaven-ceiling" --url "$DEEPHAVEN_URL" --rows "$RECORDS" --batch-rows 10000
    echo '{"bench":"Python client reference","rows_per_s":"105000-126000","batch_rows":10000,"bytes_per_row":297,"source":"docs/benchmarks.md (2026-11-26)"}'
  fi

  if wants clock; then
    log "clock: the $RECORDS records replayed, then a minute of time-window steps every ${CLOCK_STEP_SECONDS}s"
    bench_clock_step "$RECORDS"
  fi

  if wants ingest; then
    # A Deephaven that has just taken a million rows stays busy for minutes and slows ingest's figures (measured:
    # docs/benchmarks.md, section "Results — 2026-12-01 (evening): ingest bounded by bytes, `linger` 0"): none runs
    # beside ingest.
    bash "$SCRIPTS_DIR/deephaven.sh" stop
    fresh_broker
    bench_ingest
  fi

  if wants end-to-end; then
    fresh_broker
    fresh_deephaven
    log "end to end: webhook 200 to the row in Deephaven"
    bench_end_to_end
  fi

  if wants retention; then
    for retention in 60s 30days; do
      log "retention: Deephaven's live heap under 500 new states/s, deephaven.retention $retention"
      bench_retention "$retention"
    done
  fi
}

# Whether step $1 is among BENCH_STEPS.
wants() { [[ " $STEPS " == *" $1 "* ]]; }

main "$@"
