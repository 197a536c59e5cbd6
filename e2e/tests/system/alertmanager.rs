//! The whole pipeline on the real local stack: Prometheus fires and resolves alerts, Alertmanager sends them to
//! HAProxy in front of two ingest instances, ingest writes them to the broker, the publisher writes them to
//! Deephaven. The `alerts` table must show the alerts Alertmanager reports, and an alert that resolved must show
//! as resolved; the demo's rules must move the analytics tables within minutes.

use crate::support::{read_counts, read_tables, Pipeline, Running};
use std::collections::BTreeSet;
use std::time::Duration;
use test_kit::stack::Stack;
use test_kit::wait;

/// The fingerprints of the alerts Alertmanager reports active.
async fn alertmanager_alerts(url: &str) -> Result<BTreeSet<String>, String> {
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
        .map(|alert| alert["fingerprint"].as_str().unwrap_or_default().to_owned())
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_alerts_reach_deephaven_firing_and_resolved() {
    let stack = Stack::from_env();
    let pipeline = Pipeline::on_stack("e2e-alerts").await;
    // HAProxy where the stack's Alertmanager sends its webhooks.
    let Running { ingest, balancer: _balancer, publisher, .. } = pipeline.start(stack.ingest_port).await;
    let started = std::time::Instant::now();

    // Exactly the alerts Alertmanager reports active are firing in Deephaven, and the flapping demo alert, having
    // resolved at least once since, shows a resolve. Alertmanager notifies within a few seconds (group_interval
    // 5 s) and the flap turns every 30 s, so both agree most of the time.
    wait::until(
        "Deephaven to show exactly Alertmanager's alerts, and a resolved one",
        Duration::from_secs(240),
        || async {
            let active = alertmanager_alerts(&stack.alertmanager_url).await?;
            let tables = read_tables(&stack.deephaven_url, &pipeline.prefix).await?;
            let firing: BTreeSet<&String> =
                tables.alerts.iter().filter(|(_, (status, ..))| status == "firing").map(|(fp, _)| fp).collect();
            let resolved = tables.alerts.len() - firing.len();
            if !active.is_empty() && firing == active.iter().collect() && resolved > 0 {
                Ok(())
            } else {
                Err(format!("active in Alertmanager {active:?}, firing in Deephaven {firing:?}; {resolved} resolved"))
            }
        },
    )
    .await;

    // The demo's rules move the analytics tables too: DemoFlapping fires and resolves every minute, so it soon has
    // resolved episodes and ranks as flapping; the three demo alerts are noisy; more than one severity fires.
    wait::until("the demo's movement in the analytics tables", Duration::from_secs(300), || async {
        let table = |name: &str| format!("{}{name}", pipeline.prefix);
        let url = &stack.deephaven_url;
        let flapping = read_counts(url, &table("alert_flapping"), "AlertName", "FiringsLastHour").await?;
        let episodes = read_counts(url, &table("alert_mttr"), "AlertName", "Episodes").await?;
        let noisiest = read_counts(url, &table("noisiest_alerts"), "AlertName", "StatesLast24h").await?;
        let severities = read_counts(url, &table("alerts_firing_by_severity"), "Severity", "Firing").await?;
        let demo = ["DemoHeartbeat", "DemoFlapping", "DemoTargetDown"];
        if flapping.get("DemoFlapping").is_some_and(|firings| *firings >= 2)
            && episodes.get("DemoFlapping").is_some_and(|resolved| *resolved >= 1)
            && demo.iter().all(|name| noisiest.contains_key(*name))
            && severities.len() >= 2
        {
            Ok(())
        } else {
            Err(format!("flapping {flapping:?}, episodes {episodes:?}, noisiest {noisiest:?}, firing {severities:?}"))
        }
    })
    .await;
    eprintln!(
        "the demo moved every analytics table {:.0} s after the pipeline started",
        started.elapsed().as_secs_f64()
    );
    publisher.kill();
    drop(ingest);
}
