//! Building the publisher on its ops port and running it until it is told to stop.
//!
//! [`Application::build`] binds the ops listener (port 0 picks a free one, which is what tests use) and nothing
//! else: Kafka and Deephaven may be down at start-up, and `/readyz` says so. [`Application::run_until_stopped`]
//! serves the ops endpoint and runs the pipeline until `shutdown` turns true; the pipeline then writes the batch in
//! hand before it returns.

use crate::configuration::Settings;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::pipeline::{self, Mode};
use crate::secret_files;
use anyhow::Context;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// A built, not yet running, publisher.
pub struct Application {
    settings: Settings,
    mode: Mode,
    listener: TcpListener,
    port: u16,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Application {
    pub async fn build(settings: Settings, mode: Mode) -> anyhow::Result<Self> {
        let server = &settings.server;
        let listener = TcpListener::bind((server.host.as_str(), server.port))
            .await
            .with_context(|| format!("binding {}:{}", server.host, server.port))?;
        let port = listener.local_addr()?.port();
        Ok(Self { settings, mode, listener, port, metrics: Arc::default(), health: Arc::default() })
    }

    /// The port of `/healthz`, `/readyz` and `/metrics`.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// Fails if the pipeline could not start, or halted for a failure retrying cannot fix (and no rotated secret
    /// released it). A change in the secret files restarts the pipeline with them ([`crate::secret_files`]).
    pub async fn run_until_stopped(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        tracing::info!(port = self.port, "ops endpoint listening");
        let ops = tokio::spawn(crate::ops::serve(self.listener, Arc::clone(&self.metrics), Arc::clone(&self.health)));
        let (mut settings, mut mode) = (self.settings, self.mode);
        // Installed once, for the process's life: a SIGHUP never ends it (its default action), even between runs.
        let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let result = loop {
            // The watcher asks the pipeline to stop (shutdown, or new secrets) and says which; the pipeline is then
            // run to its end, its batch in hand written.
            let (result, rotated) = {
                let (stop, stopped) = watch::channel(false);
                let metrics = Arc::clone(&self.metrics);
                let pipeline = pipeline::run(settings.clone(), &mut mode, metrics, Arc::clone(&self.health), stopped);
                let watching = secret_files::watch(&settings, shutdown.clone(), stop, &mut hangup, &self.metrics);
                tokio::pin!(pipeline, watching);
                let (mut rotated, mut watched) = (None, false);
                let result = loop {
                    tokio::select! {
                        result = &mut pipeline => break result,
                        found = &mut watching, if !watched => (rotated, watched) = (found, true),
                    }
                };
                (result, rotated)
            };
            match rotated {
                Some(rotated) if !*shutdown.borrow() => {
                    if let Err(error) = result {
                        tracing::info!("the pipeline had stopped ({error:#}); starting it again with the new secrets");
                    }
                    self.health.resume();
                    // A replay whose tables were not started over yet is still one (`run` turns it to Follow).
                    settings = rotated;
                }
                _ => break result,
            }
        };
        ops.abort();
        result
    }
}
