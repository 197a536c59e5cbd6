//! The Kafka side: producing a body's records and knowing whether the broker can take them.
//!
//! [`AlertSink::send_all`] hands a body's records to the producer, and [`Sending::settled`] resolves only when
//! Kafka has acknowledged every one of them (with the configured `acks`, `all` by default), which is what lets the
//! HTTP handler answer 200. The producer's configuration is made in `producer_config`; `probe` holds the background
//! probe behind `/readyz` ([`AlertSink::is_ready`]), which also replaces a producer that broke; `credentials` makes
//! a new producer when the files its secrets come from are rotated.

mod credentials;
mod probe;
mod producer_config;

use crate::configuration::KafkaSettings;
use crate::metrics::Metrics;
use credentials::ProducerSource;
use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode::{MessageBatchTooLarge, MessageSizeTooLarge};
use schemas::{AlertRecord, RecordHeaders};
use service_kit::kafka_client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

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
    /// The record itself is at fault: larger than the producer's `message.max.bytes`, which librdkafka checks per
    /// record as it takes it. Sending it again can never succeed, and it says nothing about the producer's health.
    pub fn is_caused_by_the_record(&self) -> bool {
        matches!(self, SendError::Enqueue(error) if error.rdkafka_error_code() == Some(MessageSizeTooLarge))
    }

    /// The broker refused the batch the record was in for its size (the topic's `max.message.bytes` is below the
    /// producer's `message.max.bytes`). The batch may hold other bodies' records, so no record is known to be at
    /// fault; nor is the producer, which a new one would not change.
    pub fn is_a_batch_too_large_for_the_broker(&self) -> bool {
        matches!(self, SendError::Delivery(error)
            if matches!(error.rdkafka_error_code(), Some(MessageSizeTooLarge | MessageBatchTooLarge)))
    }
}

/// A body's records in the producer's hands, until Kafka has settled each (acknowledged or failed it).
#[must_use = "records are settled only when awaited; dropping this stops watching them, not sending them"]
pub struct Sending {
    deliveries: Vec<DeliveryFuture>,
    /// Why the producer refused a record; the ones after it were not handed over.
    refused: Option<SendError>,
    /// The producer the records were handed to, held until they are settled: dropping it (once replaced) would
    /// purge them.
    producer: Arc<FutureProducer>,
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
            let failure = self.sink.count(failure, &self.producer);
            if outcome.is_ok() {
                outcome = Err(failure);
            }
        }
        outcome
    }
}

/// The producer for the alerts topic, shared by all HTTP workers.
pub struct AlertSink {
    /// Replaced wholesale when the probe finds it broken; senders take a cheap clone.
    producer: RwLock<Arc<FutureProducer>>,
    /// Replaced producers, kept while a sender holds one: [`Sending`] holds the producer its records were handed
    /// to until they are settled, since dropping a producer purges the records it still holds (failing their
    /// requests). Dropping one also joins its threads, so the probe drops each on its own blocking thread: never
    /// under the lock, never on an HTTP worker.
    retired: Mutex<Vec<Arc<FutureProducer>>>,
    /// What a replacement producer is created from: the settings with the credential files as last read.
    source: Mutex<ProducerSource>,
    topic: String,
    /// The last probe's verdict.
    ready: AtomicBool,
    /// Set when a record failed for a reason not its own, its timeout (`message.timeout.ms`, the request timeout plus
    /// the linger) included; the probe replaces the producer if the broker nevertheless answers.
    suspect: AtomicBool,
    /// When the producer was last replaced, to rate-limit replacements.
    replaced_at: Mutex<Instant>,
    metrics: Arc<Metrics>,
}

impl AlertSink {
    /// Creates the producer. Does not contact the broker: ingest starts (not ready) even when the broker is down.
    pub fn new(settings: &KafkaSettings, message_timeout: Duration, metrics: Arc<Metrics>) -> Result<Self, KafkaError> {
        let source = ProducerSource::new(settings, message_timeout);
        let producer = kafka_client::create(&source.config())?;
        Ok(Self {
            producer: RwLock::new(Arc::new(producer)),
            retired: Mutex::new(Vec::new()),
            source: Mutex::new(source),
            topic: settings.topic.clone(),
            ready: AtomicBool::new(false),
            suspect: AtomicBool::new(false),
            replaced_at: Mutex::new(Instant::now()),
            metrics,
        })
    }

