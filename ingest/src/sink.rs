//! The Kafka side: producing a body's records and knowing whether the broker can take them.
//!
//! [`AlertSink::send_all`] resolves only when Kafka has acknowledged every record (with the configured `acks`,
//! `all` by default), which is what lets the HTTP handler answer 200. A background probe asks the broker for the
//! topic's metadata every `probe_interval`; its answer drives `/readyz` and lets requests fail fast with 503 while
//! the broker is away.
//!
//! The probe also replaces a producer that is broken: one librdkafka declared fatally failed, or one whose records
//! stopped being acknowledged while the broker answers metadata requests. The second case is real: an idempotent
//! producer whose broker restarted without its producer state (the local memory broker does this) keeps retrying
//! out-of-sequence batches forever without reporting a fatal error. A fresh producer gets a fresh producer id; the
//! worst case is a duplicate of a record, which consumers collapse by event id. Replacements are rate-limited.

use crate::configuration::KafkaSettings;
use crate::metrics::{KafkaErrorLabels, Metrics};
use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use schemas::{AlertRecord, RecordHeaders};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The shortest time between two replacements of a producer suspected stuck.
const PRODUCER_REPLACEMENT_INTERVAL: Duration = Duration::from_secs(5);

/// Why a body's records were not all acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the producer refused the record: {0}")]
    Enqueue(KafkaError),
    #[error("Kafka did not acknowledge the record: {0}")]
    Delivery(KafkaError),
    #[error("the producer was closed before the record was acknowledged")]
    Canceled,
}

impl SendError {
    /// The record itself is at fault (larger than the producer or the broker takes): sending it again can never
    /// succeed, and it says nothing about the producer's health.
    pub fn is_caused_by_the_record(&self) -> bool {
        use rdkafka::types::RDKafkaErrorCode::{MessageBatchTooLarge, MessageSizeTooLarge};
        match self {
            SendError::Enqueue(error) | SendError::Delivery(error) => {
                matches!(error.rdkafka_error_code(), Some(MessageSizeTooLarge | MessageBatchTooLarge))
            }
            SendError::Canceled => false,
        }
    }
}

/// A body's records in the producer's hands, until Kafka has settled each (acknowledged or failed it).
#[must_use = "records are settled only when awaited; dropping this stops watching them, not sending them"]
pub struct Sending {
    deliveries: Vec<DeliveryFuture>,
    /// Why the producer refused a record; the ones after it were not handed over.
    refused: Option<SendError>,
    sink: Arc<AlertSink>,
}

impl Sending {
    /// Takes the producer's refusal, if it refused a record: the body has failed already, whatever happens to the
    /// records handed over before it.
    pub fn take_refusal(&mut self) -> Option<SendError> {
        self.refused.take()
    }

    /// Waits until Kafka has settled every record handed over; the first failure is the answer.
    pub async fn settled(self) -> Result<(), SendError> {
        let mut outcome = self.refused.map_or(Ok(()), Err);
        for delivery in join_all(self.deliveries).await {
            let failure = match delivery {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => SendError::Delivery(error),
                Err(_canceled) => SendError::Canceled,
            };
            let failure = self.sink.count(failure);
            if outcome.is_ok() {
                outcome = Err(failure);
            }
        }
        outcome
    }
}

/// The producer for the alerts topic, shared by all HTTP workers.
pub struct AlertSink {
    /// Replaced wholesale when librdkafka reports a fatal error; senders take a cheap clone.
    producer: RwLock<Arc<FutureProducer>>,
    /// Replaced producers a sender may still hold. Dropping a producer flushes its queue and joins its threads, so
    /// the probe drops each one on its own blocking thread once nobody else holds it: never under the lock, never
    /// on an HTTP worker.
    retired: Mutex<Vec<Arc<FutureProducer>>>,
    config: ClientConfig,
    topic: String,
    /// The last probe's verdict.
    ready: AtomicBool,
    /// Set when a body's records were not acknowledged in time; the probe replaces the producer if the broker
    /// nevertheless answers.
    suspect: AtomicBool,
    /// When the producer was last replaced, to rate-limit replacements.
    replaced_at: Mutex<Instant>,
    metrics: Arc<Metrics>,
}

