//! The state every HTTP worker shares.

use crate::admission::Admission;
use crate::credential_files::CredentialStore;
use crate::metrics::Metrics;
use crate::sink::AlertSink;
use schemas::Limits;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub credentials: Arc<CredentialStore>,
    pub limits: Limits,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub retry_after: Duration,
    pub admission: Admission,
    pub sink: Arc<AlertSink>,
    /// The process's only metrics, also counted into by the sink, its probe, the credential reloader and the
    /// request middleware (which finds them here).
    pub metrics: Arc<Metrics>,
    /// Set when shutdown begins: `/readyz` turns false and requests still arriving on open connections get 503.
    pub shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
