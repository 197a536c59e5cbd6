//! Secrets that follow their files: a rotated Kafka or Deephaven secret restarts the pipeline with it.
//!
//! librdkafka reads a client's secrets once, when the client is created (and the consumer cannot be replaced
//! without leaving its group), and a Deephaven session is opened with the PSK or password of the moment. So every
//! `server.reload_interval`, and at once on SIGHUP, the files are read again; when they say something new, the
//! pipeline is stopped as on SIGTERM (the batch in hand written) and started again with them, resuming from the
//! progress in Deephaven like any restart. A publisher halted for refused credentials is released the same way. A
//! file that cannot be read, or Kafka secrets librdkafka refuses (a rotation caught half-way: a key that is not the
//! certificate's) or the brokers refuse, change nothing and are read again next round.

use crate::configuration::Settings;
use crate::metrics::Metrics;
use service_kit::kafka_client::{self, client_config};
use std::time::Duration;
use tokio::signal::unix::Signal;
use tokio::sync::watch;

/// Reads the secret files of `settings` again every `server.reload_interval` and on SIGHUP (`hangup`), until they
/// change or `shutdown` turns true; either way it sets `stop` for the pipeline. Returns the settings with the new
/// secrets, or `None` at shutdown.
pub async fn watch(
    settings: &Settings,
    mut shutdown: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    hangup: &mut Signal,
    metrics: &Metrics,
) -> Option<Settings> {
    let current = settings.secrets_digest().ok();
    let mut ticks = tokio::time::interval(settings.server.reload_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        let trigger = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => {
                let _ = stop.send(true);
                return None;
            }
            _ = ticks.tick() => "interval",
            _ = hangup.recv() => "SIGHUP",
        };
        let reading = settings.clone();
        let read = tokio::task::spawn_blocking(move || {
            let again = reading.with_secret_files_read_again()?;
            let digest = again.secrets_digest()?;
            if Some(digest) != current {
                usable_by_kafka(&again)?;
            }
            Ok::<_, anyhow::Error>((again, digest))
        })
        .await
        .unwrap_or_else(|err| Err(anyhow::anyhow!("the reading task failed: {err}")));
        match read {
            Ok((again, digest)) if Some(digest) != current => {
                metrics.secret_reloads.inc();
                tracing::info!(trigger, "secret files changed: restarting the pipeline with the new secrets");
                let _ = stop.send(true);
                return Some(again);
            }
            Ok(_) => tracing::debug!(trigger, "secret files unchanged"),
            Err(error) => {
                metrics.secret_reload_failures.inc();
                tracing::warn!(trigger, "secret files could not be read; keeping the secrets in use: {error:#}");
            }
        }
    }
}

/// Whether the Kafka secrets as they read now would work: librdkafka checks them when a client is created (a key
/// that is not its certificate's, a PEM it cannot parse), and the brokers when it connects (a certificate from a CA
/// they do not trust, a mistyped password), so a throwaway client tries them. The pipeline is not stopped for
/// secrets it could not start again with, as a rotation caught half-way shows.
fn usable_by_kafka(settings: &Settings) -> anyhow::Result<()> {
    let kafka = &settings.kafka;
    let config = client_config(&kafka.brokers, "alerthaven-publisher-check", |_| {}, kafka.properties.iter());
    match kafka_client::refused_credentials(&config, CREDENTIALS_CHECK_TIMEOUT)
        .map_err(|error| anyhow::anyhow!("the Kafka client refuses the new secrets: {error}"))?
    {
        Some(reason) => anyhow::bail!("the brokers refuse the new secrets: {reason}"),
        None => Ok(()),
    }
}

/// How long the brokers are given to refuse new secrets before the pipeline is restarted with them.
const CREDENTIALS_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
