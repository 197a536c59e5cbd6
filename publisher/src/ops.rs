//! The operations endpoint: `/healthz` (the process serves), `/readyz` (connected to a Kafka broker, and to
//! Deephaven with the tables in place; the body says which end is missing) and `/metrics`.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render))
        .with_state(metrics);
    axum::serve(listener, app).await
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    let readiness = metrics.readiness();
    let status = if readiness.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": readiness.ready(), "kafka": readiness.kafka, "deephaven": readiness.deephaven })))
}

async fn render(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
}
