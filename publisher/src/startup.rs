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
        let result = loop {
            let (stop, stopped) = watch::channel(false);
            let watching = {
                let (settings, shutdown, metrics) = (settings.clone(), shutdown.clone(), Arc::clone(&self.metrics));
                tokio::spawn(async move {
                    secret_files::watch(&settings, settings.server.reload_interval, shutdown, stop, &metrics).await
                })
            };
            let asked_to_stop = stopped.clone();
            let result =
                pipeline::run(settings.clone(), mode, Arc::clone(&self.metrics), Arc::clone(&self.health), stopped)
                    .await;
            if !*asked_to_stop.borrow() {
                // The pipeline ended by itself (it could not start).
                watching.abort();
                break result;
            }
            match watching.await {
                Ok(Some(rotated)) => {
                    if let Err(error) = result {
                        tracing::info!("the pipeline had stopped ({error:#}); starting it again with the new secrets");
                    }
                    self.health.resume();
                    // A replay, once started, is carried on like any restart: from the progress in Deephaven.
                    (settings, mode) = (rotated, Mode::Follow);
                }
                _ => break result,
            }
        };
        ops.abort();
        result
    }
}
