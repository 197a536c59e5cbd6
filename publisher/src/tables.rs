//! The Deephaven side: the tables this publisher maintains, written in an order that makes progress recoverable.
//!
//! A [`Sink`] is one Deephaven session with the tables ensured. [`Sink::write`] writes a batch's rows to `alerts`
//! and `alert_events` (concurrently), and only then the batch's last offset per partition to `publisher_offsets`.
//! So the offsets in Deephaven never claim more than what Deephaven holds, and resuming from them (offset + 1)
//! loses nothing; both data tables are keyed, so re-applying records after a crash between the two steps changes
//! nothing. When Deephaven restarts empty the offsets are gone with the data, and the publisher starts over from
//! the earliest retained record.

use crate::configuration::DeephavenSettings;
use crate::precedence::{CurrentStates, Precedence};
use arrow::array::{Array, AsArray, RecordBatch, StringBuilder, TimestampNanosecondBuilder};
use arrow::array::{Int32Builder, Int64Builder};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampNanosecondType};
use deephaven_client::{Auth, Client, ClientConfig, Filter, InputTable, InputTableKind};
use schemas::tables::{PositionedRecord, TableSpec, ALERTS, ALERT_EVENTS};
use schemas::{EventId, Fingerprint, Status, Timestamp};
use secrecy::ExposeSecret;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The names of the tables, with the configured prefix.
#[derive(Debug, Clone)]
pub struct TableNames {
    pub alerts: String,
    pub alert_events: String,
    pub alerts_firing: String,
    pub offsets: String,
}

impl TableNames {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            alerts: format!("{prefix}alerts"),
            alert_events: format!("{prefix}alert_events"),
            alerts_firing: format!("{prefix}alerts_firing"),
            offsets: format!("{prefix}publisher_offsets"),
        }
    }
}

/// What one [`Sink::write`] applies.
pub struct Batch {
    /// One row per event id read (its last copy: `alert_events` is keyed by it, so repeats collapse anyway).
    pub events: RecordBatch,
    /// The rows that advance their alert's current row.
    pub alerts: RecordBatch,
    /// The last offset consumed per partition, undecodable records included.
    pub offsets: BTreeMap<i32, i64>,
}

impl Batch {
    /// Converts `records` once and takes both tables' rows from the result; `advancing` are the indices of the
    /// records that become their alert's current row (ascending).
    pub fn new(records: &[PositionedRecord], advancing: &[usize], offsets: BTreeMap<i32, i64>) -> Self {
        let mut last_of_event: HashMap<&EventId, usize> = HashMap::new();
        for (index, row) in records.iter().enumerate() {
            last_of_event.insert(&row.record.event_id, index);
        }
        let mut event_rows: Vec<usize> = last_of_event.into_values().collect();
        event_rows.sort_unstable();
        let converted = ALERT_EVENTS.batch(records);
        let select = |spec: &TableSpec, rows: &[usize]| {
            spec.select(&converted, rows).expect("alert_events has every column of both tables")
        };
        Batch { events: select(&ALERT_EVENTS, &event_rows), alerts: select(&ALERTS, advancing), offsets }
    }
}

/// The login the settings ask for (validated: at most one kind is configured).
fn auth(settings: &DeephavenSettings) -> Auth {
    match (&settings.psk, &settings.user, &settings.password) {
        (Some(psk), _, _) => Auth::psk(psk.expose_secret()),
        (None, Some(user), Some(password)) => Auth::basic(user.clone(), password.expose_secret()),
        _ => Auth::Anonymous,
    }
}

/// One Deephaven session with the publisher's tables ensured.
pub struct Sink {
    client: Client,
    topic: String,
    names: TableNames,
    alerts: InputTable,
    alert_events: InputTable,
    offsets: InputTable,
}

/// What is recovered from Deephaven when a session starts or partitions are assigned.
pub struct Progress {
    /// The last offset applied per partition.
    pub offsets: BTreeMap<i32, i64>,
    pub states: CurrentStates,
}

impl Sink {
    /// Connects and ensures the tables. With `recreate`, existing tables are replaced by empty ones (a replay).
    pub async fn open(settings: &DeephavenSettings, topic: &str, recreate: bool) -> deephaven_client::Result<Sink> {
        let config = ClientConfig::new(settings.url.clone())
            .with_auth(auth(settings))
            .with_request_timeout(settings.request_timeout);
        let client = Client::connect(config).await?;
        let names = TableNames::with_prefix(&settings.table_prefix);
        let keyed = |spec: &TableSpec| InputTableKind::keyed(spec.key_columns.iter().copied());
        let alerts = input_table(&client, &names.alerts, ALERTS.schema(), keyed(&ALERTS), recreate).await?;
        let alert_events =
            input_table(&client, &names.alert_events, ALERT_EVENTS.schema(), keyed(&ALERT_EVENTS), recreate).await?;
        let offsets_kind = InputTableKind::keyed(["Topic", "KafkaPartition"]);
        let offsets = input_table(&client, &names.offsets, offsets_schema(), offsets_kind, recreate).await?;
        client.publish_filtered_view(&names.alerts, &Filter::equals("Status", "firing"), &names.alerts_firing).await?;
        Ok(Sink { client, topic: topic.to_owned(), names, alerts, alert_events, offsets })
    }

