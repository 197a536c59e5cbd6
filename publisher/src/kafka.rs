//! The Kafka edge: the consumer and its settings, committing the group's offsets, and moving partitions back to
//! the progress Deephaven holds.

use crate::configuration::Settings;
use crate::resume::{ResumeContext, Shared};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use schemas::tables::Applied;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The consumer of the alerts topic, resuming each assigned partition from Deephaven's progress.
pub type AlertConsumer = StreamConsumer<ResumeContext>;

/// How long moving one partition, or asking where it ends, may take.
pub const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

pub fn consumer(settings: &Settings, shared: Arc<Shared>) -> KafkaResult<AlertConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", &settings.kafka.group_id)
        .set("client.id", "alerthaven-publisher")
        // Progress is read from Deephaven; the group's offsets are committed explicitly, for lag monitoring only.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", settings.kafka.session_timeout.as_millis().to_string())
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("fetch.wait.max.ms", "50")
        // Bounded memory while Deephaven is away and nothing is consumed. Counted before decompression, so it
        // holds several times as many bytes of records (docs/benchmarks.md).
        .set("queued.max.messages.kbytes", "4096")
        .set("statistics.interval.ms", "5000")
        // A subscribed topic that is missing (re-created after a broker restart, say) is found within this time
        // rather than librdkafka's default five minutes.
        .set("topic.metadata.refresh.interval.ms", "10000");
    for (name, value) in &settings.kafka.properties {
        config.set(name, value);
    }
    let topic = settings.kafka.topic.clone();
    config.create_with_context(ResumeContext { shared, topic })
}

/// Commits the group's offsets (for lag monitoring; resuming does not depend on them). Refusals arrive in
/// [`ResumeContext`]'s commit callback.
pub fn commit(consumer: &AlertConsumer, topic: &str, offsets: &BTreeMap<i32, Applied>) {
    let mut list = TopicPartitionList::new();
    for (partition, applied) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(applied.offset + 1))
            .expect("an absolute offset is always valid");
    }
    if let Err(err) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(error = %err, "committing the group's offsets failed");
    }
}

/// Moves every assigned partition back to the progress Deephaven holds. Stops at the first partition that cannot
/// be moved: reading on from where it is would skip the records dropped with the unwritten batches.
pub fn rewind(consumer: &AlertConsumer, topic: &str, shared: &Shared) -> KafkaResult<()> {
    for partition in shared.assigned() {
        let offset = shared.resume_offset(partition);
        tracing::info!(partition, ?offset, "resuming from Deephaven's progress");
        consumer.seek(topic, partition, offset, SEEK_TIMEOUT)?;
    }
    Ok(())
}
