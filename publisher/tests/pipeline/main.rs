//! publisher against the real broker and a real Deephaven: one test binary, one module per concern.

mod analytics;
mod delivery;
mod faults;
mod helpers;
mod operations;
mod retention;
mod secrets;
