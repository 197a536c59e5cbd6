//! The Deephaven tables: their Arrow schemas and the conversion from Kafka records to `RecordBatch`es.
//!
//! Column names are PascalCase (Deephaven's convention, and what its own Kafka consumer produces); times are
//! `timestamp[ns, "UTC"]`, which Deephaven maps to `Instant` (any other zone name turns the column into a
//! `ZonedDateTime` and breaks the table); text is `utf8` (Deephaven refuses `large_utf8`). Column order is part of
//! the contract: Deephaven matches uploaded batches to an input table by name, type and position.
//!
//! Each table is a [`TableSpec`]: a list of columns, each knowing its name, type and how to read its value from
//! a record. Every table is built from the same column definitions, so a column means the same thing everywhere.
//!
//! Only [`LOG`] is written: one row per record read, into an internal input table. [`ALERT_EVENTS`] and [`ALERTS`]
//! are derived from it by the server and name the columns (and key) those derived tables keep; [`TableNames`]
//! names them all.

use crate::{AlertRecord, LabelSet};
use arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use arrow::array::{Int32Builder, TimestampNanosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use std::borrow::{Borrow, Cow};
use std::sync::Arc;

/// Where a record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KafkaPosition {
    /// Which life of the topic the offset belongs to: offsets start again at 0 when a topic is deleted and created
    /// again (or a broker without durable storage restarts), so an offset alone does not say which record it was.
    /// 0 at first; the publisher counts one more each time it finds a partition ending below the offsets applied.
    pub incarnation: i32,
    pub partition: i32,
    pub offset: i64,
}

/// How far a partition is applied, as the progress table holds it: its last offset, in which incarnation of the
/// topic. Ordered by incarnation first, so anything of a later incarnation is further on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Applied {
    pub incarnation: i32,
    pub offset: i64,
}

impl Applied {
    /// The offset after this one, where reading resumes. `None` when there is none: an offset that is negative or
    /// the largest, which Kafka never gives, but a log edited by hand can.
    pub fn next_offset(&self) -> Option<i64> {
        self.offset.checked_add(1).filter(|next| *next > 0)
    }
}

/// A decoded record together with where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionedRecord {
    pub record: AlertRecord,
    pub position: KafkaPosition,
}

/// The names of one deployment's tables: the configured prefix, then the table's own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// The input table the publisher appends to ([`LOG`]). Internal: users read the tables derived from it.
    pub log: String,
    /// A one-row-per-publisher input table whose write makes the server run an update cycle at once, which takes
    /// the rows just appended to the log (rather than wait for the next periodic cycle).
    pub flush: String,
    /// A keyed input table recording which slice of time each slot of the retention's ring holds (one row per
    /// slot). Internal: the publisher's bookkeeping for `deephaven.retention`.
    pub slices: String,
    /// A one-row keyed input table in which a publisher about to make the set anew claims it, so that publishers
    /// finding it missing together do not make it at once. Internal, and not part of the set.
    pub creation_claim: String,
    /// Per occurrence of an alert (its fingerprint and `StartsAt`), its state of highest precedence among those
    /// retained: what `alerts` and `alert_episodes` are derived from. Internal.
    pub states: String,
    /// [`ALERTS`]: the current state of every alert.
    pub alerts: String,
    /// [`ALERT_EVENTS`]: one row per distinct alert state.
    pub alert_events: String,
    /// The rows of `alerts` that are firing.
    pub alerts_firing: String,
    /// [`ALERT_EPISODE_KEY`]: one row per occurrence of an alert, from its firing to its resolve.
    pub alert_episodes: String,
    /// Per `AlertName` and `Severity`, how long resolved episodes lasted: count, mean, median, 90th percentile, max.
    pub alert_mttr: String,
    /// How many alerts are firing now per `Severity` (a severity with none firing has no row).
    pub alerts_firing_by_severity: String,
    /// How many alerts are firing now per `AlertName`.
    pub alerts_firing_by_name: String,
    /// The highest `KafkaOffset` applied per `KafkaPartition`: where the publisher resumes.
    pub progress: String,
    /// A one-row table holding the server's time (`Now`), moved on periodically: what the tables over recent time
    /// windows measure their windows from. Internal.
    pub clock: String,
    /// Per `AlertName`, the distinct states received in the last 24 hours and 7 days, most first.
    pub noisiest_alerts: String,
    /// Per alert, the episodes that started (its firing transitions) in the last hour and 24 hours, most first.
    pub alert_flapping: String,
    /// The shorter window's counts of `noisiest_alerts` (states in the last 24 hours), joined into it. Internal.
    pub noisiest_alerts_24h: String,
    /// The shorter window's counts of `alert_flapping` (firings in the last hour), joined into it. Internal.
    pub alert_flapping_1h: String,
    /// `alert_mttr` over the episodes resolved in the last 24 hours.
    pub alert_mttr_24h: String,
}

