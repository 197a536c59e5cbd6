//! What the alerthaven services (`ingest`, `publisher`) share, so they are configured, observed and stopped the
//! same way.
//!
//! # Layout
//!
//! - [`settings`]: layered settings: defaults < TOML file < `PREFIX_` environment < command-line overrides.
//! - [`process_metrics`]: `<service>_build_info` and the `process_*` metrics, and rendering them with a service's own.
//! - [`shutdown`]: the stop request (SIGTERM or Ctrl-C).
//! - [`telemetry`]: `tracing` set-up from [`telemetry::LogSettings`].

pub mod process_metrics;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
