//! The contract against real Alertmanager 0.25 payloads (captured from Prometheus 2.42, copied into `test-kit/fixtures/`).

use schemas::tables::{KafkaPosition, PositionedRecord, ALERTS, ALERT_EVENTS, LOG};
use schemas::{parse, AlertRecord, Limits, RecordHeaders, Status, Timestamp};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../test-kit/fixtures/alertmanager-0.25");
    let mut bodies: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect();
    bodies.sort();
    assert_eq!(bodies.len(), 15, "expected the 15 captured bodies in {}", dir.display());
    bodies
}

fn received_at() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T18:41:48.449Z").unwrap()
}

#[test]
fn every_fixture_parses_with_the_values_it_carries() {
    for (name, body) in fixtures() {
        let webhook = parse(&body, &Limits::default()).unwrap_or_else(|err| panic!("{name}: {err}"));
        let raw: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(webhook.receiver, raw["receiver"], "{name}");
        assert_eq!(webhook.group_key, raw["groupKey"], "{name}");
        assert_eq!(webhook.alerts.len(), raw["alerts"].as_array().unwrap().len(), "{name}");
        for (alert, raw) in webhook.alerts.iter().zip(raw["alerts"].as_array().unwrap()) {
            assert_eq!(alert.fingerprint.as_str(), raw["fingerprint"], "{name}");
            assert_eq!(alert.status.as_str(), raw["status"], "{name}");
            assert_eq!(alert.labels.to_json(), serde_json::to_string(&raw["labels"]).unwrap(), "{name}");
            assert_eq!(alert.generator_url, raw["generatorURL"], "{name}");
            assert_eq!(alert.ends_at.is_none(), alert.status == Status::Firing, "{name}: endsAt 0001-01-01 means none");
        }
    }
}

#[test]
fn fixture_times_keep_their_milliseconds() {
    let (_, body) = &fixtures()[0];
    let webhook = parse(body, &Limits::default()).unwrap();
    assert_eq!(webhook.alerts[0].starts_at, Timestamp::parse_rfc3339("2026-11-23T18:41:46.434Z").unwrap());
    assert_eq!(webhook.alerts[0].starts_at.unix_nanos() % 1_000_000_000, 434_000_000);
}

#[test]
fn records_round_trip_and_carry_their_notification() {
    for (name, body) in fixtures() {
        let webhook = parse(&body, &Limits::default()).unwrap();
        let records = AlertRecord::from_webhook(webhook.clone(), received_at());
        assert_eq!(records.len(), webhook.alerts.len());
        for (record, alert) in records.iter().zip(&webhook.alerts) {
            assert_eq!(record.key(), alert.fingerprint.as_str().as_bytes());
            assert_eq!(record.notification.receiver, webhook.receiver);
            assert_eq!(record.notification.truncated_alerts, webhook.truncated_alerts);
            let decoded = AlertRecord::decode(Some(RecordHeaders::CURRENT_FORMAT.as_bytes()), &record.encode())
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(&decoded, record, "{name}");
        }
    }
}

#[test]
fn one_alert_state_has_one_event_id_across_notifications() {
    // The same (fingerprint, status, startsAt, endsAt) arrives in several bodies (repeats, other receivers).
    let mut ids_by_state: HashMap<(String, Status, i64, Option<i64>), HashSet<String>> = HashMap::new();
    for (_, body) in fixtures() {
        let webhook = parse(&body, &Limits::default()).unwrap();
        for record in AlertRecord::from_webhook(webhook, received_at()) {
            let state = (
                record.fingerprint.to_string(),
                record.status,
                record.starts_at.unix_nanos(),
                record.ends_at.map(Timestamp::unix_nanos),
            );
            ids_by_state.entry(state).or_default().insert(record.event_id.to_string());
        }
    }
    let all_ids: HashSet<&String> = ids_by_state.values().flatten().collect();
    assert!(ids_by_state.values().all(|ids| ids.len() == 1), "a state got several ids: {ids_by_state:?}");
    assert_eq!(all_ids.len(), ids_by_state.len(), "two states share an id");
    // 9238271644e0e7e7 firing is repeated six times in the captures; fired-then-resolved gives two states.
    assert_eq!(ids_by_state.len(), 9);
}