impl TableNames {
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            log: format!("_{prefix}alert_log"),
            flush: format!("_{prefix}alert_log_flush"),
            slices: format!("_{prefix}alert_log_slices"),
            creation_claim: format!("_{prefix}alert_log_claim"),
            states: format!("_{prefix}alert_states"),
            alerts: format!("{prefix}alerts"),
            alert_events: format!("{prefix}alert_events"),
            alerts_firing: format!("{prefix}alerts_firing"),
            alert_episodes: format!("{prefix}alert_episodes"),
            alert_mttr: format!("{prefix}alert_mttr"),
            alerts_firing_by_severity: format!("{prefix}alerts_firing_by_severity"),
            alerts_firing_by_name: format!("{prefix}alerts_firing_by_name"),
            progress: format!("{prefix}publisher_offsets"),
            clock: format!("_{prefix}clock"),
            noisiest_alerts: format!("{prefix}noisiest_alerts"),
            alert_flapping: format!("{prefix}alert_flapping"),
            noisiest_alerts_24h: format!("_{prefix}noisiest_alerts_24h"),
            alert_flapping_1h: format!("_{prefix}alert_flapping_1h"),
            alert_mttr_24h: format!("{prefix}alert_mttr_24h"),
        }
    }

    /// The tables users read, all derived by the server from the log.
    pub fn derived(&self) -> [&str; 11] {
        [
            &self.alerts,
            &self.alert_events,
            &self.alerts_firing,
            &self.alert_episodes,
            &self.alert_mttr,
            &self.alerts_firing_by_severity,
            &self.alerts_firing_by_name,
            &self.progress,
            &self.noisiest_alerts,
            &self.alert_flapping,
            &self.alert_mttr_24h,
        ]
    }
}

/// What keys `alert_episodes`: an occurrence of an alert is its fingerprint and the `StartsAt` Alertmanager gave it.
pub const ALERT_EPISODE_KEY: [&str; 2] = [column::FINGERPRINT, column::STARTS_AT];

/// The columns of `alert_episodes` taken from the occurrence's current state, before the computed
/// [`column::DURATION_SECONDS`] and [`column::AGE_SECONDS`].
pub const ALERT_EPISODE_COLUMNS: [&str; 9] = [
    column::FINGERPRINT,
    column::ALERT_NAME,
    column::SEVERITY,
    "Instance",
    "Job",
    "Labels",
    column::STARTS_AT,
    column::ENDS_AT,
    column::STATUS,
];

/// One Deephaven table: its columns, in order, and the columns that key it.
#[derive(Debug)]
pub struct TableSpec {
    /// The columns that identify a row: the table holds one row per distinct value.
    pub key_columns: &'static [&'static str],
    columns: &'static [Column],
}

/// Column names the derived tables are computed from.
pub mod column {
    pub const EVENT_ID: &str = "EventId";
    pub const FINGERPRINT: &str = "Fingerprint";
    pub const STATUS: &str = "Status";
    pub const ALERT_NAME: &str = "AlertName";
    pub const SEVERITY: &str = "Severity";
    /// In the counts of what fires now: how many alerts of the row's kind are firing.
    pub const FIRING: &str = "Firing";
    /// In `alert_episodes`: how long a resolved episode lasted, from `StartsAt` to `EndsAt`, in seconds.
    pub const DURATION_SECONDS: &str = "DurationSeconds";
    /// In `alert_episodes`: how long an open episode has been firing, in seconds, as of when it is read.
    pub const AGE_SECONDS: &str = "AgeSeconds";
    pub const STARTS_AT: &str = "StartsAt";
    pub const ENDS_AT: &str = "EndsAt";
    pub const RECEIVED_AT: &str = "ReceivedAt";
    pub const TOPIC_INCARNATION: &str = "TopicIncarnation";
    pub const KAFKA_PARTITION: &str = "KafkaPartition";
    pub const KAFKA_OFFSET: &str = "KafkaOffset";
}

