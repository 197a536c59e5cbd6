//! The operations endpoint: `/healthz` (the process serves), `/readyz` (connected to a Kafka broker, to
//! Deephaven with the tables in place, dead letters can be sent, not halted; the body says which is missing, and
//! why the publisher halted) and `/metrics`.

use crate::health::Health;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use service_kit::process_metrics::OPENMETRICS_CONTENT_TYPE;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the endpoints report from.
#[derive(Clone)]
struct Observed {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render))
        .with_state(Observed { metrics, health });
    axum::serve(listener, app).await
}

async fn readyz(State(observed): State<Observed>) -> impl IntoResponse {
    let readiness = observed.health.readiness();
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness))
}

async fn render(State(observed): State<Observed>) -> impl IntoResponse {
    let text = observed.metrics.render(&observed.health);
    ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text)
}
