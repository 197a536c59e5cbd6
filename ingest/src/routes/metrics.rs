//! `/metrics`: the Prometheus scrape endpoint.

use crate::state::AppState;
use actix_web::{web, HttpResponse};
use service_kit::process_metrics::OPENMETRICS_CONTENT_TYPE;

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type(OPENMETRICS_CONTENT_TYPE).body(state.metrics.render())
}
