//! `table-progress`: waits until a Deephaven table holds every record of a topic, and says when.
//!
//! The table must carry `KafkaPartition` and `KafkaOffset` columns (Deephaven's own Kafka consumer adds them, and so
//! does the publisher's `publisher_offsets`). Every 200 ms the server computes the highest offset per partition (the
//! rows are never downloaded); once the offsets account for `--records` records (offsets from 0, one per record),
//! it prints one JSON line with the wall-clock time it saw that, for `scripts/bench.sh` to time a consumer it did
//! not start itself.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use clap::Parser;
use deephaven_client::{Aggregate, Aggregation, Client, ClientConfig, Operation};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Waits until a Deephaven table holds every record of a topic, and says when.
#[derive(Parser)]
struct Options {
    /// Deephaven's URL.
    #[arg(long)]
    url: String,
    /// The table, with `KafkaPartition` and `KafkaOffset` columns.
    #[arg(long)]
    table: String,
    /// How many records the topic holds (offsets from 0).
    #[arg(long)]
    records: i64,
    /// How long to wait before failing.
    #[arg(long, default_value_t = 600)]
    deadline_seconds: u64,
}

#[tokio::main]
async fn main() {
    let Options { url, table, records, deadline_seconds } = Options::parse();
    let deadline = Duration::from_secs(deadline_seconds);
    let client = Client::connect(ClientConfig::new(url)).await.expect("Deephaven is reachable");
    let highest = Operation::aggregate(vec![Aggregation::columns(Aggregate::Max, ["KafkaOffset"])], ["KafkaPartition"]);
    let started = std::time::Instant::now();
    loop {
        let seen: i64 = match client.derived_snapshot(&table, std::slice::from_ref(&highest)).await {
            Ok(batches) => batches
                .iter()
                .filter_map(|batch| batch.column_by_name("KafkaOffset").and_then(|c| c.as_primitive_opt::<Int64Type>()))
                .flat_map(|offsets| offsets.values().iter().map(|offset| offset + 1).collect::<Vec<_>>())
                .sum(),
            Err(_) => 0, // not there yet
        };
        if seen >= records {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64();
            println!("{}", serde_json::json!({ "table": table, "records": seen, "finished_at": now }));
            return;
        }
        assert!(started.elapsed() < deadline, "{table} holds {seen} of {records} records after {deadline:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