/// The current state of every alert ever seen, keyed by fingerprint.
pub static ALERTS: TableSpec = TableSpec {
    key_columns: &[column::FINGERPRINT],
    columns: &[
        FINGERPRINT,
        STATUS,
        ALERT_NAME,
        SEVERITY,
        INSTANCE,
        JOB,
        SUMMARY,
        DESCRIPTION,
        STARTS_AT,
        ENDS_AT,
        LABELS,
        ANNOTATIONS,
        GENERATOR_URL,
        RECEIVER,
        GROUP_KEY,
        EXTERNAL_URL,
        EVENT_ID,
        RECEIVED_AT,
    ],
};

/// What the publisher appends: one row per record read, with its Kafka position. A record that could not be
/// decoded (sent to the dead-letter topic instead) still gets a row with only its position set, so progress
/// covers it; such rows have a null `EventId`.
pub static LOG: TableSpec = TableSpec { key_columns: &[], columns: ALERT_EVENTS.columns };

/// One row per distinct alert state, keyed by event id, so repeats and retries collapse onto one row.
pub static ALERT_EVENTS: TableSpec = TableSpec {
    key_columns: &["EventId"],
    columns: &[
        EVENT_ID,
        FINGERPRINT,
        STATUS,
        ALERT_NAME,
        SEVERITY,
        INSTANCE,
        JOB,
        SUMMARY,
        DESCRIPTION,
        STARTS_AT,
        ENDS_AT,
        LABELS,
        ANNOTATIONS,
        GENERATOR_URL,
        RECEIVER,
        GROUP_KEY,
        EXTERNAL_URL,
        TRUNCATED_ALERTS,
        NOTIFICATION_REASON,
        RECEIVED_AT,
        TOPIC_INCARNATION,
        KAFKA_PARTITION,
        KAFKA_OFFSET,
    ],
};

impl TableSpec {
    /// The Arrow schema of the table.
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self.columns.iter().map(Column::field).collect();
        Arc::new(Schema::new(fields))
    }

    /// The column names, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> {
        self.columns.iter().map(|column| column.name)
    }

    /// Converts rows into one batch of this table's schema.
    pub fn batch<R: Borrow<PositionedRecord>>(&'static self, rows: &[R]) -> RecordBatch {
        let mut builder = self.builder(rows.len());
        rows.iter().for_each(|row| builder.append(row.borrow()));
        builder.finish()
    }

    /// Rows that carry only a Kafka position, every other column null (the log's rows for records that could
    /// not be decoded).
    pub fn positions_only(&'static self, positions: &[KafkaPosition]) -> RecordBatch {
        let mut builder = self.builder(positions.len());
        positions.iter().for_each(|position| builder.append_position_only(*position));
        builder.finish()
    }

    /// A builder of this table's rows, with room for `rows` of them before it grows.
    pub fn builder(&'static self, rows: usize) -> RowsBuilder {
        let columns = self.columns.iter().map(|column| ColumnBuilder::new(&column.value, rows)).collect();
        RowsBuilder { spec: self, columns, rows: 0, json: Vec::new() }
    }
}

/// A table's rows built one record at a time, so that a batch being read holds its Arrow columns and not every
/// decoded record as well: each record can be dropped as soon as it is appended.
pub struct RowsBuilder {
    spec: &'static TableSpec,
    /// One per column of `spec`, in order.
    columns: Vec<ColumnBuilder>,
    rows: usize,
    /// Reused for every label set written as JSON, so writing one allocates nothing once warm.
    json: Vec<u8>,
}

impl RowsBuilder {
    /// Appends one record's row.
    pub fn append(&mut self, row: &PositionedRecord) {
        for builder in &mut self.columns {
            builder.append(row, &mut self.json);
        }
        self.rows += 1;
    }

