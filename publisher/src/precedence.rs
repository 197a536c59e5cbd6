//! Which state of an alert is the newest, so the `alerts` table never goes backwards.
//!
//! Alertmanager repeats and retries, Kafka is replayed, and several publishers may take turns on a partition, so
//! records of one alert can be seen late, twice, or out of their original order. The `alerts` row of an alert is
//! therefore the state of highest [`Precedence`] ever seen, not the last one processed:
//!
//! 1. a later occurrence (greater `StartsAt`) beats an earlier one;
//! 2. within one occurrence, `resolved` beats `firing` (a late "firing" copy cannot reopen a resolved alert);
//! 3. between copies of the same state, the one received last wins (its `ReceivedAt`, receiver and group key).
//!
//! This is a total order on records, so the final table is the same whatever order the records are processed in.

use schemas::tables::PositionedRecord;
use schemas::{AlertRecord, Fingerprint, Status, Timestamp};
use std::collections::HashMap;

/// The rank of a state in its alert's history; greater is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Precedence {
    starts_at: Timestamp,
    resolved: bool,
    received_at: Timestamp,
}

impl Precedence {
    pub fn new(starts_at: Timestamp, status: Status, received_at: Timestamp) -> Self {
        Self { starts_at, resolved: status == Status::Resolved, received_at }
    }

    pub fn of(record: &AlertRecord) -> Self {
        Self::new(record.starts_at, record.status, record.received_at)
    }
}

/// The precedence of every alert's current row, as known to this publisher.
#[derive(Debug, Default)]
pub struct CurrentStates {
    /// Keyed by the fingerprint's 64-bit value, not its text: a replay of a long history holds one entry per alert
    /// ever seen, and keyed by text each entry also carried a heap string (heaptrack, a million alerts: the
    /// text-keyed table alone was 51 MB, besides its strings).
    by_fingerprint: HashMap<u64, Precedence>,
}

impl CurrentStates {
    pub fn from_rows(rows: impl IntoIterator<Item = (Fingerprint, Precedence)>) -> Self {
        let mut states = Self::default();
        for (fingerprint, precedence) in rows {
            states.raise(&fingerprint, precedence);
        }
        states
    }

    pub fn len(&self) -> usize {
        self.by_fingerprint.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_fingerprint.is_empty()
    }

    /// The records of a batch that become their alert's current row: per alert the one of highest precedence, and
    /// only if it beats the known current row. Returns their indices in `batch`, ascending. Does not change the
    /// known states; [`Self::apply`] does, once written.
    pub fn advancing(&self, batch: &[PositionedRecord]) -> Vec<usize> {
        let mut best: HashMap<u64, usize> = HashMap::new();
        for (index, row) in batch.iter().enumerate() {
            let candidate = Precedence::of(&row.record);
            let fingerprint = row.record.fingerprint.as_u64();
            let known = self.by_fingerprint.get(&fingerprint);
            if known.is_some_and(|known| *known >= candidate) {
                continue;
            }
            best.entry(fingerprint)
                .and_modify(|current| {
                    if Precedence::of(&batch[*current].record) <= candidate {
                        *current = index;
                    }
                })
                .or_insert(index);
        }
        let mut rows: Vec<usize> = best.into_values().collect();
        rows.sort_unstable();
        rows
    }

