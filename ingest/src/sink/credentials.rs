//! A producer that follows its credential files: a rotated Kafka secret takes effect without a restart.
//!
//! librdkafka reads a client's secrets once, when the client is created: the properties ingest reads from files
//! (`kafka.property_files`, e.g. a SASL password) and the files its `*.location` properties name (client
//! certificates and keys, CAs). When either changes, the sink creates a new producer from what the files say now
//! and puts it in place of the old one, whose records settle as they would have. Files caught half-way through a
//! rotation (one missing, a key that does not match its certificate) change nothing: the producer in use stays,
//! and the next round tries again. So do credentials the brokers refuse (a mistyped password, a certificate from
//! the wrong CA), which are tried on a broker first; when no broker answers, nothing tells them wrong, and they are
//! taken.

use super::producer_config::producer_config;
use super::AlertSink;
use crate::configuration::KafkaSettings;
use crate::credential_files::FollowsFiles;
use anyhow::Context;
use rdkafka::ClientConfig;
use service_kit::kafka_client;
use std::time::Duration;

/// How long the brokers are given to refuse new credentials before the producer in use is replaced.
const CREDENTIALS_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the producer in use was created from.
pub(super) struct ProducerSource {
    /// The settings with the credential files as they read when the producer was created.
    settings: KafkaSettings,
    /// The producer's `message.timeout.ms`, which the settings alone do not say.
    message_timeout: Duration,
    /// What the files named by `*.location` properties held then; `None` when they could not be read, so that
    /// the next round that reads them creates a producer.
    located_files: Option<u64>,
}

impl ProducerSource {
    pub(super) fn new(settings: &KafkaSettings, message_timeout: Duration) -> Self {
        let located_files = settings.properties.located_files_digest().ok();
        Self { settings: settings.clone(), message_timeout, located_files }
    }

    pub(super) fn config(&self) -> ClientConfig {
        producer_config(&self.settings, self.message_timeout)
    }
}

impl FollowsFiles for AlertSink {
    fn secrets(&self) -> &'static str {
        "Kafka credentials"
    }

    /// Replaces the producer with one created from the files when they changed; an error (a file unreadable,
    /// librdkafka or the brokers refusing what they say) leaves the producer in use. The brokers are asked without
    /// the source locked (for the whole check when none answers), so the probe's replacement of a
    /// broken producer never waits for them; only this, run by one task, changes the source.
    fn read_files_again(&self) -> anyhow::Result<bool> {
        let fresh = {
            let source = self.source.lock().expect("lock poisoned");
            let properties = source.settings.properties.with_files_read_again(&source.settings.property_files)?;
            let located_files = properties.located_files_digest()?;
            if properties == source.settings.properties && source.located_files == Some(located_files) {
                return Ok(false);
            }
            let settings = KafkaSettings { properties, ..source.settings.clone() };
            ProducerSource { settings, message_timeout: source.message_timeout, located_files: Some(located_files) }
        };
        let config = fresh.config();
        let producer = kafka_client::create(&config).context("creating a producer with the new credentials")?;
        if let Some(reason) = kafka_client::refused_credentials(&config, CREDENTIALS_CHECK_TIMEOUT)? {
            anyhow::bail!("the brokers refuse the new credentials ({reason}); the producer in use stays");
        }
        let mut source = self.source.lock().expect("lock poisoned");
        *source = fresh;
        self.install_producer(&source, producer);
        Ok(true)
    }
}
