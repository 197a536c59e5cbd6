//! Where to resume each partition, read from Deephaven, and the consumer context that applies it on assignment.
//!
//! Kafka's committed offsets are not trusted for resuming: they can claim records that a Deephaven restart lost.
//! Instead, whenever partitions are assigned, the progress is re-read from the derived `publisher_offsets` table and
//! each partition starts at its last applied offset + 1, or at the earliest retained record when Deephaven has
//! none. Re-reading at every assignment means a partition that moves between publishers resumes where its previous
//! owner stopped writing; reading stale progress (a timed-out read, an old owner still writing) only makes records
//! be appended again, which changes none of the derived tables.
//!
//! Offsets alone do not name a record for good: a topic deleted and created again, or a broker without durable
//! storage restarted, numbers its records from 0 again, below the offsets Deephaven holds, and resuming after those
//! would wait for ever. So every position carries the topic's incarnation ([`schemas::tables::KafkaPosition`]), and
//! a partition that no longer holds the last record applied to it means the topic was created anew: the publisher
//! counts one incarnation more and reads every partition from its start. Several publishers agree without talking:
//! each follows the highest incarnation Deephaven's progress names. (A re-created topic that already holds more
//! records than were applied before cannot be told apart by offsets; Kafka's topic ids would, but librdkafka does
//! not expose them to its consumers.)

use crate::fetching::FetchGate;
use crate::health::Health;
use crate::kafka::RecordProbe;
use crate::metrics::{Metrics, PartitionLabels};
use crate::tables::Sink;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use schemas::tables::Applied;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How long an assignment may wait for Deephaven's answer before it falls back to the last known progress
/// (safe: appending records again changes no derived table, it only costs time).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// The highest incarnation `progress` names (0 when it is empty).
fn latest_incarnation(progress: &BTreeMap<i32, Applied>) -> i32 {
    progress.values().map(|applied| applied.incarnation).max().unwrap_or(0)
}

/// State shared by the pipeline and the consumer's rebalance callback.
pub struct Shared {
    sink: Mutex<Option<Arc<Sink>>>,
    pub fetch_gate: FetchGate,
    /// The last position applied per partition as far as this publisher knows: read from Deephaven, raised by its
    /// own writes.
    progress: Mutex<BTreeMap<i32, Applied>>,
    /// The incarnation of the topic the records read now belong to (stamped on each as it is read).
    incarnation: AtomicI32,
    assigned: Mutex<BTreeSet<i32>>,
    /// Counts the times partitions were moved by the group or to Deephaven's progress, so that the reading loop
    /// does not take the jump in offsets that follows for records skipped ([`crate::continuity`]).
    moves: AtomicU64,
    /// Where each partition was last moved to, when that is a known offset: its first record after the move must be
    /// there ([`crate::continuity`]).
    starts: Mutex<HashMap<i32, i64>>,
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
            incarnation: AtomicI32::new(0),
            assigned: Mutex::new(BTreeSet::new()),
            moves: AtomicU64::new(0),
            starts: Mutex::new(HashMap::new()),
            metrics,
            health,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Switches to a new Deephaven session and reads its progress; a session whose progress cannot be read is ended.
    pub async fn install(&self, sink: Sink) -> deephaven_client::Result<()> {
        let progress = match sink.progress().await {
            Ok(progress) => progress,
            Err(err) => {
                sink.close().await;
                return Err(err);
            }
        };
        let sink = Arc::new(sink);
        tracing::info!(?progress, "progress read from Deephaven");
        let replaced = lock(&self.sink).replace(sink);
        self.adopt(progress);
        if let Some(old) = replaced {
            // Ended on the server rather than left to expire; whatever it still held goes with it.
            tokio::spawn(async move { old.close().await });
        }
        Ok(())
    }

    pub fn sink(&self) -> Option<Arc<Sink>> {
        lock(&self.sink).clone()
    }

    /// Takes Deephaven's progress as the known one, and follows the latest incarnation it names. Never goes back
    /// to an earlier one: right after a new incarnation is found, Deephaven holds no row of it yet.
    fn adopt(&self, progress: BTreeMap<i32, Applied>) {
        let mut known = lock(&self.progress);
        self.incarnation.fetch_max(latest_incarnation(&progress), Ordering::AcqRel);
        *known = progress;
    }

    /// The incarnation of the topic that records read now belong to.
    pub fn incarnation(&self) -> i32 {
        self.incarnation.load(Ordering::Acquire)
    }

