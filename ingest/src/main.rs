//! The `ingest` binary: settings, logging, the server, and a graceful stop on SIGTERM or Ctrl-C.

use clap::Parser;
use ingest::configuration::{Overrides, Settings, REFERENCE};
use ingest::startup::Application;
use service_kit::{exit, telemetry};
use std::path::PathBuf;
use std::process::ExitCode;

/// Receives Alertmanager webhooks and writes one Kafka record per alert, answering 200 only once Kafka has
/// acknowledged every record of the body.
#[derive(Parser, Debug)]
#[command(version, after_help = REFERENCE)]
struct Cli {
    /// A TOML settings file (see SETTINGS below).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on (server.host).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (server.port).
    #[arg(long)]
    port: Option<u16>,
    /// Kafka bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Kafka topic (kafka.topic).
    #[arg(long)]
    topic: Option<String>,
    /// Log format (log.format).
    #[arg(long, value_parser = ["text", "json"])]
    log_format: Option<String>,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        host: cli.host,
        port: cli.port,
        brokers: cli.brokers,
        topic: cli.topic,
        log_format: cli.log_format,
    };
    let settings = match exit::settings_or_usage_error("ingest", Settings::load(cli.config.as_deref(), overrides)) {
        Ok(settings) => settings,
        Err(usage_error) => return usage_error,
    };
    telemetry::init(&settings.log);
    for warning in settings.weakened_guarantees() {
        tracing::warn!(setting = warning.setting, "{}", warning.consequence);
    }
    exit::exit_code("ingest", run(settings).await)
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(&settings).await?;
    tracing::info!(
        port = application.port(),
        path = %settings.server.path,
        topic = %settings.kafka.topic,
        tls = settings.server.tls.is_some(),
        "ingest listening"
    );
    let stopper = application.stopper();
    tokio::spawn(async move {
        service_kit::shutdown::signal().await;
        tracing::info!("shutting down: draining in-flight requests");
        stopper.stop().await;
    });
    application.run_until_stopped().await?;
    tracing::info!("ingest stopped");
    Ok(())
}
