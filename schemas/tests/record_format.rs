//! The Kafka record format: encode then decode is the identity, and unreadable records fail clearly.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use schemas::{
    AlertRecord, DecodeError, EventId, Fingerprint, LabelSet, Notification, RecordHeaders, Status, Timestamp,
};
use std::sync::Arc;

const FORMAT: Option<&[u8]> = Some(RecordHeaders::CURRENT_FORMAT.as_bytes());

fn label_set() -> impl Strategy<Value = LabelSet> {
    prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,12}", any::<String>(), 0..6)
        .prop_map(|map| map.into_iter().collect())
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<i64>().prop_map(Timestamp::from_unix_nanos)
}

prop_compose! {
    fn notification()(
        receiver in any::<String>(),
        group_key in any::<String>(),
        group_labels in label_set(),
        external_url in any::<String>(),
        truncated_alerts in any::<u64>(),
        notification_reason in proptest::option::of(any::<String>()),
    ) -> Arc<Notification> {
        Arc::new(Notification { receiver, group_key, group_labels, external_url, truncated_alerts, notification_reason })
    }
}

prop_compose! {
    fn record()(
        fingerprint in "[0-9a-f]{16}",
        resolved in any::<bool>(),
        starts_at in timestamp(),
        ends_at in timestamp(),
        labels in label_set(),
        annotations in label_set(),
        generator_url in any::<String>(),
        notification in notification(),
        received_at in timestamp(),
    ) -> AlertRecord {
        let fingerprint = Fingerprint::try_from(fingerprint).unwrap();
        let (status, ends_at) = if resolved { (Status::Resolved, Some(ends_at)) } else { (Status::Firing, None) };
        AlertRecord {
            event_id: EventId::of(&fingerprint, status, starts_at, ends_at),
            fingerprint, status, starts_at, ends_at, labels, annotations, generator_url, notification, received_at,
        }
    }
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(record in record()) {
        let decoded = AlertRecord::decode(FORMAT, &record.encode()).unwrap();
        prop_assert_eq!(decoded, record);
    }

    #[test]
    fn event_ids_differ_when_the_state_differs(a in record(), b in record()) {
        let same_state = (&a.fingerprint, a.status, a.starts_at, a.ends_at) == (&b.fingerprint, b.status, b.starts_at, b.ends_at);
        prop_assert_eq!(a.event_id == b.event_id, same_state);
    }
}

fn sample() -> AlertRecord {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    record().new_tree(&mut runner).unwrap().current()
}

#[test]
fn an_unknown_future_format_is_a_clear_error() {
    let err = AlertRecord::decode(Some(b"2"), &sample().encode()).unwrap_err();
    assert!(matches!(&err, DecodeError::UnsupportedFormat { found } if found == "2"), "{err:?}");
    assert!(err.to_string().contains("not supported"), "{err}");
}

#[test]
fn a_record_without_the_format_header_is_refused() {
    assert!(matches!(AlertRecord::decode(None, &sample().encode()), Err(DecodeError::MissingFormat)));
}

#[test]
fn malformed_values_name_their_path() {
    let mut value: serde_json::Value = serde_json::from_slice(&sample().encode()).unwrap();
    value["starts_at"] = serde_json::json!("not a time");
    let err = AlertRecord::decode(FORMAT, &serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(matches!(&err, DecodeError::Malformed { path, .. } if path == "starts_at"), "{err:?}");
    for garbage in [&b""[..], b"{", b"null", b"\xff\xfe"] {
        assert!(matches!(AlertRecord::decode(FORMAT, garbage), Err(DecodeError::Malformed { .. })));
    }
}

#[test]
fn a_tampered_state_is_detected_by_its_event_id() {
    let mut value: serde_json::Value = serde_json::from_slice(&sample().encode()).unwrap();
    value["fingerprint"] = serde_json::json!("0000000000000000");
    let err = AlertRecord::decode(FORMAT, &serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(matches!(err, DecodeError::EventIdMismatch { .. }), "{err:?}");
}