    /// Appends a row with only `position` set (see [`TableSpec::positions_only`]).
    pub fn append_position_only(&mut self, position: KafkaPosition) {
        for (column, builder) in self.spec.columns.iter().zip(&mut self.columns) {
            match (builder, column.name) {
                (ColumnBuilder::Int32(_, values), column::TOPIC_INCARNATION) => {
                    values.append_value(position.incarnation)
                }
                (ColumnBuilder::Int32(_, values), column::KAFKA_PARTITION) => values.append_value(position.partition),
                (ColumnBuilder::Int64(_, values), column::KAFKA_OFFSET) => values.append_value(position.offset),
                (builder, _) => builder.append_null(),
            }
        }
        self.rows += 1;
    }

    /// How many rows were appended.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows appended, as one batch of the table's schema.
    pub fn finish(mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        RecordBatch::try_new(self.spec.schema(), arrays)
            .expect("every column holds one value per row, of its declared type, null only where nullable")
    }
}

/// The Arrow builder of one column, with how the column reads its value from a record.
enum ColumnBuilder {
    Text(fn(&PositionedRecord) -> Option<Cow<'_, str>>, StringBuilder),
    Json(fn(&PositionedRecord) -> &LabelSet, StringBuilder),
    Time(fn(&PositionedRecord) -> Option<i64>, TimestampNanosecondBuilder),
    Int32(fn(&PositionedRecord) -> i32, Int32Builder),
    Int64(fn(&PositionedRecord) -> i64, Int64Builder),
}

impl ColumnBuilder {
    fn new(value: &Value, rows: usize) -> Self {
        // Text grows as it comes: its size is not known before the records are read.
        match *value {
            Value::Text(read) => Self::Text(read, StringBuilder::with_capacity(rows, 0)),
            Value::Json(read) => Self::Json(read, StringBuilder::with_capacity(rows, 0)),
            Value::Time(read) => Self::Time(read, TimestampNanosecondBuilder::with_capacity(rows).with_timezone(UTC)),
            Value::Int32(read) => Self::Int32(read, Int32Builder::with_capacity(rows)),
            Value::Int64(read) => Self::Int64(read, Int64Builder::with_capacity(rows)),
        }
    }

    fn append(&mut self, row: &PositionedRecord, json: &mut Vec<u8>) {
        match self {
            Self::Text(read, builder) => builder.append_option(read(row)),
            Self::Json(read, builder) => {
                json.clear();
                read(row).write_json(json);
                builder.append_value(std::str::from_utf8(json).expect("serde_json writes UTF-8"));
            }
            Self::Time(read, builder) => builder.append_option(read(row)),
            Self::Int32(read, builder) => builder.append_value(read(row)),
            Self::Int64(read, builder) => builder.append_value(read(row)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Text(_, builder) | Self::Json(_, builder) => builder.append_null(),
            Self::Time(_, builder) => builder.append_null(),
            Self::Int32(_, builder) => builder.append_null(),
            Self::Int64(_, builder) => builder.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Text(_, builder) | Self::Json(_, builder) => Arc::new(builder.finish()),
            Self::Time(_, builder) => Arc::new(builder.finish()),
            Self::Int32(_, builder) => Arc::new(builder.finish()),
            Self::Int64(_, builder) => Arc::new(builder.finish()),
        }
    }
}

/// A column: its name and how to read its value from a record.
#[derive(Debug)]
struct Column {
    name: &'static str,
    value: Value,
}

/// How a column's value is read from a row, which also fixes its Arrow type.
#[derive(Debug)]
enum Value {
    Text(fn(&PositionedRecord) -> Option<Cow<'_, str>>),
    /// A label set as its canonical JSON text.
    Json(fn(&PositionedRecord) -> &LabelSet),
    Time(fn(&PositionedRecord) -> Option<i64>),
    Int32(fn(&PositionedRecord) -> i32),
    Int64(fn(&PositionedRecord) -> i64),
}

const UTC: &str = "UTC";

impl Column {
    fn is_position(&self) -> bool {
        [column::TOPIC_INCARNATION, column::KAFKA_PARTITION, column::KAFKA_OFFSET].contains(&self.name)
    }

