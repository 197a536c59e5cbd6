//! The dead-letter topic: where records that cannot be decoded go, so they never stall their partition.
//!
//! Each dead letter keeps the original key, value and headers, and adds headers saying why it was set aside and
//! where it came from, so it can be inspected and, once fixed, produced again.

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use schemas::tables::KafkaPosition;
use std::time::Duration;

pub const REASON_HEADER: &str = "alerthaven-dlq-reason";
pub const SOURCE_TOPIC_HEADER: &str = "alerthaven-dlq-source-topic";
pub const SOURCE_PARTITION_HEADER: &str = "alerthaven-dlq-source-partition";
pub const SOURCE_OFFSET_HEADER: &str = "alerthaven-dlq-source-offset";

/// A record that could not be decoded, and why.
pub struct DeadLetter {
    pub message: OwnedMessage,
    pub reason: String,
}

impl DeadLetter {
    /// Where the record was read from.
    pub fn position(&self) -> KafkaPosition {
        KafkaPosition { partition: self.message.partition(), offset: self.message.offset() }
    }
}

pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetters {
    pub fn new(brokers: &str, topic: &str) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("client.id", "alerthaven-publisher-dlq")
            .set("acks", "all")
            .set("linger.ms", "0")
            .create()?;
        Ok(Self { producer, topic: topic.to_owned() })
    }

    /// Produces every dead letter and waits for the broker's acknowledgements.
    pub async fn send(&self, letters: &[DeadLetter]) -> Result<(), KafkaError> {
        for letter in letters {
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
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers);
            if let Some(key) = source.key() {
                record = record.key(key);
            }
            if let Some(payload) = source.payload() {
                record = record.payload(payload);
            }
            self.producer.send(record, Duration::from_secs(30)).await.map_err(|(err, _)| err)?;
        }
        Ok(())
    }
}
