//! Fetching stops while every broker is down, and resumes only once the topic is back.
//!
//! A broker that restarts without durable storage comes back without the topic for a moment. Fetching from it
//! then is worse than useless: the local broker (Tansu 0.6.0) answers fetches for the missing topic with a zero topic
//! id and a leader hint, and librdkafka 2.12 dereferences the missing name while handling that answer and crashes the
//! process. So on losing every broker the assigned partitions are paused, and an idle publisher resumes them once
//! the broker is back and its metadata lists the topic with partitions. A new assignment starts unpaused, which is
//! safe: the group can only assign partitions of a topic that exists.
//!
//! Upstream, Tansu drops that leader hint in nisshi-io/nisshi#826 (Tansu's repository renamed); no librdkafka issue
//! was found. The pause can go when the Tansu that `scripts/install-broker.sh` pins carries #826.

use crate::health::Health;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the idle check waits for the topic's metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the assigned partitions are paused for a broker outage.
#[derive(Debug, Default)]
pub struct FetchGate {
    paused: AtomicBool,
}

impl FetchGate {
    /// Every broker is gone: pause the assigned partitions (once).
    pub fn close<C: ConsumerContext>(&self, consumer: &impl Consumer<C>) {
        if self.paused.swap(true, Ordering::AcqRel) {
            return;
        }
        match consumer.assignment().and_then(|assignment| consumer.pause(&assignment)) {
            Ok(()) => tracing::info!("every broker is down: fetching paused until the topic is back"),
            Err(err) => tracing::warn!(error = %err, "could not pause fetching"),
        }
    }

    /// Resumes the paused partitions once a broker answers and lists `topic` with partitions.
    pub fn reopen_if_topic_is_back<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        topic: &str,
        health: &Health,
    ) {
        if !self.paused.load(Ordering::Acquire) || health.kafka_brokers_up() == 0 {
            return;
        }
        let listed = tokio::task::block_in_place(|| consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT));
        let back = listed.is_ok_and(|metadata| {
            metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        });
        if !back {
            return;
        }
        match consumer.assignment().and_then(|assignment| consumer.resume(&assignment)) {
            Ok(()) => {
                self.paused.store(false, Ordering::Release);
                tracing::info!("the topic is back: fetching resumed");
            }
            Err(err) => tracing::warn!(error = %err, "could not resume fetching"),
        }
    }

    /// A new assignment is unpaused. librdkafka keeps a partition's pause across an unassign and a new assign
    /// (seen: a broker restarted empty revoked and re-assigned the paused partitions, which then fetched nothing),
    /// so the assignment is resumed explicitly.
    pub fn assignment_changed<C: ConsumerContext>(&self, consumer: &impl Consumer<C>, assignment: &TopicPartitionList) {
        if let Err(err) = consumer.resume(assignment) {
            tracing::warn!(error = %err, "could not resume the new assignment");
        }
        self.paused.store(false, Ordering::Release);
    }
}
