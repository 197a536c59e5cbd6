//! What the alerthaven services (`ingest`, `publisher`) share, so they are configured and observed the same way.
//!
//! # Layout
//!
//! - [`settings`]: layered settings: defaults < TOML file < `PREFIX_` environment < command-line overrides.
//! - [`telemetry`]: `tracing` set-up from [`telemetry::LogSettings`].

pub mod settings;
pub mod telemetry;
