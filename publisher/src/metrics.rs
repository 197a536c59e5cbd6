//! The Prometheus metrics `publisher` exposes on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use service_kit::process_metrics::ProcessMetrics;
use std::sync::atomic::AtomicU64;

use crate::health::Health;
use schemas::Timestamp;

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
    /// The build and the process, beside the service's own.
    process: ProcessMetrics,
    pub records_consumed: Counter,
    pub rows_written: Family<TableLabels, Counter>,
    pub batch_records: Histogram,
    pub write_seconds: Histogram,
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// This publisher's share of the topic: with several publishers in one group, a member holding none reads
    /// nothing, and one holding all is carrying the others.
    pub assigned_partitions: Gauge,
    pub dlq_records: Counter,
    pub deephaven_reconnects: Counter,
    pub replays: Counter,
    /// Times the topic was found created anew (a partition ending below what was applied to it).
    pub topic_incarnations: Counter,
    pub commit_failures: Counter,
    /// Jumps in a partition's offsets read again ([`crate::continuity`]); a healthy Kafka shows none.
    pub offset_jumps_reread: Counter,
    /// Jumps that every re-read showed again, taken as offsets that hold nothing.
    pub offset_jumps_accepted: Counter,
    /// Writes or checks Deephaven failed with an error worth retrying on the same session.
    pub deephaven_retries: Counter,
    /// Attempts to send dead letters that failed (the batch waits until they are sent).
    pub dlq_failures: Counter,
    /// Times the secret files were found changed, and the pipeline restarted with them ([`crate::secret_files`]).
    pub secret_reloads: Counter,
    /// Times the secret files could not be read again (the secrets in use were kept).
    pub secret_reload_failures: Counter,
    /// Observed from [`Health`] when rendered: 1 while Deephaven is usable with the tables in place.
    deephaven_connected: Gauge,
    /// Observed from [`Health`]: brokers the consumer is connected to; 0 means Kafka is unreachable.
    kafka_brokers_up: Gauge,
    /// Observed from [`Health`]: 1 once the publisher stopped for a failure retrying cannot fix.
    halted: Gauge,
    /// When ingest received the newest alert state written to Deephaven, in seconds since the epoch: an alert rule
    /// can tell "nothing reaches Deephaven any more" from "nothing to write". One gauge serves every table, since
    /// Deephaven derives them all from the log in the update cycle that applies the write.
    pub newest_written_received_at: Gauge<f64, AtomicU64>,
    /// The same for the newest state consumed: ahead of the written one while states are read but not written,
    /// so a stuck write is told apart from a quiet or unreachable Kafka.
    pub newest_consumed_received_at: Gauge<f64, AtomicU64>,
    /// How long after ingest received each alert state the publisher read it from Kafka. Beside `applied_delay`, it
    /// tells the time a state spends in Kafka from the time it waits for Deephaven.
    read_delay: Histogram,
    /// How long after ingest received each alert state Deephaven had applied it (its write returned): the age of
    /// what users see, as a distribution, where the gauges give only the newest.
    applied_delay: Histogram,
}