    pub fn names(&self) -> &TableNames {
        &self.names
    }

    /// Fails when the session is gone or any table this sink writes has left the query scope (a restarted server).
    pub async fn check(&self) -> anyhow::Result<()> {
        for name in [&self.names.alerts, &self.names.alert_events, &self.names.offsets] {
            if !self.client.scope_table_exists(name).await? {
                anyhow::bail!("table {name} is gone from Deephaven");
            }
        }
        Ok(())
    }

    /// Reads back what this topic's records already did to Deephaven.
    pub async fn progress(&self) -> deephaven_client::Result<Progress> {
        let mut offsets = BTreeMap::new();
        for batch in self.client.snapshot(&self.names.offsets).await? {
            let topics = batch.column_by_name("Topic").map(|c| c.as_string::<i32>().clone());
            let partitions = batch.column_by_name("KafkaPartition").map(|c| c.as_primitive::<Int32Type>().clone());
            let positions = batch.column_by_name("KafkaOffset").map(|c| c.as_primitive::<Int64Type>().clone());
            let (Some(topics), Some(partitions), Some(positions)) = (topics, partitions, positions) else { continue };
            for row in 0..batch.num_rows() {
                if topics.is_valid(row) && topics.value(row) == self.topic {
                    offsets.insert(partitions.value(row), positions.value(row));
                }
            }
        }
        let mut rows = Vec::new();
        for batch in self.client.snapshot(&self.names.alerts).await? {
            let column = |name: &str| batch.column_by_name(name).cloned();
            let (Some(fingerprints), Some(statuses), Some(starts), Some(received)) =
                (column("Fingerprint"), column("Status"), column("StartsAt"), column("ReceivedAt"))
            else {
                continue;
            };
            let fingerprints = fingerprints.as_string::<i32>();
            let statuses = statuses.as_string::<i32>();
            let starts = starts.as_primitive::<TimestampNanosecondType>();
            let received = received.as_primitive::<TimestampNanosecondType>();
            for row in 0..batch.num_rows() {
                let Ok(fingerprint) = Fingerprint::try_from(fingerprints.value(row).to_owned()) else { continue };
                let status =
                    if statuses.value(row) == Status::Resolved.as_str() { Status::Resolved } else { Status::Firing };
                let precedence = Precedence::new(
                    Timestamp::from_unix_nanos(starts.value(row)),
                    status,
                    Timestamp::from_unix_nanos(received.value(row)),
                );
                rows.push((fingerprint, precedence));
            }
        }
        Ok(Progress { offsets, states: CurrentStates::from_rows(rows) })
    }

    /// Writes the data rows, then the offsets.
    pub async fn write(&self, batch: &Batch) -> deephaven_client::Result<()> {
        let (alerts, events) =
            tokio::join!(self.append(&self.alerts, &batch.alerts), self.append(&self.alert_events, &batch.events));
        alerts?;
        events?;
        if !batch.offsets.is_empty() {
            self.client.append(&self.offsets, offsets_batch(&self.topic, &batch.offsets)).await?;
        }
        Ok(())
    }

    async fn append(&self, table: &InputTable, rows: &RecordBatch) -> deephaven_client::Result<()> {
        match rows.num_rows() {
            0 => Ok(()),
            _ => self.client.append(table, rows.clone()).await,
        }
    }
}

/// The existing table if it matches (a mismatch is an error, never a silent write), or a new empty one.
async fn input_table(
    client: &Client,
    name: &str,
    schema: SchemaRef,
    kind: InputTableKind,
    recreate: bool,
) -> deephaven_client::Result<InputTable> {
    if recreate {
        client.create_input_table(name, schema, kind).await
    } else {
        client.ensure_input_table(name, schema, kind).await
    }
}

fn offsets_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Topic", DataType::Utf8, false),
        Field::new("KafkaPartition", DataType::Int32, false),
        Field::new("KafkaOffset", DataType::Int64, false),
        Field::new("UpdatedAt", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
    ]))
}

fn offsets_batch(topic: &str, offsets: &BTreeMap<i32, i64>) -> RecordBatch {
    let mut topics = StringBuilder::new();
    let mut partitions = Int32Builder::new();
    let mut positions = Int64Builder::new();
    let mut updated = TimestampNanosecondBuilder::new().with_timezone("UTC");
    let now = Timestamp::now().unix_nanos();
    for (partition, offset) in offsets {
        topics.append_value(topic);
        partitions.append_value(*partition);
        positions.append_value(*offset);
        updated.append_value(now);
    }
    RecordBatch::try_new(
        offsets_schema(),
        vec![
            Arc::new(topics.finish()),
            Arc::new(partitions.finish()),
            Arc::new(positions.finish()),
            Arc::new(updated.finish()),
        ],
    )
    .expect("the offsets columns match their schema")
}
