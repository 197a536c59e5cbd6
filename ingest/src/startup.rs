//! Building the application on a port and running it until it is told to stop.
//!
//! [`Application::build`] binds the listener (port 0 picks a free one, which is what tests use), creates the Kafka
//! producer and starts the broker probe, but does not need the broker to be up. [`Application::run_until_stopped`]
//! serves until [`Stopper::stop`] is called, then drains in-flight requests and flushes the producer.

use crate::admission::Admission;
use crate::configuration::Settings;
use crate::connection_deadline::{ConnectionDeadlines, KEEP_ALIVE};
use crate::credential_files::{spawn_reloader, CredentialStore, FollowsFiles};
use crate::metrics::Metrics;
use crate::middleware;
use crate::routes::{alerts, health, metrics};
use crate::sink::AlertSink;
use crate::state::AppState;
use crate::tls::ServedCertificate;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A built, not yet running, ingest server.
pub struct Application {
    server: Server,
    port: u16,
    sink: Arc<AlertSink>,
    probe: JoinHandle<()>,
    /// Re-reads the credential files (the webhook's, Kafka's, the HTTPS certificate).
    credential_reloader: JoinHandle<()>,
    stopper: Stopper,
    flush_timeout: Duration,
}

/// Starts a graceful shutdown of a running [`Application`].
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    shutting_down: Arc<AtomicBool>,
}

impl Stopper {
    /// Stops accepting connections, answers 503 to requests arriving on open ones, waits for in-flight requests
    /// (each ends acknowledged or 503) up to `server.shutdown_timeout`.
    pub async fn stop(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.handle.stop(true).await;
    }
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let server_settings = &settings.server;
        let listener = TcpListener::bind((server_settings.host.as_str(), server_settings.port))
            .with_context(|| format!("binding {}:{}", server_settings.host, server_settings.port))?;
        let port = listener.local_addr()?.port();

        // Registered here, once: `HttpServer::new`'s closure runs once per worker, and each worker must count into
        // the registry `/metrics` renders. The workers reach it through the state.
        let metrics = Arc::new(Metrics::default());
        // A record's delivery may outlive its request by the linger (`kafka.linger`, or the `linger.ms` property that
        // overrides it): librdkafka needs the timeout to exceed it.
        let (_, linger) = settings.kafka.linger_in_effect()?;
        let sink = Arc::new(
            AlertSink::new(&settings.kafka, server_settings.request_timeout + linger, Arc::clone(&metrics))
                .context("creating the Kafka producer")?,
        );
        let probe = Arc::clone(&sink).spawn_probe(settings.kafka.probe_interval);
        let credentials = Arc::new(CredentialStore::load(&settings.auth)?);
        let served_certificate = server_settings.tls.as_ref().map(ServedCertificate::load).transpose()?.map(Arc::new);
        let mut holders: Vec<Arc<dyn FollowsFiles>> = vec![Arc::clone(&credentials) as _, Arc::clone(&sink) as _];
        holders.extend(served_certificate.iter().map(|served| Arc::clone(served) as _));
        let credential_reloader = spawn_reloader(holders, settings.auth.reload_interval, Arc::clone(&metrics));
        let shutting_down = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(AppState {
            credentials,
            limits: settings.limits,
            max_body_bytes: server_settings.max_body_bytes,
            request_timeout: server_settings.request_timeout,
            retry_after: server_settings.retry_after,
            admission: Admission::new(
                server_settings.max_in_flight_bytes,
                server_settings.max_in_flight_records,
                metrics.in_flight_bytes.clone(),
                metrics.in_flight_records.clone(),
            ),
            sink: Arc::clone(&sink),
            metrics: Arc::clone(&metrics),
            shutting_down: Arc::clone(&shutting_down),
        });

        let path = server_settings.path.clone();
        let deadlines =
            ConnectionDeadlines::new(server_settings.request_timeout, metrics.connections_timed_out.clone());
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(middleware::observe))
                .app_data(state.clone())
                .service(web::resource(path.as_str()).route(web::post().to(alerts::receive)))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(metrics::metrics))
        })
        .on_connect(move |connection, data| deadlines.watch(connection, data))
        .keep_alive(KEEP_ALIVE)
        .disable_signals()
        .shutdown_timeout(server_settings.shutdown_timeout.as_secs());
        // HTTP/1.1 only (the workspace builds actix without HTTP/2): an HTTP/2 client can open streams without
        // limit, each with up to 16 MiB of headers, and actix offers no setting to bound either; HTTP/1.1 holds one
        // request head of at most 128 KiB per connection, and connections are capped. A webhook sender gains
        // nothing from multiplexing.
        let workers = server_settings.worker_count();
        // actix counts connections per worker.
        server = server.workers(workers).max_connections((server_settings.max_connections / workers).max(1));
        let server = match &served_certificate {
            Some(served) => server.listen_rustls_0_23(listener, served.server_config()?)?,
            None => server.listen(listener)?,
        }
        .run();
        let stopper = Stopper { handle: server.handle(), shutting_down };
        Ok(Self {
            server,
            port,
            sink,
            probe,
            credential_reloader,
            stopper,
            flush_timeout: server_settings.shutdown_timeout,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Serves until stopped, then flushes what the producer still holds.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("the HTTP server failed")?;
        self.probe.abort();
        self.credential_reloader.abort();
        let sink = self.sink;
        let timeout = self.flush_timeout;
        tokio::task::spawn_blocking(move || sink.flush(timeout)).await?.context("flushing the Kafka producer")?;
        Ok(())
    }
}
