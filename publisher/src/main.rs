//! The `publisher` binary: settings, logging, the ops endpoint, the pipeline, and a clean stop on SIGTERM.

use clap::{Parser, Subcommand};
use publisher::configuration::{Overrides, Settings, REFERENCE};
use publisher::pipeline::Mode;
use publisher::startup::Application;
use service_kit::{exit, telemetry};
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::watch;

/// Consumes alert records from Kafka and keeps the Deephaven tables `alerts`, `alert_events`, `alerts_firing`,
/// `publisher_offsets` and the analytics derived from them (docs/tables.md) up to date, resuming from the progress
/// stored in Deephaven.
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

fn main() -> ExitCode {
    // Before the runtime's threads exist: the replay's memory goal depends on it (docs/benchmarks.md).
    service_kit::allocator::return_large_blocks_when_freed();
    let cli = Cli::parse();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => {
            eprintln!("publisher: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    let overrides = Overrides {
        brokers: cli.brokers,
        topic: cli.topic,
        deephaven_url: cli.deephaven_url,
        table_prefix: cli.table_prefix,
        group_id: cli.group_id,
        port: cli.port,
    };
    let settings = match exit::settings_or_usage_error("publisher", Settings::load(cli.config.as_deref(), overrides)) {
        Ok(settings) => settings,
        Err(usage_error) => return usage_error,
    };
    telemetry::init(&settings.log);
    let mode = match cli.command {
        Some(Command::Replay) => Mode::Replay,
        Some(Command::Run) | None => Mode::Follow,
    };
    let application = match Application::build(settings, mode).await {
        Ok(application) => application,
        Err(err) => {
            tracing::error!("publisher failed to start: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        service_kit::shutdown::signal().await;
        tracing::info!("shutting down: writing the batch in hand");
        let _ = stop.send(true);
    });
    exit::exit_code("publisher", application.run_until_stopped(stopped).await)
}