#[test]
fn tables_get_one_row_per_alert_with_promoted_columns() {
    let (_, body) = &fixtures()[10]; // 011.json: FlappingMinute resolved
    let webhook = parse(body, &Limits::default()).unwrap();
    let rows: Vec<PositionedRecord> = AlertRecord::from_webhook(webhook, received_at())
        .into_iter()
        .enumerate()
        .map(|(i, record)| PositionedRecord {
            record,
            position: KafkaPosition { incarnation: 0, partition: 3, offset: 40 + i as i64 },
        })
        .collect();

    let events = ALERT_EVENTS.batch(&rows);
    assert_eq!(events.schema(), ALERT_EVENTS.schema());
    assert_eq!(events.num_rows(), 1);
    let text = |batch: &arrow::record_batch::RecordBatch, column: &str| {
        let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
        arrow::util::display::array_value_to_string(array, 0).unwrap()
    };
    assert_eq!(text(&events, "AlertName"), "FlappingMinute");
    assert_eq!(text(&events, "Status"), "resolved");
    assert_eq!(text(&events, "KafkaPartition"), "3");
    assert_eq!(text(&events, "KafkaOffset"), "40");
    let ends_at = events.column_by_name("EndsAt").unwrap();
    let ends_at = ends_at.as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>().unwrap();
    assert_eq!(ends_at.value(0), Timestamp::parse_rfc3339("2026-11-23T18:42:31.434Z").unwrap().unix_nanos());
    assert_eq!(ends_at.timezone(), Some("UTC"));
    assert_eq!(text(&events, "EventId"), rows[0].record.event_id.to_string());

    let alerts = ALERTS.batch(&rows);
    assert_eq!(alerts.num_rows(), 1);
    assert_eq!(text(&alerts, "Fingerprint"), "0eac3fe5ba04b2b9");
    assert_eq!(text(&alerts, "Labels"), rows[0].record.labels.to_json());
    assert!(text(&alerts, "Summary").len() > 3);
}

#[test]
fn firing_alerts_have_a_null_end_in_the_tables() {
    let (_, body) = &fixtures()[0];
    let webhook = parse(body, &Limits::default()).unwrap();
    let rows: Vec<PositionedRecord> = AlertRecord::from_webhook(webhook, received_at())
        .into_iter()
        .map(|record| PositionedRecord { record, position: KafkaPosition { incarnation: 0, partition: 0, offset: 0 } })
        .collect();
    let batch = ALERTS.batch(&rows);
    assert_eq!(batch.column_by_name("EndsAt").unwrap().null_count(), 2);
    assert_eq!(batch.column_by_name("StartsAt").unwrap().null_count(), 0);
}

#[test]
fn a_log_row_for_an_undecodable_record_holds_its_position_and_nothing_else() {
    let positions = [
        KafkaPosition { incarnation: 1, partition: 2, offset: 7 },
        KafkaPosition { incarnation: 0, partition: 0, offset: 9 },
    ];
    let batch = LOG.positions_only(&positions);
    assert_eq!(batch.schema(), LOG.schema());
    assert_eq!(batch.num_rows(), 2);
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.name().as_str() {
            "TopicIncarnation" | "KafkaPartition" | "KafkaOffset" => {
                assert_eq!(column.null_count(), 0, "{}", field.name())
            }
            other => assert_eq!(column.null_count(), 2, "{other} is null"),
        }
    }
    let text = |column: &str, row| {
        arrow::util::display::array_value_to_string(batch.column_by_name(column).unwrap(), row).unwrap()
    };
    let position = |row| (text("TopicIncarnation", row), text("KafkaPartition", row), text("KafkaOffset", row));
    assert_eq!(position(0), ("1".to_owned(), "2".to_owned(), "7".to_owned()));
    assert_eq!(position(1), ("0".to_owned(), "0".to_owned(), "9".to_owned()));
}

#[test]
fn records_and_position_only_rows_built_one_at_a_time_keep_their_own_values_in_order() {
    let (_, body) = &fixtures()[0];
    let records = AlertRecord::from_webhook(parse(body, &Limits::default()).unwrap(), received_at());
    let at = |offset| KafkaPosition { incarnation: 0, partition: 1, offset };
    let mut rows = LOG.builder(1);
    rows.append(&PositionedRecord { record: records[0].clone(), position: at(10) });
    rows.append_position_only(at(11));
    rows.append(&PositionedRecord { record: records[1].clone(), position: at(12) });
    assert_eq!(rows.len(), 3);
    let batch = rows.finish();
    assert_eq!(batch.schema(), LOG.schema());
    let text = |column: &str, row| {
        let array = batch.column_by_name(column).unwrap();
        (!array.is_null(row)).then(|| arrow::util::display::array_value_to_string(array, row).unwrap())
    };
    assert_eq!(text("EventId", 0), Some(records[0].event_id.to_string()));
    assert_eq!(text("Labels", 0), Some(records[0].labels.to_json()));
    assert_eq!(text("EventId", 1), None, "the undecodable record's row holds no state");
    assert_eq!(text("Labels", 1), None);
    assert_eq!(text("EventId", 2), Some(records[1].event_id.to_string()));
    assert_eq!(text("Fingerprint", 2), Some(records[1].fingerprint.to_string()));
    let offsets: Vec<_> = (0..3).map(|row| text("KafkaOffset", row)).collect();
    assert_eq!(offsets, [Some("10".to_owned()), Some("11".to_owned()), Some("12".to_owned())]);
}
