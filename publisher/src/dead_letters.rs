//! The dead-letter topic: where records that cannot be decoded go, so they never stall their partition.
//!
//! Each dead letter keeps the original key, value and headers, and adds headers saying why it was set aside and
//! where it came from, so it can be inspected and, once fixed, produced again. Sending is bounded in time and
//! idempotent, and a failed send says how many letters were delivered before it, so a retry sends only the rest.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
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

    /// Produces `letters` in order, each acknowledged by the broker before the next. On failure, says how many were
    /// delivered before it. A letter too large for the producer once the headers are added goes without its value
    /// (which stays in the source topic, at the partition and offset the headers name), since sending it whole can
    /// never succeed.
    pub async fn send(&self, letters: &[DeadLetter]) -> Result<(), Undelivered> {
        for (delivered, letter) in letters.iter().enumerate() {
            let sent = match self.producer.send(self.record(letter, true), SEND_TIMEOUT).await {
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    tracing::warn!(offset = letter.message.offset(), "dead letter too large: sent without its value");
                    self.producer.send(self.record(letter, false), SEND_TIMEOUT).await
                }
                sent => sent,
            };
            sent.map_err(|(error, _)| Undelivered { delivered, error })?;
        }
        Ok(())
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

/// A send that stopped: the letters before `delivered` reached the broker, the rest did not.
#[derive(Debug, thiserror::Error)]
#[error("sending dead letters failed after {delivered} were delivered: {error}")]
pub struct Undelivered {
    pub delivered: usize,
    pub error: KafkaError,
}

/// How long one letter may take, queueing included.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a consumer property means the same for the producer: the connection and security settings.
fn is_shared_property(name: &str) -> bool {
    ["security.", "ssl.", "sasl.", "client.dns.", "socket."].iter().any(|prefix| name.starts_with(prefix))
}
