//! Every way a webhook request can fail, and the answer each one gets.
//!
//! Alertmanager retries 5xx and never retries 4xx, so the mapping is the contract: 4xx only for a request that can
//! never succeed as sent, 503 for anything that may succeed later. A 4xx answer means nothing was written to Kafka,
//! with one exception: a record the producer refuses for its size though it is within `limits.max_record_bytes` is
//! found only while producing, so alerts before it in the body may have been written; it is still a 413, since
//! sending the body again cannot succeed. A *batch* the broker refuses for its size is a 503 instead: it may hold
//! records of other bodies, none of them known to be at fault, and a 4xx would make Alertmanager drop them all.

use crate::sink::SendError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use schemas::{SchemaError, SchemaErrorKind};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing or invalid credentials")]
    Unauthorized { challenges: Vec<&'static str> },
    #[error("expected Content-Type application/json, got {0:?}")]
    UnsupportedMediaType(String),
    #[error("the body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body could not be read: {0}")]
    UnreadableBody(String),
    #[error("{0}")]
    Schema(#[from] SchemaError),
    #[error("ingest holds as many bodies and alerts as it may (server.max_in_flight_bytes, max_in_flight_records); retry later")]
    Overloaded { retry_after: Duration },
    #[error("Kafka is not reachable; retry later")]
    BrokerUnavailable { retry_after: Duration },
    /// The producer refused a record for its size though it was within `limits.max_record_bytes`: sending it again
    /// cannot help.
    #[error("Kafka refused an alert's record: {0}; lower limits.max_record_bytes to the producer's message.max.bytes")]
    RecordRefused(SendError),
    /// The broker refused a batch of records for its size: the topic's `max.message.bytes` is below the producer's
    /// `message.max.bytes`, a configuration to fix.
    #[error(
        "the broker refused a batch of records as too large: {source}; set kafka.properties.message.max.bytes to at \
         most the topic's max.message.bytes"
    )]
    BatchTooLargeForBroker { source: SendError, retry_after: Duration },
    #[error("Kafka did not acknowledge every alert: {source}")]
    NotAcknowledged { source: SendError, retry_after: Duration },
    #[error("the request took longer than {timeout:?}")]
    DeadlineExceeded { timeout: Duration, retry_after: Duration },
    #[error("shutting down; retry on another instance")]
    ShuttingDown { retry_after: Duration },
}

impl IngestError {
    /// A stable, low-cardinality name for logs, metrics and the JSON answer.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Unauthorized { .. } => "unauthorized",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::PayloadTooLarge { .. } => "payload_too_large",
            IngestError::UnreadableBody(_) => "unreadable_body",
            IngestError::Schema(err) => match err.kind {
                SchemaErrorKind::Syntax => "malformed_json",
                SchemaErrorKind::Invalid => "invalid_webhook",
                SchemaErrorKind::LimitExceeded => "limit_exceeded",
            },
            IngestError::Overloaded { .. } => "overloaded",
            IngestError::BrokerUnavailable { .. } => "broker_unavailable",
            IngestError::RecordRefused(_) => "limit_exceeded",
            IngestError::NotAcknowledged { .. } => "not_acknowledged",
            IngestError::BatchTooLargeForBroker { .. } => "batch_too_large_for_broker",
            IngestError::DeadlineExceeded { .. } => "deadline_exceeded",
            IngestError::ShuttingDown { .. } => "shutting_down",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::Overloaded { retry_after }
            | IngestError::BrokerUnavailable { retry_after }
            | IngestError::NotAcknowledged { retry_after, .. }
            | IngestError::BatchTooLargeForBroker { retry_after, .. }
            | IngestError::DeadlineExceeded { retry_after, .. }
            | IngestError::ShuttingDown { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// The JSON body of every error answer.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: String,
    /// The JSON path at fault, for schema errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

impl ResponseError for IngestError {
    fn status_code(&self) -> StatusCode {
        match self {
            IngestError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::UnreadableBody(_) => StatusCode::BAD_REQUEST,
            IngestError::Schema(err) if err.kind == SchemaErrorKind::LimitExceeded => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Schema(_) => StatusCode::BAD_REQUEST,
            IngestError::RecordRefused(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Overloaded { .. }
            | IngestError::BrokerUnavailable { .. }
            | IngestError::NotAcknowledged { .. }
            | IngestError::BatchTooLargeForBroker { .. }
            | IngestError::DeadlineExceeded { .. }
            | IngestError::ShuttingDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let IngestError::Unauthorized { challenges, .. } = self {
            for challenge in challenges {
                response.append_header((header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge)));
            }
        }
        if let Some(retry_after) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, retry_after.as_secs().max(1).to_string()));
        }
        let path = match self {
            IngestError::Schema(err) => Some(err.path.as_str()),
            _ => None,
        };
        response.json(ErrorBody { error: self.reason(), message: self.to_string(), path })
    }
}
