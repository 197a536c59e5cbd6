//! The contract shared by every alerthaven component.
//!
//! Alertmanager speaks webhook JSON, Kafka carries records and Deephaven stores Arrow tables. This crate owns all three
//! shapes, and the conversions between them, so that `ingest` and `publisher` can never disagree about what an alert is.
//!
//! Everything here is pure: no I/O, no clocks (the caller passes `received_at`), so it is tested exhaustively beside the code.
//!
//! The contract in prose, for whoever sends to ingest or reads what alerthaven writes: what ingest answers a webhook
//! ([docs/http-api.md]), the Kafka record ([docs/record-format.md]) and the Deephaven tables ([docs/tables.md]).
//! A change to the types here that changes the wire changes those pages too.
//!
//! [docs/http-api.md]: https://github.com/alerthaven/alerthaven/blob/main/docs/http-api.md
//! [docs/record-format.md]: https://github.com/alerthaven/alerthaven/blob/main/docs/record-format.md
//! [docs/tables.md]: https://github.com/alerthaven/alerthaven/blob/main/docs/tables.md
//!
//! # Layout
//!
//! - [`domain`]: small value types that can only hold valid data ([`Fingerprint`], [`Timestamp`], [`Status`],
//!   [`LabelSet`]). They validate while deserializing, so a bad value is reported with its JSON path.
//! - [`webhook`]: the Alertmanager webhook body (version "4") and [`parse`], which turns untrusted bytes into a
//!   [`Webhook`] or a [`SchemaError`] naming the offending path.
//! - [`limits`]: the configurable size limits a webhook body is held to; `counted` applies the count limits while
//!   a body is decoded.
//! - [`record`]: the versioned Kafka record format, one [`AlertRecord`] per alert, keyed by fingerprint, with its
//!   deterministic [`EventId`].
//! - [`tables`]: the Arrow schemas of the Deephaven tables and the conversion from records to `RecordBatch`es.

mod counted;
pub mod domain;
mod json;
pub mod limits;
pub mod record;
pub mod tables;
pub mod webhook;

pub use domain::{Fingerprint, LabelSet, Status, Timestamp};
pub use limits::Limits;
pub use record::{AlertRecord, DecodeError, EventId, Notification, RecordHeaders};
pub use webhook::{parse, Alert, SchemaError, SchemaErrorKind, Webhook};
