//! The dead-letter topic: where records that cannot be decoded go, so they never stall their partition.
//!
//! Each dead letter keeps the original key, value and headers, and adds headers saying why it was set aside and
//! where it came from, so it can be inspected and, once fixed, produced again. Sending is bounded in time and
//! idempotent, and a failed send says which letters were not delivered, so a retry sends only those.

use futures::channel::oneshot::Canceled;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use schemas::tables::KafkaPosition;
use service_kit::kafka_client::{self, client_config};
use service_kit::kafka_properties::KafkaProperties;
use std::time::Duration;

pub const REASON_HEADER: &str = "alerthaven-dlq-reason";
pub const SOURCE_TOPIC_HEADER: &str = "alerthaven-dlq-source-topic";
pub const SOURCE_PARTITION_HEADER: &str = "alerthaven-dlq-source-partition";
pub const SOURCE_OFFSET_HEADER: &str = "alerthaven-dlq-source-offset";
/// Present on a letter sent without the original value, which was too large once the headers were added.
pub const VALUE_OMITTED_HEADER: &str = "alerthaven-dlq-value-omitted";

/// A record that could not be decoded, and why.
#[derive(Debug)]
pub struct DeadLetter {
    pub message: OwnedMessage,
    /// Where it was read from, the topic's incarnation included (which the message alone does not tell).
    pub position: KafkaPosition,
    pub reason: String,
}

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetters {
    /// `properties` are the consumer's extra librdkafka properties (security settings, say) that apply to a
    /// producer too.
    pub fn new(brokers: &str, topic: &str, properties: &KafkaProperties) -> Result<Self, KafkaError> {
        let own = |config: &mut ClientConfig| {
            config
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "0")
                // A missing dead-letter topic is the operator's to create, with the retention they choose: one made
                // on the fly gets the broker's defaults. Until it exists, sends fail, `/readyz` says so, and they
                // retry.
                .set("allow.auto.create.topics", "false")
                // A letter the broker cannot take in this time fails, and the batch is retried, instead of waiting.
                .set("message.timeout.ms", SEND_TIMEOUT.as_millis().to_string());
        };
        let shared = properties.iter().filter(|(name, _)| is_shared_property(name));
        let config = client_config(brokers, "alerthaven-publisher-dlq", own, shared);
        Ok(Self { producer: kafka_client::create(&config)?, topic: topic.to_owned() })
    }

    /// Produces `letters` all at once (the idempotent producer keeps their order, and batches them) and waits until
    /// the broker has acknowledged or refused each, so a batch of letters takes a few round trips, not one per
    /// letter. On failure, returns the letters not delivered, to be sent again, and none that were. A letter too
    /// large once the headers are added goes without its value (which stays in the source topic, at the partition
    /// and offset the headers name), since sending it whole can never succeed: too large for the producer, or for
    /// the broker when sent alone (the broker judges a whole batch, which may have held letters that each fit).
    pub async fn send<'a>(&self, letters: &[&'a DeadLetter]) -> Result<(), Undelivered<'a>> {
        let enqueued: Vec<_> = letters.iter().map(|letter| self.enqueue(letter, true)).collect();
        let (mut undelivered, mut first_error) = (Vec::new(), None);
        for (letter, delivery) in letters.iter().zip(enqueued) {
            let delivered = match delivery {
                Ok(delivery) => match settled(delivery.await) {
                    Err(error) if is_too_large(&error) => self.deliver_alone(letter, true).await,
                    delivered => delivered,
                },
                Err(error) => Err(error),
            };
            let delivered = match delivered {
                Err(error) if is_too_large(&error) => self.deliver_alone(letter, false).await,
                delivered => delivered,
            };
            if let Err(error) = delivered {
                undelivered.push(*letter);
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            None => Ok(()),
            Some(error) => Err(Undelivered { letters: undelivered, error }),
        }
    }

    /// Sends `letter` again and waits for its outcome before the next letter is looked at: no more letters are
    /// handed over meanwhile, so it shares a batch with none sent after it.
    async fn deliver_alone(&self, letter: &DeadLetter, with_value: bool) -> Result<(), KafkaError> {
        settled(self.enqueue(letter, with_value)?.await)
    }

    /// Hands `letter` to the producer (its value left out unless `with_value`).
    fn enqueue(&self, letter: &DeadLetter, with_value: bool) -> Result<DeliveryFuture, KafkaError> {
        if !with_value {
            tracing::warn!(offset = letter.message.offset(), "dead letter too large: sent without its value");
        }
        self.producer.send_result(self.record(letter, with_value)).map_err(|(error, _)| error)
    }

    fn record<'a>(&'a self, letter: &'a DeadLetter, with_value: bool) -> FutureRecord<'a, [u8], [u8]> {
        let source = &letter.message;
        let mut headers = source.headers().map_or_else(OwnedHeaders::new, |headers| {
            headers.iter().fold(OwnedHeaders::new(), |all, header| all.insert(header))
        });
        let (partition, offset) = (source.partition().to_string(), source.offset().to_string());
        for (key, value) in [
            (REASON_HEADER, letter.reason.as_str()),
            (SOURCE_TOPIC_HEADER, source.topic()),
            (SOURCE_PARTITION_HEADER, partition.as_str()),
            (SOURCE_OFFSET_HEADER, offset.as_str()),
        ] {
            headers = headers.insert(Header { key, value: Some(value) });
        }
        if !with_value {
            headers = headers.insert(Header { key: VALUE_OMITTED_HEADER, value: Some("too large") });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
        if let Some(key) = source.key() {
            record = record.key(key);
        }
        match source.payload() {
            Some(payload) if with_value => record.payload(payload),
            _ => record,
        }
    }
}

/// The letters of a send that did not reach the broker, and the first error.
#[derive(Debug, thiserror::Error)]
#[error("{} dead letters were not delivered: {error}", letters.len())]
pub struct Undelivered<'a> {
    pub letters: Vec<&'a DeadLetter>,
    pub error: KafkaError,
}

/// What a delivery future's outcome says of the letter: delivered, or why not.
fn settled(outcome: Result<OwnedDeliveryResult, Canceled>) -> Result<(), KafkaError> {
    match outcome {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(error),
        Err(Canceled) => Err(KafkaError::Canceled),
    }
}

/// Whether the producer (locally) or the broker refused a letter, or the batch it was in, for its size.
fn is_too_large(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

/// How long one letter may take, queueing included.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a consumer property means the same for the producer: the connection and security settings.
fn is_shared_property(name: &str) -> bool {
    ["security.", "ssl.", "sasl.", "client.dns.", "socket."].iter().any(|prefix| name.starts_with(prefix))
}
