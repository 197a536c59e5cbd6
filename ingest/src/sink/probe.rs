//! The broker probe behind `/readyz`, and the replacement of a producer that broke.
//!
//! A background task asks the broker for the topic's metadata every `probe_interval`; its answer drives `/readyz`
//! and lets requests fail fast with 503 while the broker is away.
//!
//! The probe also replaces a producer that is broken: one librdkafka declared fatally failed, or one whose records
//! stopped being acknowledged while the broker answers metadata requests. The second case is real: an idempotent
//! producer whose broker restarted without its producer state (the local memory broker does this) keeps retrying
//! out-of-sequence batches forever without reporting a fatal error. A fresh producer gets a fresh producer id; the
//! worst case is a duplicate of a record, which consumers collapse by event id. Replacements are rate-limited.

use super::AlertSink;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use service_kit::kafka_client;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::{JoinError, JoinHandle};

/// The shortest time between two replacements of a producer suspected stuck.
const PRODUCER_REPLACEMENT_INTERVAL: Duration = Duration::from_secs(5);

/// How long a metadata request may take before the broker counts as unreachable.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a probe found ingest unable to produce: each keeps `/readyz` at 503 until a later probe succeeds.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// librdkafka declared the producer failed for good; a new one replaces it for the next probe to try.
    #[error("the producer failed fatally: {code:?}: {reason}")]
    ProducerFailed { code: RDKafkaErrorCode, reason: String },
    /// The metadata request failed or timed out: no broker answered it.
    #[error("broker unreachable: {0}")]
    BrokerUnreachable(KafkaError),
    /// The broker answered without the topic asked for.
    #[error("topic {topic} not in metadata")]
    TopicNotInMetadata { topic: String },
    /// The broker answered for the topic with an error, e.g. `UnknownTopicOrPartition` when it does not exist
    /// (the producer does not create topics).
    #[error("topic {topic}: {code:?}")]
    TopicUnavailable { topic: String, code: RDKafkaErrorCode },
    #[error("topic {topic} has no partitions")]
    NoPartitions { topic: String },
    /// librdkafka did not create a producer to replace a broken one, from the configuration the current one came
    /// from.
    #[error("recreating the producer: {0}")]
    ProducerNotRecreated(KafkaError),
    /// The blocking task running the probe panicked.
    #[error("probe task failed: {0}")]
    TaskFailed(JoinError),
}

