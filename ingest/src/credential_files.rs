//! Credentials that follow their files: a rotated secret takes effect without a restart.
//!
//! Kubernetes updates a mounted secret in place (an atomic swap of the directory it points to), some time after the
//! secret changed; other tools rewrite the file. Either way the files are read again every `auth.reload_interval`
//! and at once on SIGHUP. A set that reads differently replaces the old one whole; a set that cannot be read (a
//! file missing or empty half-way through a rotation) changes nothing and is retried at the next round, so a bad
//! rotation never locks Alertmanager out.

use crate::auth::Credentials;
use crate::configuration::AuthSettings;
use crate::metrics::Metrics;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

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

    /// Reads the files again. `Ok(true)` when the credentials changed (and were replaced).
    fn reload(&self) -> anyhow::Result<bool> {
        let fresh = Credentials::from_settings(&self.settings)?;
        let mut current = self.current.write().expect("credentials lock poisoned");
        if **current == fresh {
            return Ok(false);
        }
        *current = Arc::new(fresh);
        Ok(true)
    }

    /// Re-reads the files every `interval` and on SIGHUP, until the returned task is aborted. It runs even when no
    /// credential comes from a file, so that a SIGHUP never ends the process (its default action).
    pub fn spawn_reloader(self: Arc<Self>, interval: Duration, metrics: Arc<Metrics>) -> JoinHandle<()> {
        let mut hangup = signal(SignalKind::hangup()).expect("installing the SIGHUP handler");
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let trigger = tokio::select! {
                    _ = ticks.tick() => "interval",
                    _ = hangup.recv() => "SIGHUP",
                };
                let store = Arc::clone(&self);
                let outcome = tokio::task::spawn_blocking(move || store.reload())
                    .await
                    .unwrap_or_else(|err| Err(anyhow::anyhow!("the reload task failed: {err}")));
                match outcome {
                    Ok(true) => {
                        metrics.credential_reloads.inc();
                        tracing::info!(trigger, "credential files changed; the new credentials are in effect");
                    }
                    Ok(false) => tracing::debug!(trigger, "credential files unchanged"),
                    Err(error) => {
                        metrics.credential_reload_failures.inc();
                        tracing::warn!(
                            trigger,
                            "credential files could not be read; keeping the current ones: {error:#}"
                        );
                    }
                }
            }
        })
    }
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
        assert!(!store.reload().unwrap(), "unchanged");

        std::fs::write(&file, "second\n").unwrap();
        assert!(store.reload().unwrap(), "changed");
        assert!(accepts(&store, "second") && !accepts(&store, "first"));

        std::fs::write(&file, "  \n").unwrap();
        assert!(store.reload().is_err(), "an empty token is refused");
        std::fs::remove_file(&file).unwrap();
        assert!(store.reload().is_err(), "a missing file is refused");
        assert!(accepts(&store, "second"), "the last good credentials stay in effect");
    }
}
