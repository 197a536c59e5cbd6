//! The Kafka edge: the consumer and its settings, committing the group's offsets, moving partitions back to the
//! progress Deephaven holds, and looking for single records (is the last one applied still there?).

use crate::configuration::Settings;
use crate::resume::{ResumeContext, Shared};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use schemas::tables::Applied;
use service_kit::kafka_client::{self, client_config};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The consumer of the alerts topic, resuming each assigned partition from Deephaven's progress.
pub type AlertConsumer = StreamConsumer<ResumeContext>;

/// How long moving one partition, or asking where it ends, may take.
const SEEK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`RecordProbe::is_gone`] waits for a record that should be there.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub fn consumer(settings: &Settings, shared: Arc<Shared>) -> KafkaResult<AlertConsumer> {
    let own = |config: &mut ClientConfig| {
        config
            .set("group.id", &settings.kafka.group_id)
            // Progress is read from Deephaven; the group's offsets are committed explicitly, for lag monitoring only.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", settings.kafka.session_timeout.as_millis().to_string())
            .set("partition.assignment.strategy", "range,roundrobin")
            // For the local broker (Tansu 0.6.0, memory store), which answers a waiting fetch only when it polls its
            // store again, halfway through the time left: a short wait keeps the tables close behind the topic there.
            // Apache Kafka answers as soon as records arrive, so there this only makes an idle consumer ask more often.
            // Tansu's fetch also lists every batch of each partition within this wait (upstream nisshi-io/nisshi#684,
            // Tansu's repository renamed), so a topic of enough batches starves a consumer at this wait (measured:
            // docs/benchmarks.md, section "Soak — 2026-12-03 (second run)"; docs/runbook.md): raise it through
            // `kafka.properties` there. It can go when the Tansu that scripts/install-broker.sh pins has #684 fixed and
            // wakes waiting fetches as records arrive (no upstream issue found for that).
            .set("fetch.wait.max.ms", "50")
            // Bounded memory while Deephaven is away and nothing is consumed. Counted before decompression, so it
            // holds several times as many bytes of records; a replay waits for Deephaven, never for this queue, so a
            // small one costs no speed (docs/benchmarks.md).
            .set("queued.max.messages.kbytes", "1024")
            // A fetch's answer is queued whole however full the queue is, so its size is what the queue overshoots
            // by: most of the publisher's memory in a replay at the 50 MB default. A batch larger than this still
            // comes whole. With answers this small, librdkafka's default second of pause once the queue is over its
            // bound would leave the writer idle; a short pause keeps the queue fed.
            .set("fetch.max.bytes", "1048576")
            .set("fetch.queue.backoff.ms", "10")
            .set("statistics.interval.ms", "5000")
            // A subscribed topic that is missing (re-created after a broker restart, say) is found within this time
            // rather than librdkafka's default five minutes.
            .set("topic.metadata.refresh.interval.ms", "10000");
    };
    let config = client_config(&settings.kafka.brokers, "alerthaven-publisher", own, settings.kafka.properties.iter());
    let topic = settings.kafka.topic.clone();
    let probe = RecordProbe::new(config.clone(), settings);
    kafka_client::create_with_context(&config, ResumeContext { shared, topic, probe })
}

/// Looks for single records of the alerts topic, outside the group.
pub struct RecordProbe {
    config: ClientConfig,
    topic: String,
}

impl RecordProbe {
    /// Reads with the consumer's settings (brokers, security, the user's properties), outside its group, and
    /// reports a missing offset instead of moving to another.
    fn new(mut config: ClientConfig, settings: &Settings) -> Self {
        config
            .set("group.id", format!("{}-probe", settings.kafka.group_id))
            .set("client.id", "alerthaven-publisher-probe")
            .set("auto.offset.reset", "error");
        Self { config, topic: settings.kafka.topic.clone() }
    }