impl AlertSink {
    /// Creates the producer. Does not contact the broker: ingest starts (not ready) even when the broker is down.
    pub fn new(settings: &KafkaSettings, message_timeout: Duration, metrics: Arc<Metrics>) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &settings.brokers)
            .set("client.id", "alerthaven-ingest")
            .set("acks", &settings.acks)
            .set("enable.idempotence", settings.enable_idempotence.to_string())
            .set("compression.type", &settings.compression)
            .set("linger.ms", settings.linger.as_millis().to_string())
            .set("message.timeout.ms", message_timeout.as_millis().to_string())
            // A misspelt topic made on the fly would take every alert where no consumer reads: a missing topic
            // keeps ingest unready instead.
            .set("allow.auto.create.topics", "false");
        for (name, value) in settings.properties.iter() {
            config.set(name, value);
        }
        let producer = config.create()?;
        Ok(Self {
            producer: RwLock::new(Arc::new(producer)),
            retired: Mutex::new(Vec::new()),
            config,
            topic: settings.topic.clone(),
            ready: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
            replaced_at: Mutex::new(Instant::now()),
            metrics,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether the last probe reached the broker and found the topic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn producer(&self) -> Arc<FutureProducer> {
        Arc::clone(&self.producer.read().expect("producer lock poisoned"))
    }

    /// Hands every record to the producer (`values` are their encodings, [`AlertRecord::encode_all`]; the producer
    /// copies them). Stops at the first record the producer refuses; the records before it are on their way
    /// regardless, and [`Sending::settled`] waits for them too.
    pub fn send_all(self: &Arc<Self>, records: &[AlertRecord], values: &[Vec<u8>]) -> Sending {
        debug_assert_eq!(records.len(), values.len(), "one value per record");
        let producer = self.producer();
        let headers = RecordHeaders::current()
            .into_iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| headers.insert(Header { key, value: Some(value) }));
        let mut sending =
            Sending { deliveries: Vec::with_capacity(records.len()), refused: None, sink: Arc::clone(self) };
        for (record, value) in records.iter().zip(values) {
            let message = FutureRecord::to(&self.topic).key(record.key()).payload(value).headers(headers.clone());
            match producer.send_result(message) {
                Ok(delivery) => sending.deliveries.push(delivery),
                Err((error, _)) => {
                    sending.refused = Some(self.count(SendError::Enqueue(error)));
                    break;
                }
            }
        }
        sending
    }

    /// Reports that a body's records were not acknowledged before its deadline.
    pub fn report_unacknowledged(&self) {
        self.suspect.store(true, Ordering::Relaxed);
    }

    fn count(&self, error: SendError) -> SendError {
        let code = match &error {
            SendError::Enqueue(error) | SendError::Delivery(error) => {
                error.rdkafka_error_code().map_or_else(|| "Other".to_owned(), |code| format!("{code:?}"))
            }
            SendError::Canceled => "Canceled".to_owned(),
        };
        self.metrics.kafka_errors.get_or_create(&KafkaErrorLabels { code }).inc();
        if !error.is_caused_by_the_record() {
            self.report_unacknowledged();
        }
        error
    }

    /// Waits up to `timeout` for queued records to be delivered. Called once, at shutdown.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer().flush(timeout)
    }

    /// Asks the broker for the topic's metadata. Blocking: run it off the async threads.
    fn probe(&self) -> Result<(), String> {
        self.drop_released_producers();
        let producer = self.producer();
        if let Some(fatal) = producer.client().fatal_error() {
            tracing::warn!(error = ?fatal, "the Kafka producer failed fatally; creating a new one");
            self.replace_producer()?;
            return Err(format!("the producer failed fatally: {fatal:?}"));
        }
        let metadata = producer
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(2))
            .map_err(|err| format!("broker unreachable: {err}"))?;
        let topic = metadata.topics().first().ok_or_else(|| format!("topic {} not in metadata", self.topic))?;
        if let Some(error) = topic.error() {
            return Err(format!("topic {}: {:?}", self.topic, rdkafka::types::RDKafkaErrorCode::from(error)));
        }
        if topic.partitions().is_empty() {
            return Err(format!("topic {} has no partitions", self.topic));
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

    fn replace_producer(&self) -> Result<(), String> {
        let fresh: FutureProducer = self.config.create().map_err(|err| format!("recreating the producer: {err}"))?;
        let old = std::mem::replace(&mut *self.producer.write().expect("producer lock poisoned"), Arc::new(fresh));
        self.retired.lock().expect("lock poisoned").push(old);
        self.metrics.producer_replacements.inc();
        Ok(())
    }

    /// Drops the replaced producers no sender holds any more, here (a blocking thread) rather than wherever the last
    /// clone happens to go.
    fn drop_released_producers(&self) {
        let mut retired = self.retired.lock().expect("lock poisoned");
        let (released, held): (Vec<_>, Vec<_>) =
            std::mem::take(&mut *retired).into_iter().partition(|producer| Arc::strong_count(producer) == 1);
        *retired = held;
        drop(retired);
        drop(released);
    }

    /// Probes the broker every `interval` until the returned task is aborted.
    pub fn spawn_probe(self: Arc<Self>, interval: Duration) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let sink = Arc::clone(&self);
                let verdict = tokio::task::spawn_blocking(move || sink.probe())
                    .await
                    .unwrap_or_else(|err| Err(format!("probe task failed: {err}")));
                let was_ready = self.ready.swap(verdict.is_ok(), Ordering::Relaxed);
                self.metrics.broker_ready.set(i64::from(verdict.is_ok()));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

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

    #[test]
    fn only_size_refusals_are_the_records_fault() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert!(SendError::Enqueue(produce(RDKafkaErrorCode::MessageSizeTooLarge)).is_caused_by_the_record());
        assert!(SendError::Delivery(produce(RDKafkaErrorCode::MessageBatchTooLarge)).is_caused_by_the_record());
        assert!(!SendError::Delivery(produce(RDKafkaErrorCode::MessageTimedOut)).is_caused_by_the_record());
        assert!(!SendError::Enqueue(produce(RDKafkaErrorCode::QueueFull)).is_caused_by_the_record());
        assert!(!SendError::Canceled.is_caused_by_the_record());
    }
}
