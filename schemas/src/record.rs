//! The Kafka record format: one record per alert, keyed by fingerprint.
//!
//! The value is JSON (readable with any Kafka tool) and the format is versioned by a record header, so a future
//! format can be rolled out while old records are still retained on the topic: a consumer that meets a version it
//! does not know reports [`DecodeError::UnsupportedFormat`] instead of misreading it.
//!
//! Every record carries an [`EventId`] derived only from the alert's state, so the many copies of one state that
//! Alertmanager sends (group changes, repeat intervals, retries, HA peers) all carry the same id and a consumer can
//! collapse them.

use crate::json::{self, PathedError};
use crate::{Fingerprint, LabelSet, Limits, SchemaError, SchemaErrorKind, Status, Timestamp, Webhook};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

/// The names and values of the headers every record carries.
pub struct RecordHeaders;

impl RecordHeaders {
    /// Header naming the record format version; its value is the decimal version number.
    pub const FORMAT: &'static str = "alerthaven-format";
    /// Header naming the value's media type.
    pub const CONTENT_TYPE: &'static str = "content-type";
    /// The format version this build writes and the only one it reads.
    pub const CURRENT_FORMAT: &'static str = "1";
    /// The value's media type for format 1.
    pub const JSON: &'static str = "application/json";

    /// The headers to attach to a record written now, as (name, value) pairs.
    pub fn current() -> [(&'static str, &'static str); 2] {
        [(Self::FORMAT, Self::CURRENT_FORMAT), (Self::CONTENT_TYPE, Self::JSON)]
    }
}

/// The identity of one alert state: a hash of (fingerprint, status, startsAt, endsAt), as 32 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Derives the id of a state. Only these four fields count: receiving time, annotations and notification
    /// context differ between copies of one state and must not change its identity.
    pub fn of(fingerprint: &Fingerprint, status: Status, starts_at: Timestamp, ends_at: Option<Timestamp>) -> Self {
        let ends_at = ends_at.map(|t| t.unix_nanos().to_string()).unwrap_or_default();
        let canonical = format!("{fingerprint}\0{status}\0{}\0{ends_at}", starts_at.unix_nanos());
        let digest = Sha256::digest(canonical.as_bytes());
        Self(hex::encode(&digest[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The context an alert arrived in, shared by every alert of one webhook body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: LabelSet,
    pub external_url: String,
    pub truncated_alerts: u64,
    pub notification_reason: Option<String>,
}

/// One alert as written to Kafka (format 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRecord {
    pub event_id: EventId,
    pub fingerprint: Fingerprint,
    pub status: Status,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub generator_url: String,
    /// Shared in memory by every record of one body, so that a large notification (many long group labels) is not
    /// copied once per alert; each encoded record still carries it whole and stands alone.
    pub notification: Arc<Notification>,
    /// When ingest received the webhook carrying this alert.
    pub received_at: Timestamp,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the record has no {} header", RecordHeaders::FORMAT)]
    MissingFormat,
    #[error("record format {found:?} is not supported (this build reads format {})", RecordHeaders::CURRENT_FORMAT)]
    UnsupportedFormat { found: String },
    #[error("the record value is not a format-1 alert record: {path}: {message}")]
    Malformed { path: String, message: String },
    #[error("the record's event_id {found} does not match its content (expected {expected})")]
    EventIdMismatch { found: EventId, expected: EventId },
}

impl AlertRecord {
    /// Splits a parsed webhook into one record per alert, in body order. Takes the webhook so that each alert's
    /// labels and annotations move into its record instead of being copied.
    pub fn from_webhook(webhook: Webhook, received_at: Timestamp) -> Vec<AlertRecord> {
        let notification = Arc::new(Notification {
            receiver: webhook.receiver,
            group_key: webhook.group_key,
            group_labels: webhook.group_labels,
            external_url: webhook.external_url,
            truncated_alerts: webhook.truncated_alerts,
            notification_reason: webhook.notification_reason,
        });
        webhook
            .alerts
            .into_iter()
            .map(|alert| AlertRecord {
                event_id: EventId::of(&alert.fingerprint, alert.status, alert.starts_at, alert.ends_at),
                fingerprint: alert.fingerprint,
                status: alert.status,
                starts_at: alert.starts_at,
                ends_at: alert.ends_at,
                labels: alert.labels,
                annotations: alert.annotations,
                generator_url: alert.generator_url,
                notification: Arc::clone(&notification),
                received_at,
            })
            .collect()
    }

    /// The Kafka key: the fingerprint, so every event of one alert lands on one partition, in order.
    pub fn key(&self) -> &[u8] {
        self.fingerprint.as_str().as_bytes()
    }

    /// The Kafka value, to be sent with [`RecordHeaders::current`].
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an alert record always serializes")
    }

    /// Encodes every record of a body, refusing the body if any record is larger than `limits.max_record_bytes`
    /// (the error names the alert, `alerts[i]`: records are in body order) or if the records together are larger
    /// than `limits.max_record_bytes_per_body`. Encoding stops at the first record over a limit, so refusing a body
    /// never costs more than the limits allow.
    pub fn encode_all(records: &[AlertRecord], limits: &Limits) -> Result<Vec<Vec<u8>>, SchemaError> {
        let mut values = Vec::with_capacity(records.len());
        let mut total = 0usize;
        for (index, record) in records.iter().enumerate() {
            let value = record.encode();
            if value.len() > limits.max_record_bytes {
                return Err(SchemaError {
                    kind: SchemaErrorKind::LimitExceeded,
                    path: format!("alerts[{index}]"),
                    message: format!(
                        "the alert's record has {} bytes, more than limits.max_record_bytes ({})",
                        value.len(),
                        limits.max_record_bytes
                    ),
                });
            }
            total += value.len();
            if total > limits.max_record_bytes_per_body {
                return Err(SchemaError {
                    kind: SchemaErrorKind::LimitExceeded,
                    path: "alerts".to_owned(),
                    message: format!(
                        "the records of alerts[0..={index}] already take {total} bytes, more than \
                         limits.max_record_bytes_per_body ({}): every record repeats the group labels and group key, \
                         so send fewer alerts per body (Alertmanager's max_alerts) or group by fewer, shorter labels",
                        limits.max_record_bytes_per_body
                    ),
                });
            }
            values.push(value);
        }
        Ok(values)
    }

    /// Reads a record value given the value of its [`RecordHeaders::FORMAT`] header.
    pub fn decode(format: Option<&[u8]>, value: &[u8]) -> Result<AlertRecord, DecodeError> {
        let format = format.ok_or(DecodeError::MissingFormat)?;
        if format != RecordHeaders::CURRENT_FORMAT.as_bytes() {
            return Err(DecodeError::UnsupportedFormat { found: String::from_utf8_lossy(format).into_owned() });
        }
        let record: AlertRecord = json::from_slice(value)
            .map_err(|PathedError { path, message, .. }| DecodeError::Malformed { path, message })?;
        let expected = EventId::of(&record.fingerprint, record.status, record.starts_at, record.ends_at);
        if record.event_id != expected {
            return Err(DecodeError::EventIdMismatch { found: record.event_id, expected });
        }
        Ok(record)
    }
}
