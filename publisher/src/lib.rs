//! `publisher`: keeps Deephaven ticking tables in step with the alerts topic.
//!
//! It consumes the records `ingest` wrote, batches them into Arrow record batches and appends each batch once, with
//! the project's own client (`deephaven-client`), to an internal log table. Deephaven derives the published,
//! read-only tables from the log itself: `alerts` (the current state of every alert, which never goes backwards),
//! `alert_events` (one row per distinct state), the live view `alerts_firing`, and the progress (the highest offset
//! applied per partition), which lives in the same rows as the data, so a killed publisher resumes without loss or
//! duplicates, several publishers can share the tables, and a Deephaven restarted empty is rebuilt by replaying the
//! topic, without anyone touching it.
//!
//! # Layout
//!
//! - [`configuration`]: layered settings (defaults, file, `PUBLISHER_` environment, flags).
//! - [`startup`]: the application built on its ops port and run until stopped.
//! - [`secret_files`]: secret files read again; a change restarts the pipeline with the new secrets.
//! - [`pipeline`]: the loop: consume a batch, write it, commit; each kind of failure handled by what fixes it.
//! - [`kafka`]: the Kafka edge: the consumer, commits, moving partitions back.
//! - [`tables`]: the log, the tables Deephaven derives from it (`tables/derivations.rs`), the slices of the
//!   retention (`tables/slices.rs`), which publisher makes the set anew (`tables/claim.rs`), and reading the
//!   progress back.
//! - [`continuity`]: a jump in a partition's offsets is read again before it is believed.
//! - [`retention`]: which states Deephaven keeps: slices of time that leave once older than the retention.
//! - [`resume`]: where each assigned partition resumes, and the consumer context that applies it.
//! - [`fetching`]: fetching paused while every broker is down, resumed once the topic is back.
//! - [`dead_letters`]: the dead-letter topic for records that cannot be decoded.
//! - [`backoff`]: capped exponential backoff with jitter, cut short by shutdown.
//! - [`health`]: what `/readyz` answers, recorded by the parts that find it out.
//! - [`metrics`] and [`ops`]: Prometheus metrics and the `/healthz`, `/readyz`, `/metrics` endpoint.

pub mod backoff;
pub mod configuration;
pub mod continuity;
pub mod dead_letters;
pub mod fetching;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod ops;
pub mod pipeline;
pub mod resume;
pub mod retention;
pub mod secret_files;
pub mod startup;
pub mod tables;
