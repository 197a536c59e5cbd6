//! The Prometheus metrics `publisher` exposes on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub partition: i32,
}

pub struct Metrics {
    registry: Registry,
    pub records_consumed: Counter,
    pub rows_written: Family<TableLabels, Counter>,
    pub batch_records: Histogram,
    pub write_seconds: Histogram,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    pub dlq_records: Counter,
    pub deephaven_reconnects: Counter,
    pub replays: Counter,
    pub ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("publisher");
        let records_consumed = Counter::default();
        registry.register("records_consumed", "Kafka records consumed", records_consumed.clone());
        let rows_written = Family::<TableLabels, Counter>::default();
        registry.register("rows_written", "Rows written to Deephaven, by table", rows_written.clone());
        let batch_records = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register("batch_records", "Records per written batch", batch_records.clone());
        let write_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("write_duration_seconds", "Time to write one batch to Deephaven", write_seconds.clone());
        let consumer_lag = Family::<PartitionLabels, Gauge>::default();
        registry.register("consumer_lag", "Records behind the end of the partition", consumer_lag.clone());
        let dlq_records = Counter::default();
        registry.register("dlq_records", "Undecodable records sent to the dead-letter topic", dlq_records.clone());
        let deephaven_reconnects = Counter::default();
        registry.register("deephaven_reconnects", "Deephaven sessions re-established", deephaven_reconnects.clone());
        let replays = Counter::default();
        registry.register("replays", "Partitions started over from the earliest offset", replays.clone());
        let ready = Gauge::default();
        registry.register("ready", "1 while consuming with the Deephaven tables in place", ready.clone());
        Self {
            registry,
            records_consumed,
            rows_written,
            batch_records,
            write_seconds,
            consumer_lag,
            dlq_records,
            deephaven_reconnects,
            replays,
            ready,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
