//! The support library of every test that runs against the real local stack (started by `scripts/test.sh`): each
//! crate's integration tests, the end-to-end tests (`e2e/`) and the bench tools (`bench/`).
//!
//! They all find the stack, launch the services, make fresh topics, read records back and wait for conditions the
//! same way. What knows Kafka, the record format and the published tables sits behind the `pipeline` feature (on by
//! default), so the Deephaven client's tests, built alone (`cargo test -p deephaven-client`), need no rdkafka nor
//! the application's crates.
//!
//! # Layout
//!
//! - [`stack`]: where the running stack is (from the environment `scripts/test.sh` exports), private broker,
//!   Deephaven and balancer instances for tests that must stop one, free ports.
//! - [`gate`]: a TCP pass-through a test shuts and opens, before a private broker.
//! - [`launch`]: how each service is launched: its settings as the environment its binary reads.
//! - [`process`]: the project's binaries run as child processes: starting, probing, signalling, reaping.
//! - [`names`]: names no other test or run uses (topics, groups, tables).
//! - [`wait`]: waiting for a condition with a deadline, never a bare sleep.
//! - [`metrics`]: samples read out of a service's `/metrics`.
//! - [`tls`]: a CA and a server certificate of a test's own, for TLS fronts.
//! - [`fixtures`]: the captured Alertmanager payloads in `fixtures/`, and synthetic webhook bodies.
//! - `kafka` (feature `pipeline`): fresh topics per test and reading every record of a topic back.
//! - `records` (feature `pipeline`): alert records made from the synthetic bodies, as ingest writes them.
//! - `load` (feature `pipeline`): a steady, traceable webhook load and its ledger of what ingest acknowledged.
//! - `tables` (feature `pipeline`): `alerts` and `alert_events` read back into maps a test compares.

pub mod fixtures;
pub mod gate;
#[cfg(feature = "pipeline")]
pub mod kafka;
pub mod launch;
#[cfg(feature = "pipeline")]
pub mod load;
pub mod metrics;
pub mod names;
pub mod process;
#[cfg(feature = "pipeline")]
pub mod records;
pub mod stack;
#[cfg(feature = "pipeline")]
pub mod tables;
pub mod tls;
pub mod wait;
