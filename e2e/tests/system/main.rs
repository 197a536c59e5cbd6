//! The whole pipeline as its users run it: ingest instances behind HAProxy, the broker, the publisher and
//! Deephaven, each a separate process started the way the project's scripts start them. One test binary, one
//! module per concern.

mod alertmanager;
mod browser;
mod dashboard;
mod faults;
mod leftovers;
mod refire;
mod soak;
mod support;
mod timezone;
mod tls;
