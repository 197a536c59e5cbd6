//! The published `alerts` and `alert_events` read back into maps a test compares with what it sent, or with an
//! oracle: the pipeline's tests and the end-to-end tests read them the same way.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampNanosecondType};
use deephaven_client::Client;
use schemas::tables::{column, TableNames};
use std::collections::BTreeMap;

/// An alert's current state as `alerts` shows it: (Status, StartsAt, ReceivedAt), times in Unix nanoseconds.
pub type AlertRow = (String, i64, i64);

/// A distinct state as `alert_events` shows it: (Fingerprint, Status, KafkaPartition, KafkaOffset).
pub type EventRow = (String, String, i32, i64);

/// Both data tables, keyed as Deephaven keys them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tables {
    /// Fingerprint -> its row.
    pub alerts: BTreeMap<String, AlertRow>,
    /// EventId -> its row.
    pub events: BTreeMap<String, EventRow>,
}

impl Tables {
    /// How far these tables are from `expected`, for a wait's last observation.
    pub fn against(&self, expected: &Tables) -> String {
        let (alerts, events) = (self.alerts.len(), self.events.len());
        format!("{alerts} of {} alerts, {events} of {} events", expected.alerts.len(), expected.events.len())
    }
}

/// Reads both tables of the set named with `prefix`. Missing tables read as empty (not created yet, or lost with
/// a restarted server); a read that fails is an error (a wait reads again). A column missing or of another type,
/// or a key seen twice, panics: the tables are not what the publisher makes, and reading again cannot change that.
pub async fn read_tables(client: &Client, prefix: &str) -> Result<Tables, String> {
    let names = TableNames::with_prefix(prefix);
    let mut tables = Tables::default();
    let name = &names.alerts;
    for batch in snapshot(client, name).await? {
        let (fingerprints, statuses) = (text(&batch, column::FINGERPRINT), text(&batch, column::STATUS));
        let (starts, received) = (time(&batch, column::STARTS_AT), time(&batch, column::RECEIVED_AT));
        for row in 0..batch.num_rows() {
            let value = (statuses.value(row).to_owned(), starts.value(row), received.value(row));
            let fingerprint = fingerprints.value(row);
            assert!(tables.alerts.insert(fingerprint.to_owned(), value).is_none(), "{fingerprint} twice in {name}");
        }
    }
    let name = &names.alert_events;
    for batch in snapshot(client, name).await? {
        let (ids, fingerprints) = (text(&batch, column::EVENT_ID), text(&batch, column::FINGERPRINT));
        let statuses = text(&batch, column::STATUS);
        let partitions = batch
            .column_by_name(column::KAFKA_PARTITION)
            .and_then(|c| c.as_primitive_opt::<Int32Type>())
            .unwrap_or_else(|| panic!("{name} has no int column {}", column::KAFKA_PARTITION));
        let offsets = batch
            .column_by_name(column::KAFKA_OFFSET)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .unwrap_or_else(|| panic!("{name} has no long column {}", column::KAFKA_OFFSET));
        for row in 0..batch.num_rows() {
            let value = (
                fingerprints.value(row).to_owned(),
                statuses.value(row).to_owned(),
                partitions.value(row),
                offsets.value(row),
            );
            let id = ids.value(row);
            assert!(tables.events.insert(id.to_owned(), value).is_none(), "event {id} twice in {name}");
        }
    }
    Ok(tables)
}

/// Every row of table `name`, or none when it does not exist.
pub async fn snapshot(client: &Client, name: &str) -> Result<Vec<RecordBatch>, String> {
    match client.scope_table_exists(name).await.map_err(|err| err.to_string())? {
        true => client.snapshot(name).await.map_err(|err| err.to_string()),
        false => Ok(Vec::new()),
    }
}

fn text<'a>(batch: &'a RecordBatch, name: &str) -> &'a arrow::array::StringArray {
    batch.column_by_name(name).and_then(|c| c.as_string_opt::<i32>()).unwrap_or_else(|| panic!("no text column {name}"))
}

fn time<'a>(batch: &'a RecordBatch, name: &str) -> &'a arrow::array::PrimitiveArray<TimestampNanosecondType> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .unwrap_or_else(|| panic!("no time column {name}"))
}