    /// Whether the record at `offset` is gone from `partition`, as when the topic was created anew: the partition
    /// ends (`consumer` says) at or below it, and reading there brings nothing. The end alone does not tell: the
    /// local broker (Tansu 0.6.0) reports an end short of the last record after a batched produce (no upstream issue
    /// found); the read can go when the Tansu that scripts/install-broker.sh pins reports ends right. Blocking.
    pub fn is_gone<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        partition: i32,
        offset: i64,
    ) -> KafkaResult<bool> {
        let (_, end) = consumer.fetch_watermarks(&self.topic, partition, SEEK_TIMEOUT)?;
        if end > offset {
            return Ok(false);
        }
        // A consumer for this one look: one kept around would refresh its metadata through a broker restart, and
        // librdkafka 2.12 crashes on the local broker's answers for a missing topic (see `fetching`: the upstream fix
        // and when this can go).
        let reader: BaseConsumer = kafka_client::create(&self.config)?;
        let mut at = TopicPartitionList::new();
        at.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        reader.assign(&at)?;
        let deadline = Instant::now() + PROBE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(true);
            }
            match reader.poll(left) {
                Some(Ok(_)) => return Ok(false),
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange))) => return Ok(true),
                Some(Err(err)) => return Err(err),
                None => {}
            }
        }
    }
}

/// Commits the group's offsets (for lag monitoring; resuming does not depend on them) of the partitions still
/// `assigned`. Refusals arrive in [`ResumeContext`]'s commit callback.
pub fn commit(consumer: &AlertConsumer, topic: &str, offsets: &BTreeMap<i32, Applied>, assigned: &BTreeSet<i32>) {
    let list = to_commit(topic, offsets, assigned);
    if list.count() == 0 {
        return;
    }
    if let Err(err) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(error = %err, "committing the group's offsets failed");
    }
}

/// The offsets to commit after a batch that read up to `offsets`. A batch read before a rebalance may hold records
/// of a partition given to another member since, which may have committed further on: its offset is left alone
/// (the broker takes a commit of any partition from any member of the group).
fn to_commit(topic: &str, offsets: &BTreeMap<i32, Applied>, assigned: &BTreeSet<i32>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for (partition, applied) in offsets.iter().filter(|(partition, _)| assigned.contains(partition)) {
        let next = applied.next_offset().expect("an offset Kafka gave is followed by another");
        list.add_partition_offset(topic, *partition, Offset::Offset(next)).expect("an absolute offset is always valid");
    }
    list
}

/// Moves every assigned partition back to the progress Deephaven holds. Stops at the first partition that cannot
/// be moved: reading on from where it is would skip the records dropped with the unwritten batches.
pub fn rewind(consumer: &AlertConsumer, topic: &str, shared: &Shared) -> KafkaResult<()> {
    shared.moved();
    for partition in shared.assigned() {
        let offset = shared.resume_offset(partition);
        tracing::info!(partition, ?offset, "resuming from Deephaven's progress");
        consumer.seek(topic, partition, offset, SEEK_TIMEOUT)?;
    }
    Ok(())
}

/// Moves `partition` back to `offset` to read what a fetch skipped ([`crate::continuity`]). Blocking.
pub fn read_again_from(consumer: &AlertConsumer, topic: &str, partition: i32, offset: i64) -> KafkaResult<()> {
    consumer.seek(topic, partition, Offset::Offset(offset), SEEK_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_partitions_still_assigned_are_committed_each_after_its_last_record() {
        let read = |offset| Applied { incarnation: 0, offset };
        let offsets = [(0, read(9)), (1, read(41)), (2, read(0))].into();
        let list = to_commit("alerts", &offsets, &[0, 2, 5].into());
        let committed: Vec<(i32, Offset)> =
            list.elements().iter().map(|element| (element.partition(), element.offset())).collect();
        assert_eq!(committed, [(0, Offset::Offset(10)), (2, Offset::Offset(1))], "partition 1 was given away");
    }
}
