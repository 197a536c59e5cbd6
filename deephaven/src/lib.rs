//! The [Deephaven](https://deephaven.io) client of alerthaven: it writes ticking input tables over gRPC and Arrow
//! Flight. It is internal to this workspace, not a general-purpose client: its public API is what the publisher and
//! the bench tools use, plus a few items only its own integration tests call.
//!
//! It logs in (anonymous, pre-shared key or basic, with optional TLS), keeps the session alive and adopts every
//! rotated token, creates append-only, keyed or blink input tables from Arrow schemas, appends [`RecordBatch`]es to
//! them, reads tables back, and derives tables server-side (filters, views, aggregations, merges, joins with a clock)
//! that it publishes read-only. Errors say whether to retry, reconnect or give up ([`Error::class`]).
//!
//! ```no_run
//! # async fn demo(batch: arrow::array::RecordBatch) -> deephaven_client::Result<()> {
//! use deephaven_client::{Client, ClientConfig, Filter, InputTableKind, Operation};
//!
//! let client = Client::connect(ClientConfig::new("http://127.0.0.1:10000")).await?;
//! let trades = client.ensure_input_table("Trades", batch.schema(), InputTableKind::keyed(["TradeId"])).await?;
//! client.append(&trades, batch).await?;
//! let filled = [Operation::Filter(Filter::equals("Status", "filled"))];
//! client.publish_derived("Trades", &filled, "FilledTrades").await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `config`: [`ClientConfig`] and [`TlsConfig`].
//! - `auth`: [`Auth`] and [`Secret`], the login credential.
//! - `client`: [`Client`], connect / reconnect / session status.
//! - `session`: login, keep-alive, lost-session detection, export tickets.
//! - `bearer`: the tower service that sends and adopts Bearer tokens.
//! - `deadline`: the deadline on every call as a whole (headers and body).
//! - `ticket`: export and scope tickets, export id allocation.
//! - `schema`: Arrow ↔ Deephaven types, schema IPC bytes.
//! - `definition`: [`InputTableKind`], and the checks of a definition, an existing table or a batch against it.
//! - `input_table`: [`InputTable`]; create / check / append to / delete from input tables.
//! - `flight`: DoPut uploads and DoGet reads.
//! - `query`: snapshots and derived tables (chains of [`Operation`]s).
//! - `error`: [`Error`] and its classifier.
//! - `proto`: the generated protobuf subset (`proto/` holds the sources).
//!
//! Every public item is re-exported here; the modules themselves are private.
//!
//! [`RecordBatch`]: arrow::array::RecordBatch

mod auth;
mod bearer;
mod client;
mod config;
mod deadline;
mod definition;
mod error;
mod flight;
mod input_table;
mod proto;
mod query;
mod schema;
mod session;
mod ticket;

pub use auth::{Auth, Secret};
pub use client::Client;
pub use config::{ClientConfig, TlsConfig};
pub use definition::InputTableKind;
pub use error::{Error, ErrorClass, Result};
pub use input_table::InputTable;
pub use query::{Aggregate, Aggregation, Filter, Operation, SortKey};
pub use session::SessionStatus;
