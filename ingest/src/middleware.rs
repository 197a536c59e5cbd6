//! What happens around every request: a `tracing` span carrying a request id, the request counter, and the
//! connection's progress ([`crate::connection_deadline`]).
//!
//! The request id is taken from an incoming `X-Request-Id` (so a load balancer's id follows the request) or made up,
//! and is echoed in the response, so a client-side report and the server log line can be matched.

use crate::connection_deadline;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing::Instrument;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps one request in its span and counts its answer by route and status.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    connection_deadline::progressed(request.request());
    let metrics = request.app_data::<web::Data<AppState>>().map(|state| Arc::clone(&state.metrics));
    let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_plain_request_id(value))
        .map_or_else(new_request_id, str::to_owned);
    let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), route = %route);
    let mut response = next.call(request).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(metrics) = metrics {
        metrics.answered(route, response.status().as_u16());
    }
    connection_deadline::progressed(response.request());
    Ok(response)
}

/// Whether an incoming request id can go into log lines as is: short, and printable ASCII without spaces, quotes or
/// backslashes, so it cannot add fields to a line or break out of a quoted value. Others are replaced, not escaped:
/// an id is for matching, and a mangled one matches nothing.
fn is_plain_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|byte| byte.is_ascii_graphic() && byte != b'"' && byte != b'\\')
}

/// A process-unique id: a random-ish start (the clock at first use) plus a counter.
fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    format!("{:016x}", start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::is_plain_request_id;

    #[test]
    fn request_ids_that_could_forge_log_fields_are_not_taken() {
        for id in ["5f0c1a2b-9d3e-4c5f-8a7b-6c5d4e3f2a1b", "haproxy:0A1B_2C3D.4", "abc=="] {
            assert!(is_plain_request_id(id), "{id}");
        }
        for id in ["", "a b", "x status=200", "x\"y", "back\\slash", "line\nbreak", "tab\tx", "é", &"a".repeat(129)] {
            assert!(!is_plain_request_id(id), "{id:?}");
        }
    }
}
