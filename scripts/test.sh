#!/usr/bin/env bash
# test.sh [--quick] [CARGO TEST ARGS...]: what CI runs (.ci/run).
#
# First the checks that need no servers and fail fast (install-checks.sh
# installs what they need): rustfmt, clippy with warnings denied (the lints
# are [workspace.lints] in Cargo.toml), the docs with warnings denied (a
# broken intra-doc link fails), shellcheck over scripts/ and .ci/, the unit
# tests, and the checks of the repository's own files (links between the
# Markdown documents, the settings variables the scripts and stacks give the
# services). `--quick` stops there: what a developer runs before a commit.
#
# Then it installs the stack's prerequisites (and the browser the dashboard
# test drives), starts a separate test stack (own STACK_DIR and ports, so it
# never clashes with a running demo stack), sources its $STACK_DIR/env, runs
# `cargo build --workspace --bins` and `cargo test --workspace --locked
# --no-fail-fast "$@"` (every test binary runs, though one failed), and always
# stops the test stack again, on failure too. Exits with cargo's status. When something failed it prints
# the stack's log tails and then, last (CI shows the tail of the output), which
# tests failed and how; cargo's whole output stays in $STACK_DIR/cargo-test.log.
#
# Test stack: STACK_DIR=$REPO/.stack-test, broker 19092, Deephaven 10100
# (sessions of DEEPHAVEN_SESSION_DURATION_MS=30000), Prometheus 19090,
# Alertmanager 19093, ingest 18080, publisher metrics 19102.
# Env: CI=true builds without incremental caches.
#      TEST_KEEP_STACK=1 reuses a running test stack and leaves it running
#      (quicker local iterations); by default every run starts a fresh one.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The test stack's settings win over anything inherited, e.g. from a shell
# that sourced the demo stack's env file. Derived values are recomputed.
export STACK_DIR="$repo_root/.stack-test"
export BROKER_PORT=19092 DEEPHAVEN_PORT=10100 PROMETHEUS_PORT=19090
export ALERTMANAGER_PORT=19093 INGEST_PORT=18080 PUBLISHER_METRICS_PORT=19102
export DEEPHAVEN_SESSION_DURATION_MS=30000
unset INGEST_URL INGEST_METRICS_TARGETS PUBLISHER_METRICS_TARGETS KAFKA_BROKERS \
  DEEPHAVEN_URL PROMETHEUS_URL ALERTMANAGER_URL
# A CI checkout builds once from scratch: incremental caches would only take
# disk, which CI shares.
if [[ -n "${CI:-}" ]]; then
  export CARGO_INCREMENTAL=0
fi

# shellcheck source=lib.sh
source "$repo_root/scripts/lib.sh"

# The tests' private components (test-kit's `component_dir`) go here, so that
# whatever a test binary killed mid-run (a Ctrl-C) left running is stopped
# with the stack.
export TEST_PRIVATE_DIR="$STACK_DIR/private"

print_stack_logs() {
  local name
  for name in broker deephaven alertmanager prometheus; do
    print_log_tail "$name" 30
  done
}

# The failing tests' names and panic messages, from cargo's output.
print_failures() { # cargo-output-file
  log "what failed (whole output: $1):"
  grep -E -A4 "^---- .* stdout ----$|panicked at|^failures:$|didn't exit successfully|^error: " "$1" |
    tail -n 80 | sed 's/^/    /' >&2 || true
}

stop_test_stack() {
  stop_every_process_under "$TEST_PRIVATE_DIR"
  if [[ -n "${TEST_KEEP_STACK:-}" ]]; then
    log "TEST_KEEP_STACK set: leaving the test stack running (scripts/stack-down.sh with STACK_DIR=$STACK_DIR)"
    return 0
  fi
  bash "$SCRIPTS_DIR/stack-down.sh" || warn "stack-down reported a problem"
}

# The checks that need no servers, quickest first; the first to fail ends the run.
run_fast_checks() {
  bash "$SCRIPTS_DIR/install-checks.sh"
  cd "$REPO_ROOT"
  log "rustfmt"
  cargo fmt --all --check
  log "clippy (warnings denied)"
  cargo clippy --workspace --all-targets --locked -- -D warnings
  log "docs (warnings denied)"
  RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
  log "shellcheck"
  "$VENV_DIR/bin/shellcheck" scripts/*.sh .ci/run
  log "unit tests"
  cargo test --workspace --locked --no-fail-fast --lib --bins --quiet
  log "the repository's own links and settings names"
  cargo test --locked -p e2e --test doc_links --test settings_names --quiet
}

main() {
  local quick=""
  if [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
  fi
  run_fast_checks
  if [[ -n "$quick" ]]; then
    log "--quick: the fast checks passed; the tests against the stack were not run"
    return 0
  fi
  bash "$SCRIPTS_DIR/install.sh"
  # Only the tests need a browser (the dashboard's), not the stack.
  bash "$SCRIPTS_DIR/install-browser.sh"
  trap stop_test_stack EXIT
  # Signals end the script through the EXIT trap, so the stack stops too.
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Nothing left from an earlier run that was itself killed.
  stop_every_process_under "$TEST_PRIVATE_DIR" >/dev/null 2>&1
  if [[ -z "${TEST_KEEP_STACK:-}" ]]; then
    # Fresh broker and Deephaven: no state left from an earlier, aborted run.
    bash "$SCRIPTS_DIR/stack-down.sh" >/dev/null 2>&1 || true
  fi
  if ! SKIP_INSTALL=1 bash "$SCRIPTS_DIR/stack-up.sh"; then
    print_stack_logs
    die "the test stack did not come up"
  fi
  # shellcheck source=/dev/null # written by stack-up.sh
  source "$STACK_DIR/env"

  local status=0 output="$STACK_DIR/cargo-test.log"
  # The system tests run the binaries as processes (test-kit/src/process.rs: built_binary): build them first.
  (cd "$REPO_ROOT" && cargo build --workspace --bins --locked && cargo test --workspace --locked --no-fail-fast "$@") 2>&1 |
    tee "$output" || status=$?
  if ((status != 0)); then
    log "cargo test failed (status $status); the stack's logs:"
    print_stack_logs
    print_failures "$output"
  fi
  return "$status"
}

main "$@"
