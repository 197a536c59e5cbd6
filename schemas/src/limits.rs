//! Size limits a webhook body is held to.
//!
//! A receiver that accepts anything can be knocked over by one runaway alert rule (a label with a whole log line in
//! it, or thousands of alerts in one group). The defaults are generous for real Alertmanager traffic and small enough
//! to keep a Kafka record far below a broker's message size limit.

use serde::{Deserialize, Serialize};

/// Limits enforced by [`crate::parse`] and, for the sizes of records, [`AlertRecord::encode_all`]. Exceeding one
/// is a [`crate::SchemaErrorKind::LimitExceeded`] error.
///
/// [`AlertRecord::encode_all`]: crate::AlertRecord::encode_all
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Alerts in one webhook body. Alertmanager's `max_alerts` receiver option keeps bodies under this.
    pub max_alerts_per_body: usize,
    /// Labels (and, separately, annotations) on one alert.
    pub max_labels_per_alert: usize,
    /// Bytes in one label or annotation name or value.
    pub max_value_bytes: usize,
    /// Bytes of one encoded record (the Kafka value). An alert whose record is larger could never be produced (the
    /// broker refuses messages above its size limit), so it is refused with the whole body, before anything is
    /// written. Ingest checks at start-up that such a record fits the producer's `message.max.bytes`.
    pub max_record_bytes: usize,
    /// Bytes of all of one body's encoded records together. Each record repeats the notification (group labels and
    /// group key), so a body within `max_body_bytes` can encode to far more: this bounds what one body costs in
    /// memory and on the topic.
    pub max_record_bytes_per_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_alerts_per_body: 1_000,
            max_labels_per_alert: 64,
            max_value_bytes: 16 * 1024,
            max_record_bytes: 900 * 1024,
            max_record_bytes_per_body: 16 * 1024 * 1024,
        }
    }
}
