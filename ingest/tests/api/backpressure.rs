//! Bounded in-flight work and the request deadline: both answer 503 quickly instead of queueing without limit, and
//! what a request was admitted is held until Kafka has settled its records.

use crate::helpers::spawn_app;
use std::time::{Duration, Instant};
use test_kit::fixtures::synthetic_webhook;
use test_kit::metrics::sample;
use test_kit::wait;

#[tokio::test(flavor = "multi_thread")]
async fn a_full_in_flight_budget_answers_503_at_once() {
    // A long linger keeps the first body's records in the producer, so they hold the whole budget for a while.
    let app = spawn_app(1, |settings| {
        settings.server.max_in_flight_records = 10;
        settings.limits.max_alerts_per_body = 10;
        settings.kafka.linger = Duration::from_secs(3);
        settings.server.request_timeout = Duration::from_secs(8);
    })
    .await;
    let (first, _) = synthetic_webhook(1, 10);
    let first = {
        let client = app.client.clone();
        let url = app.alerts_url();
        tokio::spawn(async move {
            client.post(url).header("Content-Type", "application/json").body(first).send().await.unwrap().status()
        })
    };
    wait::until("the first body to hold the whole budget", Duration::from_secs(5), || async {
        let metrics = app.metrics().await;
        if metrics.contains("ingest_in_flight_records 10") {
            Ok(())
        } else {
            Err("in flight below 10")
        }
    })
    .await;

    let started = Instant::now();
    let (second, _) = synthetic_webhook(2, 1);
    let response = app.post_json(second).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["Retry-After"], "1");
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "overloaded");
    assert!(started.elapsed() < Duration::from_secs(2), "refused without waiting for room");

    assert_eq!(first.await.unwrap(), 200, "the admitted body is still acknowledged");
    assert_eq!(app.post_json(synthetic_webhook(3, 10).0).await.status(), 200, "room is given back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passed_deadline_answers_503_and_the_room_is_held_until_kafka_settles() {
    let app = spawn_app(1, |settings| {
        settings.kafka.linger = Duration::from_secs(3);
        settings.server.request_timeout = Duration::from_millis(300);
    })
    .await;
    let started = Instant::now();
    let response = app.post_json(synthetic_webhook(4, 2).0).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "deadline_exceeded");
    assert!(started.elapsed() < Duration::from_secs(2), "answered at the deadline, not when Kafka got round to it");

    // The records are still in the producer's queue, in memory: their room is held until Kafka settles them.
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_in_flight_records"), 2.0, "{metrics}");
    assert!(sample(&metrics, "ingest_in_flight_bytes") > 0.0, "{metrics}");
    wait::until("Kafka to settle the records and their room to be given back", Duration::from_secs(10), || async {
        let metrics = app.metrics().await;
        match (sample(&metrics, "ingest_in_flight_records"), sample(&metrics, "ingest_in_flight_bytes")) {
            (0.0, 0.0) => Ok(()),
            held => Err(held),
        }
    })
    .await;
}
