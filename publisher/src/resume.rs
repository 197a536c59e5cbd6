//! Where to resume each partition, read from Deephaven, and the consumer context that applies it on assignment.
//!
//! Kafka's committed offsets are not trusted for resuming: they can claim records that a Deephaven restart lost.
//! Instead, whenever partitions are assigned, the progress is re-read from the derived `publisher_offsets` table and
//! each partition starts at its last applied offset + 1, or at the earliest retained record when Deephaven has
//! none. Re-reading at every assignment means a partition that moves between publishers resumes where its previous
//! owner stopped writing; reading stale progress (a timed-out read, an old owner still writing) only makes records
//! be appended again, which changes none of the derived tables.

use crate::fetching::FetchGate;
use crate::health::Health;
use crate::metrics::{Metrics, PartitionLabels};
use crate::tables::Sink;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long an assignment may wait for Deephaven's answer before it falls back to the last known progress
/// (safe: appending records again changes no derived table, it only costs time).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the pipeline and the consumer's rebalance callback.
pub struct Shared {
    sink: Mutex<Option<Arc<Sink>>>,
    pub fetch_gate: FetchGate,
    /// The last offset applied per partition as far as this publisher knows: read from Deephaven, raised by its
    /// own writes.
    progress: Mutex<BTreeMap<i32, i64>>,
    assigned: Mutex<BTreeSet<i32>>,
    metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    /// Must be called within a multi-threaded Tokio runtime: the rebalance callback blocks in place on it.
    pub fn new(metrics: Arc<Metrics>, health: Arc<Health>) -> Arc<Self> {
        Arc::new(Self {
            sink: Mutex::new(None),
            fetch_gate: FetchGate::default(),
            progress: Mutex::new(BTreeMap::new()),
            assigned: Mutex::new(BTreeSet::new()),
            metrics,
            health,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Switches to a new Deephaven session and reads its progress.
    pub async fn install(&self, sink: Sink) -> deephaven_client::Result<()> {
        let sink = Arc::new(sink);
        let progress = sink.progress().await?;
        tracing::info!(?progress, "progress read from Deephaven");
        let replaced = lock(&self.sink).replace(sink);
        *lock(&self.progress) = progress;
        if let Some(old) = replaced {
            // Ended on the server rather than left to expire; whatever it still held goes with it.
            tokio::spawn(async move { old.close().await });
        }
        Ok(())
    }

    pub fn sink(&self) -> Option<Arc<Sink>> {
        lock(&self.sink).clone()
    }

    /// Records that the batch ending at these offsets (per partition) was written.
    pub fn wrote(&self, offsets: &BTreeMap<i32, i64>) {
        let mut progress = lock(&self.progress);
        for (partition, offset) in offsets {
            let known = progress.entry(*partition).or_insert(*offset);
            *known = (*known).max(*offset);
        }
    }

    /// An assigned partition whose progress in Deephaven (`applied`) is behind what this publisher wrote to it:
    /// only possible when the tables were created anew under it (another publisher found one missing, or a replay
    /// on the same prefix), so what it wrote before is not in them.
    pub fn behind(&self, applied: &BTreeMap<i32, i64>) -> Option<i32> {
        let progress = lock(&self.progress);
        self.assigned().into_iter().find(|partition| match progress.get(partition) {
            Some(written) => applied.get(partition).is_none_or(|applied| applied < written),
            None => false,
        })
    }

    pub fn assigned(&self) -> BTreeSet<i32> {
        lock(&self.assigned).clone()
    }

    /// Where `partition` resumes: after its last applied offset, or at the earliest retained record.
    pub fn resume_offset(&self, partition: i32) -> Offset {
        match lock(&self.progress).get(&partition) {
            Some(offset) => Offset::Offset(offset + 1),
            None => {
                self.metrics.replays.inc();
                Offset::Beginning
            }
        }
    }

    fn refresh_blocking(&self) {
        let Some(sink) = self.sink() else { return };
        let read = tokio::task::block_in_place(|| {
            self.runtime.block_on(tokio::time::timeout(PROGRESS_TIMEOUT, sink.progress()))
        });
        match read {
            Ok(Ok(progress)) => *lock(&self.progress) = progress,
            Ok(Err(err)) => tracing::warn!(error = %err, "could not re-read progress; resuming from the last known"),
            Err(_) => tracing::warn!("re-reading progress timed out; resuming from the last known"),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().expect("a publisher lock was poisoned")
}

/// The consumer context: resumes assigned partitions from Deephaven's progress, and reports lag, broker
/// connectivity and refused commits.
pub struct ResumeContext {
    pub shared: Arc<Shared>,
    pub topic: String,
}

impl ClientContext for ResumeContext {
    fn stats(&self, statistics: Statistics) {
        // Logical brokers (the group coordinator) ride on a real broker's connection: count real ones only.
        let up =
            statistics.brokers.values().filter(|broker| broker.source != "logical" && broker.state == "UP").count();
        self.shared.health.set_kafka_brokers_up(up as i64);
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        for (partition, stats) in &topic.partitions {
            if *partition >= 0 && stats.consumer_lag >= 0 {
                self.shared
                    .metrics
                    .consumer_lag
                    .get_or_create(&PartitionLabels { partition: *partition })
                    .set(stats.consumer_lag);
            }
        }
    }

    /// Losing every broker is reported here at once; the next statistics tell when one is back.
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.shared.health.set_kafka_brokers_up(0);
        }
        tracing::warn!(error = %error, reason, "Kafka client error");
    }
}

impl ConsumerContext for ResumeContext {
    /// Resuming never depends on the group's offsets, so a refused commit only makes the group's lag look
    /// larger until the next one succeeds: counted and logged, nothing more.
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(err) = result {
            self.shared.metrics.commit_failures.inc();
            tracing::warn!(error = %err, "committing the group's offsets failed");
        }
    }

    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, assignment: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.shared.refresh_blocking();
                let partitions: Vec<i32> = assignment.elements().iter().map(|element| element.partition()).collect();
                for partition in &partitions {
                    let offset = self.shared.resume_offset(*partition);
                    if let Err(err) = assignment.set_partition_offset(&self.topic, *partition, offset) {
                        tracing::error!(partition, error = %err, "could not set the resume offset");
                    }
                }
                tracing::info!(?partitions, "partitions assigned");
                if let Err(err) = consumer.assign(assignment) {
                    tracing::error!(error = %err, "could not take the assignment");
                }
                *lock(&self.shared.assigned) = partitions.into_iter().collect();
                self.shared.fetch_gate.assignment_changed();
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("partitions revoked");
                if let Err(err) = consumer.unassign() {
                    tracing::error!(error = %err, "could not drop the assignment");
                }
                lock(&self.shared.assigned).clear();
            }
            other => tracing::error!(error = ?other, "rebalance failed"),
        }
    }
}
