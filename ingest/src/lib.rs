//! `ingest`: the Alertmanager webhook receiver.
//!
//! It accepts webhook POSTs, validates each body completely (with the `schemas` crate), writes one Kafka record per
//! alert keyed by fingerprint, and answers 200 only once Kafka has acknowledged every record of the body. Anything
//! transient (broker down, overload, a deadline passing) is answered 503, which Alertmanager retries; only requests
//! that can never succeed get a 4xx, which Alertmanager does not retry. It keeps no state of its own, so any number
//! of instances can run behind a load balancer.
//!
//! # Layout
//!
//! - [`configuration`]: layered settings (defaults, file, `INGEST_` environment, command-line flags).
//! - [`startup`]: builds the [`startup::Application`] on a port (0 in tests) and runs it until stopped.
//! - [`routes`]: the HTTP endpoints: the webhook receiver, `/healthz`, `/readyz`, `/metrics`.
//! - [`auth`]: bearer and basic credentials, compared in constant time.
//! - [`credential_files`]: secrets read again when their files change or on SIGHUP (the webhook credentials in
//!   effect, the Kafka producer's, which a new producer takes, and the HTTPS certificate).
//! - [`connection_deadline`]: a connection that makes no progress (a request head or an unread body trickled) is
//!   shut down, so that none can hold a connection slot for long.
//! - [`admission`]: the bounds, in bytes and records, on what requests hold until Kafka settles (backpressure).
//! - [`sink`]: the Kafka producer: sending a body's records and settling their acknowledgements; its librdkafka
//!   configuration (`sink::producer_config`); the broker probe behind `/readyz`, which also replaces a broken
//!   producer (`sink::probe`); a new producer when the Kafka credential files change (`sink::credentials`).
//! - [`tls`]: HTTPS, serving the certificate its files hold now (a renewed one without a restart).
//! - [`state`]: what every HTTP worker shares (the only application data, metrics included).
//! - [`error`]: [`error::IngestError`], every way a request can fail, mapped to its HTTP answer.
//! - [`metrics`]: the Prometheus metrics, registered once at start-up and counted through its methods.
//! - [`middleware`]: the request span (with its request id) and the request counter.

pub mod admission;
pub mod auth;
pub mod configuration;
pub mod connection_deadline;
pub mod credential_files;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod routes;
pub mod sink;
pub mod startup;
pub mod state;
pub mod tls;
