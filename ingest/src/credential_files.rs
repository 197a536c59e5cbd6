//! Secrets that follow their files: a rotated secret takes effect without a restart.
//!
//! Kubernetes updates a mounted secret in place (an atomic swap of the directory it points to), some time after the
//! secret changed; other tools rewrite the file. Either way the files are read again every `auth.reload_interval`
//! and at once on SIGHUP, by each holder of secrets ([`FollowsFiles`]): the webhook credentials
//! ([`CredentialStore`]), the Kafka producer ([`crate::sink::AlertSink`]) and the HTTPS certificate
//! ([`crate::tls::ServedCertificate`]). A set that reads differently replaces
//! the old one whole; a set that cannot be read (a file missing or empty half-way through a rotation) changes
//! nothing and is retried at the next round, and so do Kafka credentials the brokers refuse, so a bad rotation does
//! not lock Alertmanager out or ingest out of Kafka.

use crate::auth::Credentials;
use crate::configuration::AuthSettings;
use crate::metrics::Metrics;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

/// A holder of secrets read from files, which can take rotated ones without a restart.
pub trait FollowsFiles: Send + Sync + 'static {
    /// What the secrets are for, as the log names them.
    fn secrets(&self) -> &'static str;

    /// Reads the files again. `Ok(true)` when they changed and the new secrets are in effect; an error leaves the
    /// ones in effect. Blocking.
    fn read_files_again(&self) -> anyhow::Result<bool>;
}

/// The credentials requests are checked against now.
pub struct CredentialStore {
    current: RwLock<Arc<Credentials>>,
    /// Where they come from, to read them again.
    settings: AuthSettings,
}

impl CredentialStore {
    /// Reads the credentials once; a configuration that cannot be read stops the start-up.
    pub fn load(settings: &AuthSettings) -> anyhow::Result<Self> {
        let current = Credentials::from_settings(settings)?;
        Ok(Self { current: RwLock::new(Arc::new(current)), settings: settings.clone() })
    }

    pub fn current(&self) -> Arc<Credentials> {
        Arc::clone(&self.current.read().expect("credentials lock poisoned"))
    }
}

impl FollowsFiles for CredentialStore {
    fn secrets(&self) -> &'static str {
        "webhook credentials"
    }

    fn read_files_again(&self) -> anyhow::Result<bool> {
        let fresh = Credentials::from_settings(&self.settings)?;
        let mut current = self.current.write().expect("credentials lock poisoned");
        if **current == fresh {
            return Ok(false);
        }
        *current = Arc::new(fresh);
        Ok(true)
    }
}

/// Has every holder read its files again every `interval` and on SIGHUP, until the returned task is aborted. It
/// runs even when no secret comes from a file, so that a SIGHUP never ends the process (its default action).
pub fn spawn_reloader(
    holders: Vec<Arc<dyn FollowsFiles>>,
    interval: Duration,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    let mut hangup = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                _ = ticks.tick() => "interval",
                _ = hangup.recv() => "SIGHUP",
            };
            for holder in &holders {
                let reading = Arc::clone(holder);
                let outcome = tokio::task::spawn_blocking(move || reading.read_files_again())
                    .await
                    .unwrap_or_else(|err| Err(anyhow::anyhow!("the reload task failed: {err}")));
                let secrets = holder.secrets();
                match outcome {
                    Ok(true) => {
                        metrics.credential_reloads.inc();
                        tracing::info!(trigger, secrets, "credential files changed; the new secrets are in effect");
                    }
                    Ok(false) => tracing::debug!(trigger, secrets, "credential files unchanged"),
                    Err(error) => {
                        metrics.credential_reload_failures.inc();
                        tracing::warn!(
                            trigger,
                            secrets,
                            "credential files could not be taken in; keeping the secrets in effect: {error:#}"
                        );
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn accepts(store: &CredentialStore, token: &str) -> bool {
        store.current().check(Some(&HeaderValue::from_str(&format!("Bearer {token}")).unwrap())).is_ok()
    }

    #[test]
    fn a_changed_file_replaces_the_credentials_and_an_unreadable_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").unwrap();
        let settings = AuthSettings { bearer_token_files: vec![file.clone()], ..AuthSettings::default() };
        let store = CredentialStore::load(&settings).unwrap();
        assert!(accepts(&store, "first"));
        assert!(!store.read_files_again().unwrap(), "unchanged");

        std::fs::write(&file, "second\n").unwrap();
        assert!(store.read_files_again().unwrap(), "changed");
        assert!(accepts(&store, "second") && !accepts(&store, "first"));

        std::fs::write(&file, "  \n").unwrap();
        assert!(store.read_files_again().is_err(), "an empty token is refused");
        std::fs::remove_file(&file).unwrap();
        assert!(store.read_files_again().is_err(), "a missing file is refused");
        assert!(accepts(&store, "second"), "the last good credentials stay in effect");
    }
}
