//! What the alerthaven services (`ingest`, `publisher`) share, so they are configured, observed and stopped the
//! same way.
//!
//! # Layout
//!
//! - [`allocator`]: large blocks returned to the system when freed (glibc).
//! - [`exit`]: how a service's `main` ends: exit status 2 for settings it cannot load, 1 for a failed run.
//! - [`secret_files`]: secrets read from mounted files.
//! - [`settings`]: layered settings: defaults < TOML file < `PREFIX_` environment < command-line overrides.
//! - [`help_reference`]: the settings reference of `--help`, read back for the checks that hold it against the code.
//! - [`kafka_client`]: a Kafka client's configuration: brokers and name, its own choices, the operator's over them.
//! - [`kafka_properties`]: librdkafka properties passed through from settings or files, secrets redacted.
//! - [`process_metrics`]: `<service>_build_info` and the `process_*` metrics, and rendering them with a service's own.
//! - [`shutdown`]: the stop request (SIGTERM or Ctrl-C).
//! - [`telemetry`]: `tracing` set-up from [`telemetry::LogSettings`].

pub mod allocator;
pub mod exit;
pub mod help_reference;
pub mod kafka_client;
pub mod kafka_properties;
pub mod process_metrics;
pub mod secret_files;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
