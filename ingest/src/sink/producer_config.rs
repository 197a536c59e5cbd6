//! The alerts producer's librdkafka configuration, made from the `kafka` settings.
//!
//! The sink keeps it after creating its producer: the probe creates any replacement from the same configuration.

use crate::configuration::KafkaSettings;
use rdkafka::ClientConfig;
use service_kit::kafka_client::client_config;
use std::time::Duration;

/// Ingest's own choices first, then `kafka.properties`, which take precedence (start-up warns about those that
/// weaken the delivery guarantee, see [`crate::configuration::Settings::weakened_guarantees`]).
pub(super) fn producer_config(settings: &KafkaSettings, message_timeout: Duration) -> ClientConfig {
    let own = |config: &mut ClientConfig| {
        config
            .set("acks", &settings.acks)
            .set("enable.idempotence", settings.enable_idempotence.to_string())
            .set("compression.type", &settings.compression)
            .set("linger.ms", settings.linger.as_millis().to_string())
            .set("message.timeout.ms", message_timeout.as_millis().to_string())
            // A misspelt topic made on the fly would take every alert where no consumer reads: a missing topic
            // keeps ingest unready instead.
            .set("allow.auto.create.topics", "false");
    };
    client_config(&settings.brokers, "alerthaven-ingest", own, settings.properties.iter())
}