    /// Looks for a sign that the topic was created anew: one of `partitions`, applied up to some offset in the
    /// current incarnation, no longer holds the record at that offset (`gone`). Then counts one incarnation more,
    /// so every partition resumes from its start, and returns that partition with what was applied to it.
    pub fn find_new_incarnation(
        &self,
        partitions: impl IntoIterator<Item = i32>,
        mut gone: impl FnMut(i32, i64) -> KafkaResult<bool>,
    ) -> Option<(i32, Applied)> {
        let current = self.incarnation();
        // Only a log edited by hand names the largest incarnation there is; none can follow it.
        let next = current.checked_add(1)?;
        let applied: Vec<(i32, Applied)> = {
            let progress = lock(&self.progress);
            partitions
                .into_iter()
                .filter_map(|partition| progress.get(&partition).map(|applied| (partition, *applied)))
                .filter(|(_, applied)| applied.incarnation == current)
                .collect()
        };
        for (partition, applied) in applied {
            match gone(partition, applied.offset) {
                Ok(true) => {
                    let _ = self.incarnation.compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire);
                    return Some((partition, applied));
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(partition, error = %err, "could not look for the last record applied"),
            }
        }
        None
    }

    /// Records that the batch ending at these positions (per partition) was written.
    pub fn wrote(&self, offsets: &BTreeMap<i32, Applied>) {
        let mut progress = lock(&self.progress);
        for (partition, offset) in offsets {
            let known = progress.entry(*partition).or_insert(*offset);
            *known = (*known).max(*offset);
        }
    }

    /// The last position applied per partition as far as this publisher knows now: taken before reading
    /// Deephaven's progress to compare it with ([`Shared::behind`]), since writes and re-reads of the progress go on
    /// meanwhile.
    pub fn known(&self) -> BTreeMap<i32, Applied> {
        lock(&self.progress).clone()
    }

    /// An assigned partition whose progress in Deephaven (`applied`) is behind what this publisher knew to be
    /// applied before reading it (`known`): only possible when the tables were created anew under it (another
    /// publisher found one missing, or a replay on the same prefix), so what it wrote before is not in them.
    pub fn behind(&self, known: &BTreeMap<i32, Applied>, applied: &BTreeMap<i32, Applied>) -> Option<i32> {
        self.assigned().into_iter().find(|partition| match known.get(partition) {
            Some(known) => applied.get(partition).is_none_or(|applied| applied < known),
            None => false,
        })
    }

    /// Partitions are about to be read from somewhere else than where they were.
    pub fn moved(&self) {
        self.moves.fetch_add(1, Ordering::AcqRel);
    }

    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Acquire)
    }

    pub fn assigned(&self) -> BTreeSet<i32> {
        lock(&self.assigned).clone()
    }

    /// Where `partition` resumes: after its last offset applied in the current incarnation, or at the earliest
    /// retained record. Called as the partition is moved there, which [`Shared::start_of`] then tells.
    pub fn resume_offset(&self, partition: i32) -> Offset {
        let incarnation = self.incarnation();
        let progress = lock(&self.progress).get(&partition).copied();
        let resume = match progress.filter(|applied| applied.incarnation == incarnation).and_then(|a| a.next_offset()) {
            Some(next) => Offset::Offset(next),
            None => {
                self.metrics.replays.inc();
                Offset::Beginning
            }
        };
        let mut starts = lock(&self.starts);
        match resume {
            Offset::Offset(offset) => starts.insert(partition, offset),
            _ => starts.remove(&partition),
        };
        resume
    }

    /// Where `partition` was last moved to, if that was a known offset.
    pub fn start_of(&self, partition: i32) -> Option<i64> {
        lock(&self.starts).get(&partition).copied()
    }

    fn refresh_blocking(&self) {
        let Some(sink) = self.sink() else { return };
        let read = tokio::task::block_in_place(|| {
            self.runtime.block_on(tokio::time::timeout(PROGRESS_TIMEOUT, sink.progress()))
        });
        match read {
            Ok(Ok(progress)) => self.adopt(progress),
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
    /// Confirms that a topic was created anew before its partitions are read again from the start.
    pub probe: RecordProbe,
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
                let gone = |partition, offset| self.probe.is_gone(consumer, partition, offset);
                if let Some(found) = self.shared.find_new_incarnation(partitions.iter().copied(), gone) {
                    report_new_incarnation(&self.shared, found);
                }
                for partition in &partitions {
                    let offset = self.shared.resume_offset(*partition);
                    if let Err(err) = assignment.set_partition_offset(&self.topic, *partition, offset) {
                        tracing::error!(partition, error = %err, "could not set the resume offset");
                    }
                }
                tracing::info!(?partitions, "partitions assigned");
                self.shared.moved();
                // Nothing is read from partitions not taken: not ready until a later assignment is.
                let taken = consumer.assign(assignment);
                if let Err(err) = &taken {
                    tracing::error!(error = %err, "could not take the assignment");
                }
                self.shared.health.set_positioned(taken.is_ok());
                self.shared.metrics.assigned_partitions.set(partitions.len() as i64);
                *lock(&self.shared.assigned) = partitions.into_iter().collect();
                self.shared.fetch_gate.assignment_changed(consumer, assignment);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!("partitions revoked");
                self.shared.moved();
                if let Err(err) = consumer.unassign() {
                    tracing::error!(error = %err, "could not drop the assignment");
                }
                lock(&self.shared.assigned).clear();
                self.shared.metrics.assigned_partitions.set(0);
            }
            other => tracing::error!(error = ?other, "rebalance failed"),
        }
    }
}

