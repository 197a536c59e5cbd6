//! ingest against the real broker: one test binary, one module per concern.

mod acceptance;
mod auth;
mod backpressure;
mod broker_outage;
mod bytes;
mod connections;
mod helpers;
mod kafka_credentials;
mod process;
mod rejections;
mod tls;
