//! `produce-ceiling`: how fast the broker takes alert records when no HTTP, parsing or validation is in the way.
//!
//! Encodes `--records` distinct alert records before the clock starts (the same synthetic alerts `loadgen` posts,
//! in ingest's record format, key and headers), then produces all of them with ingest's guarantees (acks=all,
//! idempotent, lz4) and a 5 ms linger, so that batches fill (ingest lingers 1 ms, for its latency), and waits until
//! the broker acknowledged every one. Prints one JSON line. The topic is left holding exactly these records, which is
//! how `scripts/bench.sh` pre-fills it for the publisher's replay.

use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use schemas::RecordHeaders;
use schemas::Timestamp;
use std::time::{Duration, Instant};
use test_kit::records::synthetic_records;

/// How fast the broker takes alert records when no HTTP, parsing or validation is in the way.
#[derive(Parser)]
struct Options {
    /// Kafka bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// The topic to fill.
    #[arg(long)]
    topic: String,
    /// How many records.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
}

/// Records awaiting their acknowledgement at once: enough to keep every partition's batches full.
const IN_FLIGHT: usize = 50_000;

#[tokio::main]
async fn main() {
    let Options { brokers, topic, records: count } = Options::parse();

    // One receive time for every record, as when they all came in together.
    let received_at = Timestamp::now();
    let records: Vec<(String, Vec<u8>)> = synthetic_records(0, count.div_ceil(100), 100, move |_| received_at)
        .into_iter()
        .take(count as usize)
        .map(|record| (record.fingerprint.to_string(), record.encode()))
        .collect();
    let bytes: usize = records.iter().map(|(key, value)| key.len() + value.len()).sum();
    let headers = RecordHeaders::current()
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| headers.insert(Header { key, value: Some(value) }));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", (2 * IN_FLIGHT).to_string())
        .create()
        .expect("the producer is created");

    let started = Instant::now();
    let mut deliveries = FuturesUnordered::new();
    let mut failed = 0u64;
    for (key, value) in &records {
        while deliveries.len() >= IN_FLIGHT {
            failed += u64::from(matches!(deliveries.next().await, Some(Err(_))));
        }
        let record = FutureRecord::to(&topic).key(key).payload(value).headers(headers.clone());
        deliveries.push(producer.send(record, Duration::from_secs(30)));
    }
    while let Some(delivery) = deliveries.next().await {
        failed += u64::from(delivery.is_err());
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(failed, 0, "the broker refused {failed} records");
    println!(
        "{}",
        serde_json::json!({
            "bench": "produce ceiling",
            "records": records.len(),
            "bytes_per_record": bytes / records.len(),
            "seconds": (seconds * 100.0).round() / 100.0,
            "records_per_s": (records.len() as f64 / seconds).round(),
            "mb_per_s": (bytes as f64 / seconds / 1e6 * 10.0).round() / 10.0,
        })
    );
}
