//! The whole pipeline on the real local stack: Prometheus fires and resolves alerts, Alertmanager sends them to
//! ingest, ingest writes them to the broker, the publisher writes them to Deephaven. The `alerts` table must show
//! the alerts Alertmanager reports, and an alert that resolved must show as resolved.

use arrow::array::AsArray;
use deephaven_client::{Client, ClientConfig};
use e2e::kafka::{create_topic, unique_name};
use e2e::stack::Stack;
use e2e::wait;
use publisher::pipeline::Mode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Fingerprint -> status, as Alertmanager reports its active alerts.
async fn alertmanager_alerts(url: &str) -> Result<BTreeMap<String, String>, String> {
    let alerts: serde_json::Value =
        reqwest::get(format!("{url}/api/v2/alerts?active=true&silenced=false&inhibited=false"))
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
    Ok(alerts
        .as_array()
        .ok_or("not a list")?
        .iter()
        .map(|alert| (alert["fingerprint"].as_str().unwrap_or_default().to_owned(), "firing".to_owned()))
        .collect())
}

/// Fingerprint -> status, as the Deephaven `alerts` table holds them.
async fn deephaven_alerts(client: &Client, table: &str) -> BTreeMap<String, String> {
    let mut alerts = BTreeMap::new();
    if !client.scope_table_exists(table).await.unwrap_or(false) {
        return alerts;
    }
    for batch in client.snapshot(table).await.unwrap_or_default() {
        let fingerprints = batch.column_by_name("Fingerprint").unwrap().as_string::<i32>().clone();
        let statuses = batch.column_by_name("Status").unwrap().as_string::<i32>().clone();
        for row in 0..batch.num_rows() {
            alerts.insert(fingerprints.value(row).to_owned(), statuses.value(row).to_owned());
        }
    }
    alerts
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_alerts_reach_deephaven_firing_and_resolved() {
    let stack = Stack::from_env();
    let topic = create_topic(&stack.kafka_brokers, "e2e-alerts", 6).await;
    let dlq_topic = create_topic(&stack.kafka_brokers, "e2e-dlq", 1).await;

    // ingest where the stack's Alertmanager sends its webhooks.
    let mut ingest_settings = ingest::configuration::Settings::default();
    ingest_settings.server.port = stack.ingest_port;
    ingest_settings.kafka.brokers = stack.kafka_brokers.clone();
    ingest_settings.kafka.topic = topic.clone();
    let ingest =
        ingest::startup::Application::build(&ingest_settings).await.expect("ingest starts on the stack's port");
    tokio::spawn(ingest.run_until_stopped());

    let prefix = format!("e2e{}_", unique_name("").replace('-', "_").trim_start_matches('_'));
    let mut publisher_settings = publisher::configuration::Settings::default();
    publisher_settings.server.port = 0;
    publisher_settings.kafka.brokers = stack.kafka_brokers.clone();
    publisher_settings.kafka.topic = topic.clone();
    publisher_settings.kafka.dlq_topic = dlq_topic;
    publisher_settings.kafka.group_id = unique_name("e2e");
    publisher_settings.deephaven.url = stack.deephaven_url.clone();
    publisher_settings.deephaven.table_prefix = prefix.clone();
    let metrics = Arc::new(publisher::metrics::Metrics::default());
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(publisher::pipeline::run(publisher_settings, Mode::Follow, metrics, stopped));

    let client = Client::connect(ClientConfig::new(stack.deephaven_url.clone())).await.unwrap();
    let table = format!("{prefix}alerts");
    // Every alert Alertmanager reports active is in Deephaven as firing, and the flapping demo alert, having
    // resolved at least once since, shows a resolve. Alertmanager flushes every few seconds; the flap is 30 s.
    wait::until(
        "Deephaven to show Alertmanager's alerts, including a resolved one",
        Duration::from_secs(240),
        || async {
            let active = alertmanager_alerts(&stack.alertmanager_url).await?;
            let tables = deephaven_alerts(&client, &table).await;
            let missing: Vec<&String> =
                active.keys().filter(|fp| tables.get(*fp).map(String::as_str) != Some("firing")).collect();
            let resolved = tables.values().filter(|status| *status == "resolved").count();
            if !active.is_empty() && missing.is_empty() && resolved > 0 {
                Ok(())
            } else {
                Err(format!(
                    "{} active in Alertmanager, not firing in Deephaven: {missing:?}; {resolved} resolved",
                    active.len()
                ))
            }
        },
    )
    .await;
}