impl AlertSink {
    /// Probes the broker every `interval` until the returned task is aborted.
    pub fn spawn_probe(self: Arc<Self>, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let sink = Arc::clone(&self);
                let verdict = tokio::task::spawn_blocking(move || sink.probe())
                    .await
                    .unwrap_or_else(|err| Err(ProbeError::TaskFailed(err)));
                let was_ready = self.ready.swap(verdict.is_ok(), Ordering::Relaxed);
                self.metrics.broker_ready.set(i64::from(verdict.is_ok()));
                self.metrics.broker_probes.inc();
                if verdict.is_err() {
                    self.metrics.broker_probe_failures.inc();
                }
                match verdict {
                    Ok(()) if !was_ready => tracing::info!(topic = %self.topic, "Kafka is reachable; ready"),
                    Err(reason) if was_ready => tracing::warn!(%reason, "Kafka is not reachable; not ready"),
                    Err(reason) => tracing::debug!(%reason, "Kafka is still not reachable"),
                    Ok(()) => {}
                }
                tokio::time::sleep(interval).await;
            }
        })
    }

    /// Asks the broker for the topic's metadata, replacing the producer first if it failed fatally, or after if it
    /// is suspect though the broker answers. Blocking: run it off the async threads.
    fn probe(&self) -> Result<(), ProbeError> {
        self.drop_released_producers();
        let producer = self.producer();
        if let Some((code, reason)) = producer.client().fatal_error() {
            tracing::warn!(error = ?(code, &reason), "the Kafka producer failed fatally; creating a new one");
            self.replace_producer()?;
            return Err(ProbeError::ProducerFailed { code, reason });
        }
        let metadata = producer
            .client()
            .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
            .map_err(ProbeError::BrokerUnreachable)?;
        let topic =
            metadata.topics().first().ok_or_else(|| ProbeError::TopicNotInMetadata { topic: self.topic.clone() })?;
        if let Some(error) = topic.error() {
            return Err(ProbeError::TopicUnavailable { topic: self.topic.clone(), code: error.into() });
        }
        if topic.partitions().is_empty() {
            return Err(ProbeError::NoPartitions { topic: self.topic.clone() });
        }
        let mut replaced_at = self.replaced_at.lock().expect("lock poisoned");
        if replaced_at.elapsed() >= PRODUCER_REPLACEMENT_INTERVAL && self.suspect.swap(false, Ordering::Relaxed) {
            tracing::warn!("records went unacknowledged while the broker answers; creating a new producer");
            *replaced_at = Instant::now();
            drop(replaced_at);
            self.replace_producer()?;
        }
        Ok(())
    }

    fn replace_producer(&self) -> Result<(), ProbeError> {
        let source = self.source.lock().expect("lock poisoned");
        let fresh: FutureProducer = kafka_client::create(&source.config()).map_err(ProbeError::ProducerNotRecreated)?;
        self.install_producer(&source, fresh);
        Ok(())
    }

    /// Drops the replaced producers no sender holds any more (nor any record still to settle), here (a blocking
    /// thread) rather than wherever the last clone happens to go.
    fn drop_released_producers(&self) {
        let mut retired = self.retired.lock().expect("lock poisoned");
        let (released, held): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *retired).into_iter().partition(|producer| Arc::strong_count(producer) == 1);
        *retired = held;
        drop(retired);
        drop(released);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::KafkaSettings;
    use crate::metrics::Metrics;
    use crate::sink::{SendError, Sending};
    use schemas::{AlertRecord, Limits, Timestamp};

    #[test]
    fn a_replaced_producer_is_dropped_by_the_probe_once_no_sender_holds_it() {
        let settings = KafkaSettings { brokers: "127.0.0.1:1".to_owned(), ..KafkaSettings::default() };
        let sink = AlertSink::new(&settings, Duration::from_secs(1), Arc::new(Metrics::default())).unwrap();
        let held_by_a_sender = sink.producer();
        sink.replace_producer().unwrap();
        assert!(!Arc::ptr_eq(&sink.producer(), &held_by_a_sender), "senders now get the new producer");
        let retired = || sink.retired.lock().unwrap().len();
        assert_eq!(retired(), 1, "the replaced producer waits for its last sender, not dropped under the lock");
        sink.drop_released_producers();
        assert_eq!(retired(), 1, "still held");
        drop(held_by_a_sender);
        assert_eq!(retired(), 1, "the sender's drop is not the last one");
        sink.drop_released_producers();
        assert_eq!(retired(), 0, "dropped by the probe");
    }

    /// A sink whose producer has no broker, and a captured webhook's records handed to it: they time out after 1 s.
    fn records_no_broker_acknowledges() -> (Arc<AlertSink>, Sending) {
        let settings = KafkaSettings { brokers: "127.0.0.1:1".to_owned(), ..KafkaSettings::default() };
        let sink = Arc::new(AlertSink::new(&settings, Duration::from_secs(1), Arc::new(Metrics::default())).unwrap());
        let body = test_kit::fixtures::captured_webhooks()[1].body.clone();
        let records = AlertRecord::from_webhook(schemas::parse(&body, &Limits::default()).unwrap(), Timestamp::now());
        let values: Vec<Vec<u8>> = records.iter().map(AlertRecord::encode).collect();
        let sending = sink.send_all(&records, &values);
        (sink, sending)
    }

    #[tokio::test]
    async fn a_replaced_producer_is_kept_until_the_records_handed_to_it_are_settled() {
        let (sink, sending) = records_no_broker_acknowledges();
        sink.replace_producer().unwrap();
        let retired = || sink.retired.lock().unwrap().len();
        sink.drop_released_producers();
        assert_eq!(retired(), 1, "dropping it would purge the records their request waits for");

        let error = sending.settled().await.unwrap_err();
        assert!(
            matches!(&error, SendError::Delivery(kafka) if kafka.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut)),
            "failed by their timeout, not purged: {error}"
        );
        assert!(!sink.suspect.load(Ordering::Relaxed), "a replaced producer's failures leave the new one alone");
        sink.drop_released_producers();
        assert_eq!(retired(), 0, "dropped once its records are settled");
    }

    #[tokio::test]
    async fn records_of_the_producer_in_use_that_time_out_make_it_suspect() {
        let (sink, sending) = records_no_broker_acknowledges();
        assert!(sending.settled().await.is_err(), "no broker acknowledges them");
        assert!(sink.suspect.load(Ordering::Relaxed), "the probe replaces it once a broker answers");
    }
}
