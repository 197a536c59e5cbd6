//! A genuine re-fire, end to end with real Prometheus and Alertmanager. Prometheus cut off from Alertmanager past
//! its alerts' `EndsAt` (frozen here) makes Alertmanager resolve them; back again, Prometheus still holds the alert
//! and sends it with the same `StartsAt`, and Alertmanager notifies it firing after the resolve. `alerts` must show
//! it firing again: the resolve must not win over a copy that came after it by more than `refire_grace`.

use crate::support::{read_tables, Pipeline, READY_DEADLINE};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use test_kit::stack::{free_port, PrivateMonitoring};
use test_kit::wait;

/// Short, so that the test need not keep Prometheus away for the default minute.
const REFIRE_GRACE: Duration = Duration::from_secs(5);

/// The fingerprint of the alert named `name` that Alertmanager holds active.
async fn active_fingerprint(alertmanager_url: &str, name: &str) -> Result<String, String> {
    let alerts: serde_json::Value = reqwest::get(format!("{alertmanager_url}/api/v2/alerts?active=true"))
        .await
        .map_err(|err| err.to_string())?
        .json()
        .await
        .map_err(|err| err.to_string())?;
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .find(|alert| alert["labels"]["alertname"] == name)
        .and_then(|alert| alert["fingerprint"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("no active {name} in Alertmanager"))
}

/// Waits until `alerts` shows `fingerprint` with `status`; returns its (StartsAt, ReceivedAt) in nanoseconds.
async fn wait_for_status(pipeline: &Pipeline, fingerprint: &str, status: &str, deadline: Duration) -> (i64, i64) {
    wait::until(&format!("{fingerprint} to be {status} in Deephaven"), deadline, || async {
        let tables = read_tables(&pipeline.deephaven_url, &pipeline.prefix).await?;
        match tables.alerts.get(fingerprint) {
            Some((shown, starts_at, received_at)) if shown == status => Ok((*starts_at, *received_at)),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

fn now_nanos() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    i64::try_from(since_epoch.as_nanos()).expect("before 2262")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_resolved_while_prometheus_was_away_fires_again_when_it_returns() {
    let mut pipeline = Pipeline::on_stack("e2e-refire").await;
    let grace = format!("{}s", REFIRE_GRACE.as_secs());
    pipeline.publisher_settings.push(("PUBLISHER_DEEPHAVEN__REFIRE_GRACE".to_owned(), grace));
    let ingest_port = free_port();
    let ingest = pipeline.ingest(ingest_port);
    ingest.wait_until_ready(READY_DEADLINE).await;
    let publisher = pipeline.live_publisher();
    publisher.wait_until_ready(READY_DEADLINE).await;
    let monitoring = PrivateMonitoring::start(&format!("http://127.0.0.1:{ingest_port}/alerts"));

    // DemoHeartbeat (`vector(1)`) fires as soon as Prometheus evaluates its rules, and never stops by itself.
    let alertmanager = monitoring.alertmanager_url();
    let heartbeat = wait::until("Alertmanager to hold DemoHeartbeat", Duration::from_secs(90), || {
        active_fingerprint(&alertmanager, "DemoHeartbeat")
    })
    .await;
    let (fired_at, _) = wait_for_status(&pipeline, &heartbeat, "firing", Duration::from_secs(90)).await;

    monitoring.freeze_prometheus();
    // Alertmanager resolves it at its EndsAt (4 resend delays of 5 s after Prometheus last sent it).
    let (_, resolved_received_at) = wait_for_status(&pipeline, &heartbeat, "resolved", Duration::from_secs(120)).await;
    // Prometheus stays away longer than the grace: what it sends next is a re-fire, not a late copy.
    wait::until("the re-fire grace to pass since the resolve arrived", REFIRE_GRACE * 4, || async {
        let since = Duration::from_nanos(u64::try_from(now_nanos() - resolved_received_at).unwrap_or(0));
        if since > REFIRE_GRACE + Duration::from_secs(1) {
            Ok(())
        } else {
            Err(since)
        }
    })
    .await;

    monitoring.thaw_prometheus();
    // Alertmanager notifies the re-fire at its next group flush (group_interval 5 s). Within half its
    // repeat_interval (1 m), so that it is this notification that must show, not a repeat sent past any grace.
    let (refired_at, _) = wait_for_status(&pipeline, &heartbeat, "firing", Duration::from_secs(30)).await;
    assert_eq!(refired_at, fired_at, "the same occurrence fires again: Prometheus kept its StartsAt");
    publisher.kill();
    ingest.kill();
}
