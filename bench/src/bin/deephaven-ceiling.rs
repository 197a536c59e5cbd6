//! `deephaven-ceiling`: how fast Deephaven takes the publisher's rows when nothing else is in the way.
//!
//! Builds every batch before the clock starts (the same synthetic alerts `loadgen` posts, converted by the
//! publisher's own table specs), then appends them one after the other (DoPut + AddTableToInputTable, what the
//! Python client's reference figure measures). Three runs, one JSON line each, into fresh tables:
//! - the publisher's layout: its own [`Sink`] (the blink log with every derived table, each write flushed);
//! - the blink log alone, nothing derived (what the derived tables cost);
//! - the layout before it: two keyed input tables per batch (`alert_events`, `alerts`), written concurrently.

use arrow::record_batch::RecordBatch;
use clap::Parser;
use deephaven_client::{Client, ClientConfig, InputTableKind};
use publisher::configuration::DeephavenSettings;
use publisher::tables::Sink;
use schemas::tables::{KafkaPosition, PositionedRecord, TableSpec, ALERTS, ALERT_EVENTS, LOG};
use schemas::Timestamp;
use std::time::Instant;
use test_kit::records::synthetic_records;

/// How fast Deephaven takes the publisher's rows when nothing else is in the way.
#[derive(Parser)]
struct Options {
    /// Deephaven's URL.
    #[arg(long)]
    url: String,
    /// Rows appended per run.
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    /// Rows per append.
    #[arg(long, default_value_t = 10_000)]
    batch_rows: usize,
    /// Prefix of the fresh tables' names.
    #[arg(long, default_value = "ceiling_")]
    table_prefix: String,
}

#[tokio::main]
async fn main() {
    let Options { url, rows, batch_rows, table_prefix: prefix } = Options::parse();

    // One receive time for every record, as when they all came in together.
    let received_at = Timestamp::now();
    let records: Vec<PositionedRecord> = synthetic_records(0, rows.div_ceil(100), 100, move |_| received_at)
        .into_iter()
        .take(rows as usize)
        .enumerate()
        .map(|(offset, record)| PositionedRecord {
            record,
            position: KafkaPosition { incarnation: 0, partition: 0, offset: offset as i64 },
        })
        .collect();
    let batches =
        |spec: &'static TableSpec| -> Vec<RecordBatch> { records.chunks(batch_rows).map(|c| spec.batch(c)).collect() };
    let (events, alerts) = (batches(&ALERT_EVENTS), batches(&ALERTS));
    let log: Vec<RecordBatch> = records.chunks(batch_rows).map(|chunk| LOG.batch(chunk)).collect();
    let bytes_per_row = events.iter().map(RecordBatch::get_array_memory_size).sum::<usize>() / records.len();

    let settings = DeephavenSettings { url: url.clone(), table_prefix: format!("{prefix}log_"), ..Default::default() };
    let sink = Sink::open(&settings, true).await.expect("the publisher's tables are created");
    let started = Instant::now();
    for batch in &log {
        sink.write(batch.clone()).await.expect("the batch is written");
    }
    report("log + derived tables", records.len(), records.len(), batch_rows, bytes_per_row, started);

    let client = Client::connect(ClientConfig::new(url)).await.expect("Deephaven is reachable");
    let blink = format!("{prefix}blink_only");
    let blink = client.create_input_table(&blink, log[0].schema(), InputTableKind::Blink).await.expect("created");
    let started = Instant::now();
    for batch in &log {
        client.append(&blink, batch.clone()).await.expect("the batch is appended");
    }
    report("blink log alone", records.len(), records.len(), batch_rows, bytes_per_row, started);

    let table = |name: &str, spec: &'static TableSpec| {
        let (client, name) = (&client, format!("{prefix}{name}"));
        let kind = InputTableKind::keyed(spec.key_columns.iter().copied());
        async move { client.create_input_table(&name, spec.schema(), kind).await.expect("the table is created") }
    };

    let (events_table, alerts_table) = (table("alert_events", &ALERT_EVENTS).await, table("alerts", &ALERTS).await);
    let started = Instant::now();
    for (events, alerts) in events.iter().zip(&alerts) {
        let (a, b) =
            tokio::join!(client.append(&events_table, events.clone()), client.append(&alerts_table, alerts.clone()));
        a.and(b).expect("the batches are appended");
    }
    report("before: keyed alerts + alert_events", records.len(), 2 * records.len(), batch_rows, bytes_per_row, started);
}

fn report(tables: &str, records: usize, rows: usize, batch_rows: usize, bytes_per_row: usize, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "bench": "deephaven ceiling",
            "tables": tables,
            "batch_rows": batch_rows,
            "arrow_bytes_per_row": bytes_per_row,
            "seconds": (seconds * 100.0).round() / 100.0,
            "records_per_s": (records as f64 / seconds).round(),
            "rows_per_s": (rows as f64 / seconds).round(),
        })
    );
}
