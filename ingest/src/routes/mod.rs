//! The HTTP endpoints.

pub mod alerts;
pub mod health;
pub mod metrics;
