//! `latency`: how long after ingest's 200 an alert's row is visible in Deephaven, at a fixed alert rate.
//!
//! Publishes a view of the `alert_events` table with a `SeenAt = now()` column: Deephaven evaluates it once per
//! row, in the update cycle that adds the row, which is the moment a query can see it. Then posts synthetic bodies
//! on an open-loop schedule (`--rate` alerts per second, `--alerts` per body), notes the wall-clock time of every
//! 200, waits (with a deadline) until every acknowledged alert has its row, and prints one JSON line with the
//! percentiles of `SeenAt − acknowledged` over all of them. Both clocks are this machine's. Given the publisher's
//! `/metrics`, it also says where the time went: how its delay histograms (from ingest receiving each state to the
//! publisher reading it from Kafka, and to Deephaven having applied it) changed over the run.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;
use bench::percentile_ms;
use clap::Parser;
use deephaven_client::{Client, ClientConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use test_kit::fixtures::synthetic_webhook;
use test_kit::metrics::sample;

/// How long after ingest's 200 an alert's row is visible in Deephaven, at a fixed alert rate.
#[derive(Parser)]
struct Options {
    /// Ingest's webhook URL.
    #[arg(long)]
    url: String,
    /// Deephaven's URL.
    #[arg(long)]
    deephaven: String,
    /// The `alert_events` table (with its prefix).
    #[arg(long)]
    table: String,
    /// Alerts per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Alerts per body.
    #[arg(long, default_value_t = 10)]
    alerts: usize,
    /// How long to send.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// The publisher's metrics URL, for the split between Kafka and Deephaven (nothing else may write meanwhile).
    #[arg(long)]
    publisher_metrics: Option<String>,
}

/// How long rows may take to appear after the last acknowledgement before the run counts them as missing.
const SETTLE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() {
    let Options { url, deephaven, table, rate, alerts, seconds, publisher_metrics } = Options::parse();

    let client = Client::connect(ClientConfig::new(deephaven)).await.expect("Deephaven answers");
    let view = format!("{table}_seen_{}", std::process::id());
    client.publish_updated_view(&table, &["SeenAt = now()"], &view).await.expect("the view is published");

    let before = scrape(publisher_metrics.as_deref()).await;
    let acknowledged = send(&url, rate, alerts, seconds).await;
    let seen = wait_for_rows(&client, &view, &acknowledged).await;
    let publisher = match (&before, scrape(publisher_metrics.as_deref()).await) {
        (Some(before), Some(after)) => serde_json::json!({
            "read": delay_change(before, &after, "read"),
            "applied": delay_change(before, &after, "applied"),
        }),
        _ => serde_json::Value::Null,
    };
    let mut latencies: Vec<Duration> = acknowledged
        .iter()
        .filter_map(|(fingerprint, acked)| seen.get(fingerprint).map(|seen| (*seen - acked).max(0)))
        .map(|nanos| Duration::from_nanos(nanos as u64))
        .collect();
    latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "bench": "end to end",
            "alerts_per_s": rate,
            "alerts_per_body": alerts,
            "acknowledged": acknowledged.len(),
            "seen": latencies.len(),
            "p50_ms": percentile_ms(&latencies, 0.50),
            "p99_ms": percentile_ms(&latencies, 0.99),
            "max_ms": percentile_ms(&latencies, 1.0),
            "publisher_delays": publisher,
        })
    );
}

/// The publisher's metrics text, if its URL was given.
async fn scrape(url: Option<&str>) -> Option<String> {
    let response = reqwest::get(url?).await.expect("the publisher's metrics answer");
    Some(response.error_for_status().expect("the publisher's metrics answer 200").text().await.expect("a text"))
}

/// How one of the publisher's delay histograms changed between two scrapes: the states it counted, their mean
/// delay, and the share of them within 100 ms (one of its bucket bounds).
fn delay_change(before: &str, after: &str, stage: &str) -> serde_json::Value {
    let change = |series: &str| {
        let name = format!("publisher_{stage}_delay_seconds{series}");
        sample(after, &name) - sample(before, &name)
    };
    let states = change("_count");
    let mean_ms = if states > 0.0 { change("_sum") / states * 1000.0 } else { 0.0 };
    let within = if states > 0.0 { change(r#"_bucket{le="0.1"}"#) / states } else { 0.0 };
    serde_json::json!({
        "states": states,
        "mean_ms": (mean_ms * 100.0).round() / 100.0,
        "within_100ms": (within * 1000.0).round() / 1000.0,
    })
}

fn unix_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_nanos() as i64
}

/// Posts bodies on schedule for `seconds`; returns when each acknowledged alert got its 200, by fingerprint.
async fn send(url: &str, rate: f64, alerts: usize, seconds: u64) -> HashMap<String, i64> {
    const WORKERS: u64 = 8;
    let acknowledged = Arc::new(Mutex::new(HashMap::new()));
    // Body numbers unique to this run (the fingerprint mix keeps 44 bits of them), so its alerts are new rows.
    let first_body = ((unix_nanos() as u64 / 1_000_000_000) & 0xf_ffff) << 24;
    let interval = Duration::from_secs_f64(WORKERS as f64 * alerts as f64 / rate);
    let end = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (url, acknowledged) = (url.to_owned(), Arc::clone(&acknowledged));
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
                // Workers start spread over one interval so that bodies arrive evenly.
                let mut next = Instant::now() + interval.mul_f64(worker as f64 / WORKERS as f64);
                for round in 0u64.. {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                    if Instant::now() >= end {
                        break;
                    }
                    let (body, fingerprints) = synthetic_webhook(first_body + round * WORKERS + worker, alerts);
                    let answer = client.post(&url).header("Content-Type", "application/json").body(body).send().await;
                    if answer.is_ok_and(|answer| answer.status().is_success()) {
                        let acked = unix_nanos();
                        acknowledged.lock().unwrap().extend(fingerprints.into_iter().map(|f| (f, acked)));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    Arc::try_unwrap(acknowledged).expect("the workers are done").into_inner().unwrap()
}

/// `SeenAt` of the acknowledged fingerprints, read until all are there or [`SETTLE`] has passed.
async fn wait_for_rows(client: &Client, view: &str, acknowledged: &HashMap<String, i64>) -> HashMap<String, i64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let batches = client.snapshot(view).await.expect("the view can be read");
        let seen = seen_at(&batches, acknowledged);
        if seen.len() == acknowledged.len() || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn seen_at(batches: &[RecordBatch], wanted: &HashMap<String, i64>) -> HashMap<String, i64> {
    let mut seen = HashMap::new();
    for batch in batches {
        let (Some(fingerprints), Some(times)) = (batch.column_by_name("Fingerprint"), batch.column_by_name("SeenAt"))
        else {
            panic!("the view has no Fingerprint or SeenAt column: {:?}", batch.schema());
        };
        let (fingerprints, times) = (fingerprints.as_string::<i32>(), times.as_primitive::<TimestampNanosecondType>());
        for row in 0..batch.num_rows() {
            let fingerprint = fingerprints.value(row);
            if times.is_valid(row) && wanted.contains_key(fingerprint) {
                seen.insert(fingerprint.to_owned(), times.value(row));
            }
        }
    }
    seen
}
