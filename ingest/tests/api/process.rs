//! The real binary under concurrent load: killed with SIGKILL, stopped with SIGTERM, and run twice side by side.
//! In every case each alert whose request was answered 200 is on the topic; on SIGTERM, the requests in flight are
//! served to the end first.

use crate::helpers::{spawn_app_on, spawn_process, PartialUpload};
use std::collections::BTreeSet;
use std::time::Duration;
use test_kit::fixtures::synthetic_webhook;
use test_kit::kafka::{create_topic, read_all};
use test_kit::load::{alert_states, Ledger, Load, Shape};
use test_kit::metrics::sample;
use test_kit::stack::Stack;
use test_kit::wait;

const ALERTS_PER_BODY: usize = 10;
/// Requests whose bodies are half uploaded when SIGTERM arrives.
const SLOW_REQUESTS: u64 = 4;

/// Concurrent clients posting as fast as ingest answers, until the test stops them.
fn saturating_load(url: String) -> Load {
    let shape =
        Shape { workers: 8, interval: Duration::from_millis(1), alerts_per_body: ALERTS_PER_BODY, first_batch: 1_000 };
    Load::start(&url, shape)
}

async fn wait_for_accepted_bodies(load: &Load, count: u64) {
    wait::until("some bodies to be accepted under load", Duration::from_secs(30), || async {
        match load.ledger().answered(200) {
            accepted if accepted >= count => Ok(()),
            accepted => Err(accepted),
        }
    })
    .await
}

/// Every alert state of a body answered 200 is on the topic, and no answer was other than 200, 503 or none (the
/// process gone).
async fn assert_every_acknowledged_alert_is_on_the_topic(brokers: &str, topic: &str, ledger: &Ledger) {
    assert!(!ledger.acknowledged.is_empty());
    let seen: BTreeSet<String> = read_all(brokers, topic, Duration::from_secs(60))
        .await
        .iter()
        .map(|record| record.decode().expect("ingest's records decode").event_id.to_string())
        .collect();
    let missing: Vec<&String> = ledger.acknowledged.keys().filter(|id| !seen.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged alert states are missing from the topic, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let unexpected: Vec<_> = ledger.answers.iter().filter(|(status, _)| ![0, 200, 503].contains(*status)).collect();
    assert!(unexpected.is_empty(), "unexpected answers (status, count): {unexpected:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_load_loses_no_acknowledged_alert() {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-kill", 6).await;
    let mut process = spawn_process(&brokers, &topic, &[]).await;
    let load = saturating_load(format!("{}/alerts", process.ops_url));
    wait_for_accepted_bodies(&load, 30).await;

    process.child.kill().expect("SIGKILL");
    process.child.wait().unwrap();
    let ledger = load.stop().await;
    assert_every_acknowledged_alert_is_on_the_topic(&brokers, &topic, &ledger).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-term", 6).await;
    // The slow requests' deadline covers their upload, which waits through the load below: a long one, so that only
    // the drain decides how they end. Start-up refuses a drain shorter than a request.
    let timeouts = [("INGEST_SERVER__REQUEST_TIMEOUT", "20s"), ("INGEST_SERVER__SHUTDOWN_TIMEOUT", "20s")];
    let mut process = spawn_process(&brokers, &topic, &timeouts).await;

    // Requests in flight at SIGTERM: half of each body sent (chunked, so ingest admits it as it reads it), and
    // ingest shown to be reading all of them before the load starts, while nothing else is in flight.
    let slow: Vec<Vec<u8>> =
        (0..SLOW_REQUESTS).map(|index| synthetic_webhook(900 + index, ALERTS_PER_BODY).0).collect();
    let mut uploads = Vec::new();
    for body in &slow {
        uploads.push(PartialUpload::start(&process.ops_url, body, body.len() / 2, false).await);
    }
    let halves: usize = slow.iter().map(|body| body.len() / 2).sum();
    let metrics_url = format!("{}/metrics", process.ops_url);
    wait::until("ingest to have read the first half of every slow body", Duration::from_secs(10), || async {
        let metrics = reqwest::get(&metrics_url).await.map_err(|err| err.to_string())?;
        let read = sample(&metrics.text().await.map_err(|err| err.to_string())?, "ingest_in_flight_bytes");
        if read >= halves as f64 {
            Ok(())
        } else {
            Err(format!("{read} of the {halves} bytes sent"))
        }
    })
    .await;

    let load = saturating_load(format!("{}/alerts", process.ops_url));
    wait_for_accepted_bodies(&load, 30).await;
    test_kit::process::terminate(&process.child);
    // Only now the rest of each slow body: ingest must keep reading them after SIGTERM, then answer.
    let finishing: Vec<_> = uploads.into_iter().map(|upload| tokio::spawn(upload.finish())).collect();
    let mut slow_ledger = Ledger::default();
    for (body, finishing) in slow.iter().zip(finishing) {
        let status = finishing.await.expect("a request in flight at SIGTERM gets an answer, its connection is not cut");
        // 503 would be a refusal of a request ingest had already taken in: the drain is there to finish those.
        assert_eq!(status, 200, "a request in flight at SIGTERM is served to the end");
        slow_ledger.acknowledged.extend(alert_states(body));
    }
    let status =
        test_kit::process::wait_for_exit(&mut process.child, "ingest to exit after SIGTERM", Duration::from_secs(30))
            .await;
    assert!(status.success(), "ingest exited with {status}");
    let mut ledger = load.stop().await;
    ledger.merge(slow_ledger);
    assert_every_acknowledged_alert_is_on_the_topic(&brokers, &topic, &ledger).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_one_topic_and_lose_nothing() {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-pair", 6).await;
    let first = spawn_app_on(&brokers, &topic, |_| {}).await;
    let second = spawn_app_on(&brokers, &topic, |_| {}).await;
    let mut ledger = Ledger::default();
    for batch in 0..40u64 {
        let app = if batch % 2 == 0 { &first } else { &second };
        let (body, _) = synthetic_webhook(500 + batch, ALERTS_PER_BODY);
        ledger.acknowledged.extend(alert_states(&body));
        assert_eq!(app.post_json(body).await.status(), 200);
    }
    for app in [&first, &second] {
        let metrics = app.metrics().await;
        assert_eq!(
            sample(&metrics, "ingest_alerts_accepted_total{status=\"firing\"}"),
            200.0,
            "each served half:\n{metrics}"
        );
    }
    assert_every_acknowledged_alert_is_on_the_topic(&brokers, &topic, &ledger).await;
}