    /// Records that rows were written.
    pub fn apply<'a>(&mut self, written: impl IntoIterator<Item = &'a PositionedRecord>) {
        for row in written {
            self.raise(&row.record.fingerprint, Precedence::of(&row.record));
        }
    }

    fn raise(&mut self, fingerprint: &Fingerprint, precedence: Precedence) {
        let entry = self.by_fingerprint.entry(fingerprint.as_u64()).or_insert(precedence);
        *entry = (*entry).max(precedence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::tables::KafkaPosition;
    use schemas::{EventId, LabelSet, Notification};

    fn record(fingerprint: &str, status: Status, starts_at: i64, received_at: i64) -> PositionedRecord {
        let fingerprint = Fingerprint::try_from(fingerprint.to_owned()).unwrap();
        let starts_at = Timestamp::from_unix_nanos(starts_at);
        let ends_at = (status == Status::Resolved).then(|| Timestamp::from_unix_nanos(starts_at.unix_nanos() + 5));
        let record = AlertRecord {
            event_id: EventId::of(&fingerprint, status, starts_at, ends_at),
            fingerprint,
            status,
            starts_at,
            ends_at,
            labels: [("alertname".to_owned(), "A".to_owned())].into_iter().collect(),
            annotations: LabelSet::default(),
            generator_url: String::new(),
            notification: Notification {
                receiver: "r".to_owned(),
                group_key: "g".to_owned(),
                group_labels: LabelSet::default(),
                external_url: String::new(),
                truncated_alerts: 0,
                notification_reason: None,
            },
            received_at: Timestamp::from_unix_nanos(received_at),
        };
        PositionedRecord { record, position: KafkaPosition { partition: 0, offset: received_at } }
    }

    const A: &str = "000000000000000a";
    const B: &str = "000000000000000b";

    fn winners(states: &CurrentStates, batch: &[PositionedRecord]) -> Vec<(String, Status, i64)> {
        let rows = states.advancing(batch);
        assert!(rows.windows(2).all(|pair| pair[0] < pair[1]), "ascending: {rows:?}");
        let mut winners: Vec<_> = rows
            .into_iter()
            .map(|row| &batch[row].record)
            .map(|record| (record.fingerprint.to_string(), record.status, record.received_at.unix_nanos()))
            .collect();
        winners.sort();
        winners
    }

    /// Applies what [`CurrentStates::advancing`] picks from `batch`, as the publisher does once it is written.
    fn advance(states: &mut CurrentStates, batch: &[PositionedRecord]) {
        let rows = states.advancing(batch);
        states.apply(rows.into_iter().map(|row| &batch[row]));
    }

    #[test]
    fn resolved_beats_a_late_firing_copy_of_the_same_occurrence() {
        let batch =
            [record(A, Status::Firing, 10, 1), record(A, Status::Resolved, 10, 2), record(A, Status::Firing, 10, 3)];
        assert_eq!(winners(&CurrentStates::default(), &batch), [(A.to_owned(), Status::Resolved, 2)]);
    }

    #[test]
    fn a_later_occurrence_beats_a_resolved_earlier_one() {
        let batch = [record(A, Status::Resolved, 10, 2), record(A, Status::Firing, 20, 3)];
        assert_eq!(winners(&CurrentStates::default(), &batch), [(A.to_owned(), Status::Firing, 3)]);
    }

    #[test]
    fn older_events_replayed_after_newer_ones_change_nothing() {
        let mut states = CurrentStates::default();
        let newer = [record(A, Status::Resolved, 10, 5)];
        advance(&mut states, &newer);
        let replayed =
            [record(A, Status::Firing, 10, 1), record(A, Status::Resolved, 10, 2), record(A, Status::Firing, 5, 9)];
        assert!(states.advancing(&replayed).is_empty());
    }

    #[test]
    fn the_result_does_not_depend_on_processing_order() {
        let events = vec![
            record(A, Status::Firing, 10, 1),
            record(B, Status::Firing, 7, 2),
            record(A, Status::Resolved, 10, 3),
            record(A, Status::Firing, 10, 4),
            record(B, Status::Resolved, 7, 5),
            record(A, Status::Firing, 30, 6),
        ];
        let reference = winners(&CurrentStates::default(), &events);
        assert_eq!(reference, [(A.to_owned(), Status::Firing, 6), (B.to_owned(), Status::Resolved, 5)]);
        for split in 0..events.len() {
            let mut reversed = events.clone();
            reversed.reverse();
            let (first, second) = reversed.split_at(split);
            let mut states = CurrentStates::default();
            advance(&mut states, first);
            advance(&mut states, second);
            for (fingerprint, status, received) in &reference {
                let fp = Fingerprint::try_from(fingerprint.clone()).unwrap();
                let expected = events.iter().find(|r| r.record.received_at.unix_nanos() == *received).unwrap();
                assert_eq!(
                    states.by_fingerprint[&fp.as_u64()],
                    Precedence::of(&expected.record),
                    "{status:?} split {split}"
                );
            }
        }
    }
}
