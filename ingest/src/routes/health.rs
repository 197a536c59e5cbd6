//! Liveness and readiness.
//!
//! `/healthz` answers 200 while the process serves HTTP at all. `/readyz` answers 200 only when a webhook would be
//! accepted now: the broker answered the last probe and the process is not shutting down. Load balancers route on
//! `/readyz`, so an instance cut off from Kafka or draining for shutdown stops getting traffic.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let broker = state.sink.is_ready();
    let shutting_down = state.is_shutting_down();
    let body = json!({ "ready": broker && !shutting_down, "broker_reachable": broker, "shutting_down": shutting_down });
    if broker && !shutting_down {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
