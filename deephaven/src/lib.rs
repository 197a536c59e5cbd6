//! A Rust client for [Deephaven](https://deephaven.io) that writes ticking
//! input tables over gRPC and Arrow Flight.
//!
//! It logs in (anonymous, pre-shared key or basic, with optional TLS), keeps
//! the session alive and adopts every rotated token, creates append-only and
//! keyed or blink input tables from Arrow schemas, appends [`RecordBatch`]es to
//! them, reads tables back, and derives tables server-side (filters, views,
//! aggregations) that it publishes read-only.
//! Errors say whether to retry, reconnect or give up ([`Error::class`]).
//!
//! ```no_run
//! # async fn demo(batch: arrow::array::RecordBatch) -> deephaven_client::Result<()> {
//! use deephaven_client::{Client, ClientConfig, Filter, InputTableKind};
//!
//! let client = Client::connect(ClientConfig::new("http://127.0.0.1:10000")).await?;
//! let alerts = client
//!     .ensure_input_table("Alerts", batch.schema(), InputTableKind::keyed(["Fingerprint"]))
//!     .await?;
//! client.append(&alerts, batch).await?;
//! client
//!     .publish_filtered_view("Alerts", &Filter::equals("Status", "firing"), "FiringAlerts")
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`ClientConfig`] and [`TlsConfig`].
//! - [`auth`]: [`Auth`] and [`Secret`], the login credential.
//! - [`client`]: [`Client`], connect / reconnect / session status.
//! - `session`: login, keep-alive, lost-session detection, export tickets.
//! - `bearer`: the tower service that sends and adopts Bearer tokens.
//! - `deadline`: the deadline on every call as a whole (headers and body).
//! - `ticket`: export and scope tickets, export id allocation.
//! - `schema`: Arrow ↔ Deephaven types, schema IPC bytes, schema comparison.
//! - [`input_table`]: create / check / append to input tables.
//! - `flight`: DoPut uploads and DoGet reads.
//! - [`query`]: snapshots and derived tables (chains of [`Operation`]s).
//! - [`error`]: [`Error`] and its classifier.
//! - `proto`: the generated protobuf subset (`proto/` holds the sources).
//!
//! [`RecordBatch`]: arrow::array::RecordBatch

pub mod auth;
mod bearer;
pub mod client;
pub mod config;
mod deadline;
pub mod error;
mod flight;
pub mod input_table;
mod proto;
pub mod query;
mod schema;
mod session;
mod ticket;

pub use auth::{Auth, Secret};
pub use client::Client;
pub use config::{ClientConfig, TlsConfig};
pub use error::{Error, ErrorClass, Result};
pub use input_table::{InputTable, InputTableKind};
pub use query::{Aggregate, Aggregation, Filter, Literal, Operation, SortKey};
pub use session::SessionStatus;
