//! The webhook receiver: authenticate, admit, read, parse, encode, admit, produce, and only then answer 200.
//!
//! Nothing is read while the broker is unreachable, and room for the body is admitted before it is read (see
//! [`crate::admission`]). The whole body is parsed and encoded before the first record is produced, so a rejected
//! body writes nothing. One deadline covers the upload and Kafka's acknowledgement; passing it is a 503, never a
//! hang.

use crate::admission::Admitted;
use crate::error::IngestError;
use crate::sink::{SendError, Sending};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::web::{self, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use futures::StreamExt;
use schemas::{AlertRecord, Status, Timestamp};
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
        state.metrics.rejected(error.reason());
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
    let credentials = state.credentials.current();
    credentials
        .check(request.headers().get(header::AUTHORIZATION))
        .map_err(|_rejection| IngestError::Unauthorized { challenges: credentials.challenges() })?;
    require_json(request)?;
    if !state.sink.is_ready() {
        return Err(IngestError::BrokerUnavailable { retry_after: state.retry_after });
    }

    let deadline_exceeded =
        || IngestError::DeadlineExceeded { timeout: state.request_timeout, retry_after: state.retry_after };
    let overloaded = || IngestError::Overloaded { retry_after: state.retry_after };
    let declared = declared_length(request, state.max_body_bytes)?;
    if declared.is_some_and(|length| length > state.admission.free_bytes()) {
        return Err(overloaded());
    }
    let head_start = declared.map_or(0, |length| length.min(HEAD_START_BYTES));
    let mut admitted = state.admission.try_admit(head_start).ok_or_else(overloaded)?;
    let body = timeout_at(deadline.into(), read_body(payload, declared, head_start, state, &mut admitted))
        .await
        .map_err(|_| deadline_exceeded())??;
    state.metrics.body_bytes.observe(body.len() as f64);

    let webhook = schemas::parse(&body, &state.limits)?;
    drop(body);
    state.metrics.alerts_per_body.observe(webhook.alerts.len() as f64);
    let records = AlertRecord::from_webhook(webhook, received_at);
    let values = AlertRecord::encode_all(&records, &state.limits)?;

    let encoded_bytes = values.iter().map(Vec::len).sum();
    if !admitted.try_add_bytes(encoded_bytes) || !admitted.try_add_records(records.len()) {
        return Err(overloaded());
    }
    // Parsing and encoding a large body can take what was left of the deadline: its records would then be produced
    // for a 503, and produced again at the retry.
    if Instant::now() >= deadline {
        return Err(deadline_exceeded());
    }
    let started = Instant::now();
    let sending = state.sink.send_all(&records, &values);
    drop(values);
    // Parsing and encoding run on this worker without a pause, so only a few bodies are ever decoded at once; many
    // wait for Kafka. Their decoded form (several times the body for many short labels) must not wait with them:
    // only the admitted bytes do.
    let accepted = AcceptedSummary::of(&records);
    drop(records);
    settle(sending, admitted, deadline).await.map_err(|unsettled| match unsettled {
        // Not a sign of a broken producer: a slow upload leaves Kafka only what is left of the deadline. Records that
        // are really stuck fail by their own timeout, and that failure makes the producer suspect.
        Unsettled::DeadlinePassed => deadline_exceeded(),
        Unsettled::Failed(source) if source.is_caused_by_the_record() => IngestError::RecordRefused(source),
        Unsettled::Failed(source) if source.is_a_batch_too_large_for_the_broker() => {
            IngestError::BatchTooLargeForBroker { source, retry_after: state.retry_after }
        }
        Unsettled::Failed(source) => IngestError::NotAcknowledged { source, retry_after: state.retry_after },
    })?;
    state.metrics.produce_seconds.observe(started.elapsed().as_secs_f64());

    for (status, count) in [(Status::Firing, accepted.firing), (Status::Resolved, accepted.resolved)] {
        state.metrics.accepted(status, count);
    }
    tracing::debug!(alerts = accepted.alerts, receiver = accepted.receiver.as_str(), "webhook accepted");
    Ok(HttpResponse::Ok().json(Accepted { accepted: accepted.alerts }))
}

