//! Support for tests that run against the real local stack (started by `scripts/test.sh`), and the end-to-end
//! tests themselves (in `tests/`).
//!
//! Every crate's integration tests use this library, so they find the stack, make fresh topics, read records back
//! and wait for conditions the same way.
//!
//! # Layout
//!
//! - [`stack`]: where the running stack is (from the environment `scripts/test.sh` exports), private broker
//!   instances for tests that must stop one, free ports.
//! - [`gate`]: a TCP pass-through a test shuts and opens, before a private broker.
//! - [`kafka`]: fresh topics per test and reading every record of a topic back.
//! - [`load`]: a steady, traceable webhook load and its ledger of what ingest acknowledged.
//! - [`metrics`]: samples read out of a service's `/metrics`.
//! - [`process`]: the project's binaries run as child processes: starting, probing, signalling, reaping.
//! - [`wait`]: waiting for a condition with a deadline, never a bare sleep.
//! - [`bench`](mod@bench): flags, synthetic records and percentiles for the benchmark tools in `src/bin/` (`scripts/bench.sh`).
//! - [`tls`]: a CA and a server certificate of a test's own, for TLS fronts.
//! - [`fixtures`]: the captured Alertmanager payloads in `tests/fixtures/`.

pub mod bench;
pub mod fixtures;
pub mod gate;
pub mod kafka;
pub mod load;
pub mod metrics;
pub mod process;
pub mod stack;
pub mod tls;
pub mod wait;