    /// Whether the last probe reached the broker and found the topic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn producer(&self) -> Arc<FutureProducer> {
        Arc::clone(&self.producer.read().expect("producer lock poisoned"))
    }

    /// Puts `fresh` in place of the producer: senders get it from now on, and the one it replaces is retired, its
    /// records settling as they would have. Called with the source locked, so that two replacements (the probe's,
    /// a credential rotation's) cannot install out of order.
    fn install_producer(&self, _locked: &MutexGuard<'_, ProducerSource>, fresh: FutureProducer) {
        let old = std::mem::replace(&mut *self.producer.write().expect("producer lock poisoned"), Arc::new(fresh));
        self.retired.lock().expect("lock poisoned").push(old);
        self.metrics.producer_replacements.inc();
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
        let mut sending = Sending {
            deliveries: Vec::with_capacity(records.len()),
            refused: None,
            producer: Arc::clone(&producer),
            sink: Arc::clone(self),
        };
        for (record, value) in records.iter().zip(values) {
            let message = FutureRecord::to(&self.topic).key(record.key()).payload(value).headers(headers.clone());
            match producer.send_result(message) {
                Ok(delivery) => sending.deliveries.push(delivery),
                Err((error, _)) => {
                    sending.refused = Some(self.count(SendError::Enqueue(error), &producer));
                    break;
                }
            }
        }
        sending
    }

    /// Counts a record's failure by its librdkafka error code and, unless the record itself was at fault, makes the
    /// producer suspect if `producer`, the one the record was handed to, is still in use: a replaced one's records
    /// failing late say nothing about its replacement.
    fn count(&self, error: SendError, producer: &Arc<FutureProducer>) -> SendError {
        let code = match &error {
            SendError::Enqueue(error) | SendError::Delivery(error) => {
                error.rdkafka_error_code().map_or_else(|| "Other".to_owned(), |code| format!("{code:?}"))
            }
            SendError::Canceled => "Canceled".to_owned(),
        };
        self.metrics.kafka_error(code);
        let in_use = Arc::ptr_eq(producer, &self.producer.read().expect("producer lock poisoned"));
        if in_use && !error.is_caused_by_the_record() && !error.is_a_batch_too_large_for_the_broker() {
            self.suspect.store(true, Ordering::Relaxed);
        }
        error
    }

    /// Waits up to `timeout` for queued records to be delivered: the current producer's first (a retired one may
    /// be one that stopped getting acknowledgements, and would take the whole time), then the retired ones' with
    /// the time left. The first failure is returned once all were tried. Called once, at shutdown.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = Instant::now() + timeout;
        let retired: Vec<_> = self.retired.lock().expect("lock poisoned").iter().map(Arc::clone).collect();
        let mut outcome = Ok(());
        for producer in [self.producer()].iter().chain(&retired) {
            let flushed = producer.flush(deadline.saturating_duration_since(Instant::now()));
            outcome = outcome.and(flushed);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn only_the_producer_s_size_refusal_is_the_record_s_fault_and_the_broker_s_is_the_batch_s() {
        let produce = |code| KafkaError::MessageProduction(code);
        let refused = SendError::Enqueue(produce(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(refused.is_caused_by_the_record() && !refused.is_a_batch_too_large_for_the_broker());
        for code in [RDKafkaErrorCode::MessageSizeTooLarge, RDKafkaErrorCode::MessageBatchTooLarge] {
            let refused = SendError::Delivery(produce(code));
            assert!(refused.is_a_batch_too_large_for_the_broker() && !refused.is_caused_by_the_record(), "{code:?}");
        }
        for other in [
            SendError::Delivery(produce(RDKafkaErrorCode::MessageTimedOut)),
            SendError::Enqueue(produce(RDKafkaErrorCode::QueueFull)),
            SendError::Canceled,
        ] {
            assert!(!other.is_caused_by_the_record() && !other.is_a_batch_too_large_for_the_broker(), "{other}");
        }
    }
}
