//! The webhook receiver: authenticate, read, parse, admit, produce, and only then answer 200.
//!
//! The whole body is parsed and checked before the first record is produced, so a rejected body writes nothing.
//! One deadline covers the upload and Kafka's acknowledgement; passing it is a 503, never a hang.

use crate::error::IngestError;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::web::{self, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use futures::StreamExt;
use schemas::{AlertRecord, Timestamp};
use serde::Serialize;
use std::time::Instant;
use tokio::time::timeout_at;

#[derive(Serialize)]
struct Accepted {
    accepted: usize,
}

/// `POST <server.path>`.
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, IngestError> {
    let result = accept(&request, payload, &state).await;
    if let Err(error) = &result {
        state.metrics.rejections.get_or_create(&crate::metrics::ReasonLabels { reason: error.reason() }).inc();
        tracing::warn!(reason = error.reason(), %error, "webhook not accepted");
    }
    result
}

async fn accept(request: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<HttpResponse, IngestError> {
    let deadline = Instant::now() + state.request_timeout;
    let received_at = Timestamp::now();
    if state.is_shutting_down() {
        return Err(IngestError::ShuttingDown { retry_after: state.retry_after });
    }
    state
        .credentials
        .check(request.headers().get(header::AUTHORIZATION))
        .map_err(|rejection| IngestError::Unauthorized { rejection, challenges: state.credentials.challenges() })?;
    require_json(request)?;

    let deadline_exceeded =
        || IngestError::DeadlineExceeded { timeout: state.request_timeout, retry_after: state.retry_after };
    let body = timeout_at(deadline.into(), read_body(request, payload, state.max_body_bytes))
        .await
        .map_err(|_| deadline_exceeded())??;
    state.metrics.body_bytes.observe(body.len() as f64);

    let webhook = schemas::parse(&body, &state.limits)?;
    state.metrics.alerts_per_body.observe(webhook.alerts.len() as f64);
    let records = AlertRecord::from_webhook(webhook, received_at);
    let values = AlertRecord::encode_all(&records, &state.limits)?;

    if !state.sink.is_ready() {
        return Err(IngestError::BrokerUnavailable { retry_after: state.retry_after });
    }
    let _admitted =
        state.admission.try_admit(records.len()).ok_or(IngestError::Overloaded { retry_after: state.retry_after })?;
    let started = Instant::now();
    timeout_at(deadline.into(), state.sink.send_all(&records, &values))
        .await
        .map_err(|_| {
            state.sink.report_unacknowledged();
            deadline_exceeded()
        })?
        .map_err(|source| {
            if source.is_caused_by_the_record() {
                IngestError::RecordRefused(source)
            } else {
                IngestError::NotAcknowledged { source, retry_after: state.retry_after }
            }
        })?;
    state.metrics.produce_seconds.observe(started.elapsed().as_secs_f64());

    for record in &records {
        state
            .metrics
            .alerts_accepted
            .get_or_create(&crate::metrics::StatusLabels { status: record.status.as_str() })
            .inc();
    }
    tracing::debug!(
        alerts = records.len(),
        receiver = records.first().map_or("", |record| record.notification.receiver.as_str()),
        "webhook accepted"
    );
    Ok(HttpResponse::Ok().json(Accepted { accepted: records.len() }))
}

fn require_json(request: &HttpRequest) -> Result<(), IngestError> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).map(|value| String::from_utf8_lossy(value.as_bytes()));
    match request.mime_type() {
        Ok(Some(mime)) if mime.type_() == "application" && mime.subtype() == "json" => Ok(()),
        _ => Err(IngestError::UnsupportedMediaType(content_type.unwrap_or_default().into_owned())),
    }
}

/// Reads the body, refusing it as soon as it is known to exceed `limit` (from `Content-Length`, or while streaming).
async fn read_body(request: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<BytesMut, IngestError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(IngestError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| IngestError::UnreadableBody(err.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(IngestError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