    fn field(&self) -> Field {
        let (data_type, nullable) = match self.value {
            Value::Text(_) | Value::Json(_) => (DataType::Utf8, true),
            Value::Time(_) => (DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())), true),
            // Only a record's position is always there (see [`LOG`]).
            Value::Int32(_) => (DataType::Int32, !self.is_position()),
            Value::Int64(_) => (DataType::Int64, !self.is_position()),
        };
        Field::new(self.name, data_type, nullable)
    }
}

fn text(value: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(value))
}

fn label<'a>(row: &'a PositionedRecord, name: &str) -> Option<Cow<'a, str>> {
    row.record.labels.get(name).map(Cow::Borrowed)
}

fn annotation<'a>(row: &'a PositionedRecord, name: &str) -> Option<Cow<'a, str>> {
    row.record.annotations.get(name).map(Cow::Borrowed)
}

const EVENT_ID: Column =
    Column { name: column::EVENT_ID, value: Value::Text(|row| text(row.record.event_id.as_str())) };
const FINGERPRINT: Column =
    Column { name: column::FINGERPRINT, value: Value::Text(|row| text(row.record.fingerprint.as_str())) };
const STATUS: Column = Column { name: column::STATUS, value: Value::Text(|row| text(row.record.status.as_str())) };
const ALERT_NAME: Column = Column { name: column::ALERT_NAME, value: Value::Text(|row| label(row, "alertname")) };
const SEVERITY: Column = Column { name: column::SEVERITY, value: Value::Text(|row| label(row, "severity")) };
const INSTANCE: Column = Column { name: "Instance", value: Value::Text(|row| label(row, "instance")) };
const JOB: Column = Column { name: "Job", value: Value::Text(|row| label(row, "job")) };
const SUMMARY: Column = Column { name: "Summary", value: Value::Text(|row| annotation(row, "summary")) };
const DESCRIPTION: Column = Column { name: "Description", value: Value::Text(|row| annotation(row, "description")) };
const STARTS_AT: Column =
    Column { name: column::STARTS_AT, value: Value::Time(|row| Some(row.record.starts_at.unix_nanos())) };
const ENDS_AT: Column = Column { name: "EndsAt", value: Value::Time(|row| row.record.ends_at.map(|t| t.unix_nanos())) };
const LABELS: Column = Column { name: "Labels", value: Value::Json(|row| &row.record.labels) };
const ANNOTATIONS: Column = Column { name: "Annotations", value: Value::Json(|row| &row.record.annotations) };
const GENERATOR_URL: Column =
    Column { name: "GeneratorUrl", value: Value::Text(|row| text(&row.record.generator_url)) };
const RECEIVER: Column = Column { name: "Receiver", value: Value::Text(|row| text(&row.record.notification.receiver)) };
const GROUP_KEY: Column =
    Column { name: "GroupKey", value: Value::Text(|row| text(&row.record.notification.group_key)) };
const EXTERNAL_URL: Column =
    Column { name: "ExternalUrl", value: Value::Text(|row| text(&row.record.notification.external_url)) };
const TRUNCATED_ALERTS: Column = Column {
    name: "TruncatedAlerts",
    value: Value::Int64(|row| i64::try_from(row.record.notification.truncated_alerts).unwrap_or(i64::MAX)),
};
const NOTIFICATION_REASON: Column = Column {
    name: "NotificationReason",
    value: Value::Text(|row| row.record.notification.notification_reason.as_deref().map(Cow::Borrowed)),
};
const RECEIVED_AT: Column =
    Column { name: column::RECEIVED_AT, value: Value::Time(|row| Some(row.record.received_at.unix_nanos())) };
const TOPIC_INCARNATION: Column =
    Column { name: column::TOPIC_INCARNATION, value: Value::Int32(|row| row.position.incarnation) };
const KAFKA_PARTITION: Column =
    Column { name: column::KAFKA_PARTITION, value: Value::Int32(|row| row.position.partition) };
const KAFKA_OFFSET: Column = Column { name: column::KAFKA_OFFSET, value: Value::Int64(|row| row.position.offset) };
