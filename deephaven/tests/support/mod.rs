//! Shared helpers for the integration tests: the server under test (from
//! `DEEPHAVEN_URL`, or a private one started with `scripts/deephaven.sh`),
//! connecting with a deadline, unique table names, condition waits, and a
//! typed row model to build batches and read them back.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deephaven_client::{Client, ClientConfig, Error};

/// How long a server may take to answer readiness-type waits.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The shared server's URL. Fails loudly when missing: these tests never skip.
pub fn deephaven_url() -> String {
    match std::env::var("DEEPHAVEN_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DEEPHAVEN_URL is not set: the deephaven-client tests need a real Deephaven server. \
             Run scripts/test.sh, or `scripts/deephaven.sh start` and export DEEPHAVEN_URL from $STACK_DIR/env"
        ),
    }
}

/// Connects with `config`, retrying retryable failures until [`DEADLINE`].
pub async fn connect_with(config: ClientConfig) -> Client {
    let endpoint = config.endpoint.clone();
    let started = Instant::now();
    loop {
        match Client::connect(config.clone()).await {
            Ok(client) => return client,
            Err(err) if err.is_retryable() && started.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!("Deephaven at {endpoint} is unreachable or refused the login: {err}"),
        }
    }
}

/// A client of the shared server.
pub async fn connect() -> Client {
    init_tracing();
    connect_with(ClientConfig::new(deephaven_url())).await
}

/// Retries `call` while it fails with a retryable error; returns the first
/// success or non-retryable error. Panics after `deadline`.
pub async fn until_not_retryable<T, F, Fut>(what: &str, deadline: Duration, mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Err(err) if err.is_retryable() => {
                assert!(started.elapsed() < deadline, "{what}: still retryable after {deadline:?}: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// One row of the test tables, covering every type the publisher writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: String,
    pub note: Option<String>,
    /// Nanoseconds since the epoch (an `Instant` on the server).
    pub at: Option<i64>,
    pub count: Option<i64>,
    pub small: Option<i32>,
    pub flag: Option<bool>,
    pub ratio: Option<f64>,
}

impl Row {
    /// A fully populated row derived from `n`.
    pub fn sample(key: &str, n: i64) -> Self {
        Self {
            key: key.to_owned(),
            note: Some(format!("note {n}")),
            at: Some(1_700_000_000_000_000_000 + n),
            count: Some(n),
            small: Some(n as i32),
            flag: Some(n % 2 == 0),
            ratio: Some(n as f64 / 4.0),
        }
    }
}

pub fn row_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Key", DataType::Utf8, false),
        Field::new("Note", DataType::Utf8, true),
        Field::new("At", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), true),
        Field::new("Count", DataType::Int64, true),
        Field::new("Small", DataType::Int32, true),
        Field::new("Flag", DataType::Boolean, true),
        Field::new("Ratio", DataType::Float64, true),
    ]))
}

pub fn batch(rows: &[Row]) -> RecordBatch {
    RecordBatch::try_new(
        row_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.as_str()))),
            Arc::new(rows.iter().map(|r| r.note.as_deref()).collect::<StringArray>()),
            Arc::new(rows.iter().map(|r| r.at).collect::<TimestampNanosecondArray>().with_timezone("UTC")),
            Arc::new(rows.iter().map(|r| r.count).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|r| r.small).collect::<Int32Array>()),
            Arc::new(rows.iter().map(|r| r.flag).collect::<BooleanArray>()),
            Arc::new(rows.iter().map(|r| r.ratio).collect::<Float64Array>()),
        ],
    )
    .expect("valid batch")
}

fn column<'a, T: Array + 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    let column = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name} in {:?}", batch.schema()));
    column.as_any().downcast_ref::<T>().unwrap_or_else(|| panic!("column {name} came back as {}", column.data_type()))
}

fn opt<T>(valid: bool, value: T) -> Option<T> {
    valid.then_some(value)
}

/// Reads rows back, checking each column's Arrow type on the way.
pub fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for batch in batches {
        let at = column::<TimestampNanosecondArray>(batch, "At");
        assert_eq!(
            at.data_type(),
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            "timestamps come back as UTC nanoseconds"
        );
        let (key, note) = (column::<StringArray>(batch, "Key"), column::<StringArray>(batch, "Note"));
        let (count, small) = (column::<Int64Array>(batch, "Count"), column::<Int32Array>(batch, "Small"));
        let (flag, ratio) = (column::<BooleanArray>(batch, "Flag"), column::<Float64Array>(batch, "Ratio"));
        for i in 0..batch.num_rows() {
            out.push(Row {
                key: key.value(i).to_owned(),
                note: opt(note.is_valid(i), note.value(i).to_owned()),
                at: opt(at.is_valid(i), at.value(i)),
                count: opt(count.is_valid(i), count.value(i)),
                small: opt(small.is_valid(i), small.value(i)),
                flag: opt(flag.is_valid(i), flag.value(i)),
                ratio: opt(ratio.is_valid(i), ratio.value(i)),
            });
        }
    }
    out
}

/// Total rows in `batches`.
pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}
