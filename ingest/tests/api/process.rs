//! The real binary under concurrent load: killed with SIGKILL, stopped with SIGTERM, and run twice side by side.
//! In every case each alert whose request was answered 200 is on the topic; on SIGTERM, the requests in flight are
//! served to the end first.

use crate::helpers::{spawn_app_on, IngestProcess, PartialUpload};
use e2e::fixtures::synthetic_webhook;
use e2e::kafka::{create_topic, read_until};
use e2e::metrics::sample;
use e2e::stack::Stack;
use e2e::wait;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ALERTS_PER_BODY: usize = 10;
const CLIENTS: u64 = 8;
/// Requests whose bodies are half uploaded when SIGTERM arrives.
const SLOW_REQUESTS: u64 = 4;

/// What the load generator saw.
#[derive(Default)]
struct Outcomes {
    acknowledged: Mutex<HashSet<String>>,
    accepted_bodies: AtomicU64,
    /// Answers other than 200 and 503 (for example 400 or 500): never acceptable.
    unexpected: Mutex<Vec<String>>,
}

/// Concurrent clients posting unique bodies until their connection is refused.
fn generate_load(url: String, outcomes: Arc<Outcomes>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|client_id| {
            let url = url.clone();
            let outcomes = Arc::clone(&outcomes);
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                for round in 0.. {
                    let (body, fingerprints) =
                        synthetic_webhook(1_000 + client_id * 1_000_000 + round, ALERTS_PER_BODY);
                    let response = client.post(&url).header("Content-Type", "application/json").body(body).send().await;
                    match response.map(|r| r.status().as_u16()) {
                        Ok(200) => {
                            outcomes.acknowledged.lock().unwrap().extend(fingerprints);
                            outcomes.accepted_bodies.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(503) => {}
                        Ok(other) => outcomes.unexpected.lock().unwrap().push(other.to_string()),
                        Err(_) => return, // the process is gone or no longer accepts connections
                    }
                }
            })
        })
        .collect()
}

async fn wait_for_accepted_bodies(outcomes: &Outcomes, count: u64) {
    wait::until("some bodies to be accepted under load", Duration::from_secs(30), || async {
        let accepted = outcomes.accepted_bodies.load(Ordering::Relaxed);
        if accepted >= count {
            Ok(())
        } else {
            Err(accepted)
        }
    })
    .await
}

async fn assert_every_acknowledged_alert_is_on_the_topic(brokers: &str, topic: &str, outcomes: &Outcomes) {
    let acknowledged = outcomes.acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty());
    let expected = acknowledged.clone();
    let consumed = read_until(brokers, topic, Duration::from_secs(60), move |read| {
        let seen: HashSet<String> =
            read.iter().filter_map(|r| r.decode().ok()).map(|r| r.fingerprint.to_string()).collect();
        expected.is_subset(&seen)
    })
    .await;
    let seen: HashSet<String> = consumed.iter().map(|r| r.decode().unwrap().fingerprint.to_string()).collect();
    let missing: Vec<&String> = acknowledged.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged alerts are missing from the topic, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        outcomes.unexpected.lock().unwrap().is_empty(),
        "unexpected answers: {:?}",
        outcomes.unexpected.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_load_loses_no_acknowledged_alert() {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-kill", 6).await;
    let mut process = IngestProcess::spawn(&brokers, &topic, &[]).await;
    let outcomes = Arc::new(Outcomes::default());
    let clients = generate_load(process.alerts_url(), Arc::clone(&outcomes));
    wait_for_accepted_bodies(&outcomes, 30).await;

    process.child.kill().expect("SIGKILL");
    process.child.wait().unwrap();
    for client in clients {
        client.await.unwrap();
    }
    assert_every_acknowledged_alert_is_on_the_topic(&brokers, &topic, &outcomes).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-term", 6).await;
    // The slow requests' deadline covers their upload, which waits through the load below: a long one, so that only
    // the drain decides how they end. Start-up refuses a drain shorter than a request.
    let timeouts = [("INGEST_SERVER__REQUEST_TIMEOUT", "20s"), ("INGEST_SERVER__SHUTDOWN_TIMEOUT", "20s")];
    let mut process = IngestProcess::spawn(&brokers, &topic, &timeouts).await;

    // Requests in flight at SIGTERM: half of each body sent (chunked, so ingest admits it as it reads it), and
    // ingest shown to be reading all of them before the load starts, while nothing else is in flight.
    let slow: Vec<(Vec<u8>, Vec<String>)> =
        (0..SLOW_REQUESTS).map(|index| synthetic_webhook(900 + index, ALERTS_PER_BODY)).collect();
    let mut uploads = Vec::new();
    for (body, _) in &slow {
        uploads.push(PartialUpload::start(&process.address, body, body.len() / 2, false).await);
    }
    let halves: usize = slow.iter().map(|(body, _)| body.len() / 2).sum();
    let metrics_url = format!("{}/metrics", process.address);
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

    let outcomes = Arc::new(Outcomes::default());
    let clients = generate_load(process.alerts_url(), Arc::clone(&outcomes));
    wait_for_accepted_bodies(&outcomes, 30).await;
    e2e::process::terminate(&process.child);
    // Only now the rest of each slow body: ingest must keep reading them after SIGTERM, then answer.
    let finishing: Vec<_> = uploads.into_iter().map(|upload| tokio::spawn(upload.finish())).collect();
    for ((_, fingerprints), finishing) in slow.iter().zip(finishing) {
        let status = finishing.await.expect("a request in flight at SIGTERM gets an answer, its connection is not cut");
        // 503 would be a refusal of a request ingest had already taken in: the drain is there to finish those.
        assert_eq!(status, 200, "a request in flight at SIGTERM is served to the end");
        outcomes.acknowledged.lock().unwrap().extend(fingerprints.iter().cloned());
    }
    let status =
        e2e::process::wait_for_exit(&mut process.child, "ingest to exit after SIGTERM", Duration::from_secs(30)).await;
    assert!(status.success(), "ingest exited with {status}");
    for client in clients {
        client.await.unwrap();
    }
    assert_every_acknowledged_alert_is_on_the_topic(&brokers, &topic, &outcomes).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_one_topic_and_lose_nothing() {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-pair", 6).await;
    let first = spawn_app_on(&brokers, &topic, |_| {}).await;
    let second = spawn_app_on(&brokers, &topic, |_| {}).await;
    let outcomes = Outcomes::default();
    for batch in 0..40u64 {
        let app = if batch % 2 == 0 { &first } else { &second };
        let (body, fingerprints) = synthetic_webhook(500 + batch, ALERTS_PER_BODY);
        assert_eq!(app.post_json(body).await.status(), 200);
        outcomes.acknowledged.lock().unwrap().extend(fingerprints);
    }
    for app in [&first, &second] {
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("ingest_alerts_accepted_total{status=\"firing\"} 200"),
            "each served half:\n{metrics}"
        );
    }
    assert_every_acknowledged_alert_is_on_the_topic(&brokers, &topic, &outcomes).await;
}
