//! `deephaven-ceiling`: how fast Deephaven takes the publisher's rows when nothing else is in the way.
//!
//! Builds every batch before the clock starts (the same synthetic alerts `loadgen` posts, converted by the
//! publisher's own table specs), then appends them one after the other (DoPut + AddTableToInputTable, what the
//! Python client's reference figure measures) into fresh keyed input tables. Two runs, one JSON line each:
//! `alert_events` alone, and both data tables per batch written concurrently, as the publisher writes them.

use arrow::record_batch::RecordBatch;
use deephaven_client::{Client, ClientConfig, InputTableKind};
use e2e::bench::{synthetic_records, Flags};
use schemas::tables::{KafkaPosition, PositionedRecord, TableSpec, ALERTS, ALERT_EVENTS};
use std::time::Instant;

const USAGE: &str = "deephaven-ceiling --url URL [--rows N] [--batch-rows N] [--table-prefix P]";

#[tokio::main]
async fn main() {
    let flags = Flags::parse(USAGE);
    let url = flags.required("url");
    let rows: u64 = flags.get("rows", 200_000);
    let batch_rows: usize = flags.get("batch-rows", 10_000);
    let prefix: String = flags.get("table-prefix", "ceiling_".to_owned());

    let records: Vec<PositionedRecord> = synthetic_records(0, rows.div_ceil(100), 100)
        .into_iter()
        .take(rows as usize)
        .enumerate()
        .map(|(offset, record)| PositionedRecord {
            record,
            position: KafkaPosition { partition: 0, offset: offset as i64 },
        })
        .collect();
    let batches =
        |spec: &TableSpec| -> Vec<RecordBatch> { records.chunks(batch_rows).map(|c| spec.batch(c)).collect() };
    let (events, alerts) = (batches(&ALERT_EVENTS), batches(&ALERTS));
    let bytes_per_row = events.iter().map(RecordBatch::get_array_memory_size).sum::<usize>() / records.len();

    let client = Client::connect(ClientConfig::new(url)).await.expect("Deephaven is reachable");
    let table = |name: &str, spec: &'static TableSpec| {
        let (client, name) = (&client, format!("{prefix}{name}"));
        let kind = InputTableKind::keyed(spec.key_columns.iter().copied());
        async move { client.create_input_table(&name, spec.schema(), kind).await.expect("the table is created") }
    };

    let events_table = table("events_only", &ALERT_EVENTS).await;
    let started = Instant::now();
    for batch in &events {
        client.append(&events_table, batch.clone()).await.expect("the batch is appended");
    }
    report("alert_events only", records.len(), records.len(), batch_rows, bytes_per_row, started);

    let (events_table, alerts_table) = (table("alert_events", &ALERT_EVENTS).await, table("alerts", &ALERTS).await);
    let started = Instant::now();
    for (events, alerts) in events.iter().zip(&alerts) {
        let (a, b) =
            tokio::join!(client.append(&events_table, events.clone()), client.append(&alerts_table, alerts.clone()));
        a.and(b).expect("the batches are appended");
    }
    report("alerts + alert_events", records.len(), 2 * records.len(), batch_rows, bytes_per_row, started);
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
