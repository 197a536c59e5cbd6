//! Alert records made from the synthetic webhook bodies, as ingest would write them: what the publisher's tests
//! and the bench tools feed straight to Kafka or Deephaven, without an ingest in between.

use crate::fixtures::synthetic_webhook;
use schemas::{AlertRecord, Limits, Timestamp};

/// `bodies × alerts_per_body` distinct alert records, from the synthetic bodies `first_body..first_body + bodies`;
/// each body's records are received at `received_at(records made before it)`.
pub fn synthetic_records(
    first_body: u64,
    bodies: u64,
    alerts_per_body: usize,
    received_at: impl Fn(usize) -> Timestamp,
) -> Vec<AlertRecord> {
    let mut records = Vec::new();
    for body in first_body..first_body + bodies {
        let (bytes, _) = synthetic_webhook(body, alerts_per_body);
        let webhook = schemas::parse(&bytes, &Limits::default()).expect("synthetic webhooks are valid");
        records.extend(AlertRecord::from_webhook(webhook, received_at(records.len())));
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_records_are_distinct_alerts_received_when_asked() {
        let received = |made: usize| Timestamp::from_unix_nanos(made as i64);
        let records = synthetic_records(7, 3, 4, received);
        assert_eq!(records.len(), 12);
        let fingerprints: std::collections::HashSet<_> = records.iter().map(|r| r.fingerprint.clone()).collect();
        assert_eq!(fingerprints.len(), 12);
        let times: Vec<i64> = records.iter().map(|r| r.received_at.unix_nanos()).collect();
        assert_eq!(times, [0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8]);
    }
}