/// The delay histograms' upper bounds, in seconds: fine around the sub-second delays of a pipeline keeping up, coarse
/// up to the minutes of a backlog or a replay (older states fall in `+Inf`).
const DELAY_BUCKETS: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

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
        let assigned_partitions = Gauge::default();
        registry.register(
            "assigned_partitions",
            "Partitions of the topic assigned to this publisher by its consumer group",
            assigned_partitions.clone(),
        );
        let dlq_records = Counter::default();
        registry.register("dlq_records", "Undecodable records sent to the dead-letter topic", dlq_records.clone());
        let deephaven_reconnects = Counter::default();
        registry.register("deephaven_reconnects", "Deephaven sessions re-established", deephaven_reconnects.clone());
        let replays = Counter::default();
        registry.register("replays", "Partitions started over from the earliest offset", replays.clone());
        let topic_incarnations = Counter::default();
        registry.register(
            "topic_incarnations",
            "Times the topic was found created anew and read again from its start",
            topic_incarnations.clone(),
        );
        let commit_failures = Counter::default();
        registry.register("commit_failures", "Group offset commits the broker refused", commit_failures.clone());
        let offset_jumps_reread = Counter::default();
        registry.register(
            "offset_jumps_reread",
            "Jumps in a partition's offsets (records skipped by a fetch) read again from the first missing offset",
            offset_jumps_reread.clone(),
        );
        let offset_jumps_accepted = Counter::default();
        registry.register(
            "offset_jumps_accepted",
            "Jumps in a partition's offsets that every re-read showed again, taken as offsets holding no record",
            offset_jumps_accepted.clone(),
        );
        let deephaven_connected = Gauge::default();
        registry.register(
            "deephaven_connected",
            "1 while Deephaven is usable with the tables in place",
            deephaven_connected.clone(),
        );
        let kafka_brokers_up = Gauge::default();
        registry.register("kafka_brokers_up", "Brokers the consumer is connected to", kafka_brokers_up.clone());
        let deephaven_retries = Counter::default();
        registry.register(
            "deephaven_retries",
            "Deephaven calls retried on the same session after a transient error",
            deephaven_retries.clone(),
        );
        let dlq_failures = Counter::default();
        registry.register("dlq_failures", "Failed attempts to send dead letters", dlq_failures.clone());
        let secret_reloads = Counter::default();
        registry.register(
            "secret_reloads",
            "Times the secret files changed and the pipeline restarted with the new secrets",
            secret_reloads.clone(),
        );
        let secret_reload_failures = Counter::default();
        registry.register(
            "secret_reload_failures",
            "Times the secret files could not be read again (the secrets in use were kept)",
            secret_reload_failures.clone(),
        );
        let halted = Gauge::default();
        registry.register("halted", "1 once the publisher stopped for a failure retrying cannot fix", halted.clone());
        let newest_written_received_at = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "newest_written_received_at",
            "When ingest received the newest alert state written to Deephaven, since the Unix epoch",
            Unit::Seconds,
            newest_written_received_at.clone(),
        );
        let newest_consumed_received_at = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "newest_consumed_received_at",
            "When ingest received the newest alert state consumed from Kafka, since the Unix epoch",
            Unit::Seconds,
            newest_consumed_received_at.clone(),
        );
        let mut delay = |name: &str, help: &str| {
            let histogram = Histogram::new(DELAY_BUCKETS);
            registry.register_with_unit(name, help, Unit::Seconds, histogram.clone());
            histogram
        };
        let read_delay = delay(
            "read_delay",
            "Time from ingest receiving an alert state to the publisher reading it from Kafka (hosts' clocks apart)",
        );
        let applied_delay = delay(
            "applied_delay",
            "Time from ingest receiving an alert state to Deephaven having applied it (hosts' clocks apart)",
        );
        Self {
            registry,
            process: ProcessMetrics::new("publisher", env!("CARGO_PKG_VERSION")),
            records_consumed,
            rows_written,
            batch_records,
            write_seconds,
            consumer_lag,
            assigned_partitions,
            dlq_records,
            deephaven_reconnects,
            replays,
            topic_incarnations,
            commit_failures,
            offset_jumps_reread,
            offset_jumps_accepted,
            deephaven_retries,
            dlq_failures,
            secret_reloads,
            secret_reload_failures,
            deephaven_connected,
            kafka_brokers_up,
            halted,
            newest_written_received_at,
            newest_consumed_received_at,
            read_delay,
            applied_delay,
        }
    }
}

impl Metrics {
    /// A state ingest received at `received_at` was read from Kafka.
    pub fn consumed(&self, received_at: Timestamp) {
        let now = Timestamp::now();
        self.read_delay.observe(seconds_between(received_at, now));
        advance(&self.newest_consumed_received_at, received_at);
    }

    /// Deephaven has applied the states ingest received at `received_at`.
    pub fn applied(&self, received_at: &[Timestamp]) {
        let now = Timestamp::now();
        for &received_at in received_at {
            self.applied_delay.observe(seconds_between(received_at, now));
        }
        if let Some(&newest) = received_at.iter().max() {
            advance(&self.newest_written_received_at, newest);
        }
    }

    /// The metrics in the OpenMetrics text format, the health gauges as `health` has them now.
    pub fn render(&self, health: &Health) -> String {
        self.deephaven_connected.set(i64::from(health.deephaven()));
        self.kafka_brokers_up.set(health.kafka_brokers_up());
        self.halted.set(i64::from(health.halted().is_some()));
        self.process.render_with(&self.registry)
    }
}

/// Moves a `newest_*_received_at` gauge to `received_at` if that is newer (records of several partitions, and their
/// batches, do not arrive in the order ingest received them).
fn advance(gauge: &Gauge<f64, AtomicU64>, received_at: Timestamp) {
    let seconds = received_at.unix_nanos() as f64 / 1e9;
    if seconds > gauge.get() {
        gauge.set(seconds);
    }
}

/// Seconds from `earlier` to `later`; 0 when a clock ahead of ours makes `earlier` later.
fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    (later.unix_nanos().saturating_sub(earlier.unix_nanos())).max(0) as f64 / 1e9
}