/// What the answer, the metrics and the log need of a body's records, kept instead of the records.
struct AcceptedSummary {
    alerts: usize,
    firing: u64,
    resolved: u64,
    receiver: String,
}

impl AcceptedSummary {
    fn of(records: &[AlertRecord]) -> Self {
        let resolved = records.iter().filter(|record| record.status == Status::Resolved).count();
        Self {
            alerts: records.len(),
            firing: (records.len() - resolved) as u64,
            resolved: resolved as u64,
            receiver: records.first().map(|record| record.notification.receiver.clone()).unwrap_or_default(),
        }
    }
}

fn require_json(request: &HttpRequest) -> Result<(), IngestError> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).map(|value| String::from_utf8_lossy(value.as_bytes()));
    match request.mime_type() {
        Ok(Some(mime)) if mime.type_() == "application" && mime.subtype() == "json" => Ok(()),
        _ => Err(IngestError::UnsupportedMediaType(content_type.unwrap_or_default().into_owned())),
    }
}

/// The body's declared `Content-Length`; a body declared larger than `limit` is refused before any of it is read.
fn declared_length(request: &HttpRequest, limit: usize) -> Result<Option<usize>, IngestError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    match declared {
        Some(length) if length > limit => Err(IngestError::PayloadTooLarge { limit }),
        declared => Ok(declared),
    }
}

/// The room a body with a declared length takes before its first byte: enough for most webhooks whole, while a
/// length declared but never sent holds little.
const HEAD_START_BYTES: usize = 64 * 1024;

/// Reads the body, refusing it as soon as it is known to exceed `server.max_body_bytes`. `room` bytes are already
/// admitted; past them, a body of declared length doubles its room up to that length (few copies), and one of
/// unknown length takes room chunk by chunk; 503 when there is none. The buffer's capacity may round up past its
/// room (a vector's growth doubles), but nothing past the bytes that arrived is ever written; the memory bound
/// measured in the README includes that slack.
async fn read_body(
    mut payload: web::Payload,
    declared: Option<usize>,
    mut room: usize,
    state: &AppState,
    admitted: &mut Admitted,
) -> Result<BytesMut, IngestError> {
    let limit = state.max_body_bytes;
    let mut body = BytesMut::with_capacity(room);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| IngestError::UnreadableBody(err.to_string()))?;
        let length = body.len() + chunk.len();
        if length > limit {
            return Err(IngestError::PayloadTooLarge { limit });
        }
        if length > room {
            let grown = declared.map_or(length, |declared| length.max(room * 2).min(declared));
            if !admitted.try_add_bytes(grown - room) {
                return Err(IngestError::Overloaded { retry_after: state.retry_after });
            }
            body.reserve(grown - body.len());
            room = grown;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a body's records were not all acknowledged in time.
enum Unsettled {
    /// The deadline passed first; the records may still be acknowledged (and are then on the topic).
    DeadlinePassed,
    Failed(SendError),
}

/// Waits until Kafka has settled every record, or the deadline passes. The admitted room is given back only once
/// every record is settled, so a task of its own holds it, not this handler: the records stay in the producer's
/// queue, in memory, after the answer when it cannot wait (a refusal, the deadline), and after a client that hung
/// up (its connection's handler is dropped).
async fn settle(mut sending: Sending, admitted: Admitted, deadline: Instant) -> Result<(), Unsettled> {
    let refused = sending.take_refusal();
    let mut settled = actix_web::rt::spawn(async move {
        let outcome = sending.settled().await;
        drop(admitted);
        outcome
    });
    if let Some(refusal) = refused {
        return Err(Unsettled::Failed(refusal));
    }
    match timeout_at(deadline.into(), &mut settled).await {
        Ok(Ok(outcome)) => outcome.map_err(Unsettled::Failed),
        Ok(Err(_stopped)) => Err(Unsettled::Failed(SendError::Canceled)),
        Err(_elapsed) => Err(Unsettled::DeadlinePassed),
    }
}
