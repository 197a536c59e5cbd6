//! The `publisher` binary: settings, logging, the ops endpoint, the pipeline, and a clean stop on SIGTERM.

use clap::{Parser, Subcommand};
use publisher::configuration::{Overrides, Settings, REFERENCE};
use publisher::metrics::Metrics;
use publisher::pipeline::{self, Mode};
use service_kit::telemetry;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// Consumes alert records from Kafka and keeps the Deephaven tables `alerts`, `alert_events` and `alerts_firing`
/// up to date, resuming from the progress stored in Deephaven.
#[derive(Parser, Debug)]
#[command(version, after_help = REFERENCE)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A TOML settings file (see SETTINGS below).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long, global = true)]
    brokers: Option<String>,
    /// The alerts topic (kafka.topic).
    #[arg(long, global = true)]
    topic: Option<String>,
    /// The consumer group (kafka.group_id).
    #[arg(long, global = true)]
    group_id: Option<String>,
    /// Deephaven's URL (deephaven.url).
    #[arg(long, global = true)]
    deephaven_url: Option<String>,
    /// Prefix for the table names (deephaven.table_prefix).
    #[arg(long, global = true)]
    table_prefix: Option<String>,
    /// Port of /healthz, /readyz and /metrics (server.port).
    #[arg(long, global = true)]
    port: Option<u16>,
}

#[derive(Subcommand, Debug, Clone, Copy)]
enum Command {
    /// Follow the topic, resuming from the progress stored in Deephaven (the default).
    Run,
    /// Replace the tables with empty ones and rebuild them from the earliest retained record, then keep following.
    /// Stop the live publisher first, or give a --table-prefix (and --group-id) to rebuild beside the live tables.
    Replay,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        brokers: cli.brokers,
        topic: cli.topic,
        deephaven_url: cli.deephaven_url,
        table_prefix: cli.table_prefix,
        group_id: cli.group_id,
        port: cli.port,
    };
    let settings = match Settings::load(cli.config.as_deref(), overrides) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("publisher: {err:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let mode = match cli.command {
        Some(Command::Replay) => Mode::Replay,
        Some(Command::Run) | None => Mode::Follow,
    };
    match run(settings, mode).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("publisher failed: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, mode: Mode) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind((settings.server.host.as_str(), settings.server.port)).await?;
    tracing::info!(address = %listener.local_addr()?, "ops endpoint listening");
    let ops = tokio::spawn(publisher::ops::serve(listener, Arc::clone(&metrics)));

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        service_kit::shutdown::signal().await;
        tracing::info!("shutting down: writing the batch in hand");
        let _ = stop.send(true);
    });
    let result = pipeline::run(settings, mode, metrics, stopped).await;
    ops.abort();
    result
}