/// Says that the topic was found created anew, and what made it clear.
pub fn report_new_incarnation(shared: &Shared, (partition, applied): (i32, Applied)) {
    shared.metrics.topic_incarnations.inc();
    tracing::warn!(
        partition,
        applied = applied.offset,
        incarnation = shared.incarnation(),
        "the last record applied to the partition is gone: the topic was created anew; reading it from its start"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(incarnation: i32, offset: i64) -> Applied {
        Applied { incarnation, offset }
    }

    fn shared_with(progress: BTreeMap<i32, Applied>) -> Arc<Shared> {
        let shared = Shared::new(Arc::default(), Arc::default());
        shared.adopt(progress);
        *lock(&shared.assigned) = [0, 1].into();
        shared
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_last_applied_record_gone_starts_a_new_incarnation_that_a_progress_reread_keeps() {
        let shared = shared_with([(0, applied(2, 100)), (1, applied(2, 50))].into());
        assert_eq!(shared.incarnation(), 2, "the latest incarnation Deephaven names");
        assert_eq!(shared.resume_offset(0), Offset::Offset(101));

        assert_eq!(shared.find_new_incarnation([0, 1], |_, _| Ok(false)), None, "every last applied record is there");
        assert_eq!(shared.incarnation(), 2);

        let mut asked = Vec::new();
        let found = shared.find_new_incarnation([0, 1], |partition, offset| {
            asked.push((partition, offset));
            Ok(partition == 0)
        });
        assert_eq!(asked, [(0, 100)], "it looks for the last record applied, and stops at the first one gone");
        assert_eq!(found, Some((0, applied(2, 100))));
        assert_eq!(shared.incarnation(), 3);
        assert_eq!(shared.resume_offset(0), Offset::Beginning, "nothing applied yet in the new incarnation");
        assert_eq!(shared.resume_offset(1), Offset::Beginning, "the whole topic was created anew");

        shared.adopt([(0, applied(2, 100)), (1, applied(2, 50))].into());
        assert_eq!(shared.incarnation(), 3, "progress re-read before anything of incarnation 3 was written");
        assert_eq!(shared.resume_offset(0), Offset::Beginning);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn progress_of_an_older_incarnation_is_not_a_sign_and_not_where_to_resume() {
        let shared = shared_with([(0, applied(1, 100)), (1, applied(0, 900))].into());
        assert_eq!(shared.find_new_incarnation([1], |_, _| Ok(true)), None, "partition 1 has nothing in incarnation 1");
        assert_eq!(shared.resume_offset(1), Offset::Beginning);
        shared.wrote(&[(1, applied(1, 2))].into());
        assert_eq!(shared.resume_offset(1), Offset::Offset(3));
        let applied = [(0, applied(1, 100)), (1, applied(0, 900))].into();
        assert_eq!(shared.behind(&shared.known(), &applied), Some(1), "(0, 900) < (1, 2)");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn deephavens_progress_is_compared_with_what_was_known_before_it_was_read() {
        let shared = shared_with([(0, applied(1, 100)), (1, applied(1, 50))].into());
        let known = shared.known();
        // A write that returned while Deephaven's progress was being read: the progress read may not show it.
        shared.wrote(&[(0, applied(1, 200))].into());
        let read = [(0, applied(1, 100)), (1, applied(1, 50))].into();
        assert_eq!(shared.behind(&known, &read), None, "nothing applied before the read is missing from it");
        assert_eq!(shared.behind(&known, &[(0, applied(1, 100)), (1, applied(1, 49))].into()), Some(1));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn positions_no_record_can_have_replay_the_partition_instead_of_overflowing() {
        // Only a log edited by hand holds them: the largest or a negative offset, the largest incarnation.
        let shared = shared_with([(0, applied(i32::MAX, i64::MAX)), (1, applied(i32::MAX, -5))].into());
        assert_eq!(shared.resume_offset(0), Offset::Beginning, "no offset follows the largest");
        assert_eq!(shared.resume_offset(1), Offset::Beginning, "a negative offset is no position");
        assert_eq!(shared.find_new_incarnation([0, 1], |_, _| Ok(true)), None, "none follows the largest");
        assert_eq!(shared.incarnation(), i32::MAX);
    }
}
