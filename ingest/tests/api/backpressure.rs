//! Bounded in-flight work and the request deadline: both answer 503 quickly instead of queueing without limit, and
//! what a request was admitted is held until Kafka has settled its records.

use crate::helpers::{spawn_app, PartialUpload, TestApp};
use std::time::{Duration, Instant};
use test_kit::fixtures::synthetic_webhook;
use test_kit::kafka::read_all;
use test_kit::metrics::sample;
use test_kit::wait;

/// Waits until Kafka has settled every record handed to it and their room is given back.
async fn wait_for_kafka_to_settle(app: &TestApp) {
    wait::until("Kafka to settle the records and their room to be given back", Duration::from_secs(10), || async {
        let metrics = app.metrics().await;
        match (sample(&metrics, "ingest_in_flight_records"), sample(&metrics, "ingest_in_flight_bytes")) {
            (0.0, 0.0) => Ok(()),
            held => Err(held),
        }
    })
    .await;
}

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
        match sample(&app.metrics().await, "ingest_in_flight_records") {
            10.0 => Ok(()),
            in_flight => Err(in_flight),
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
    wait_for_kafka_to_settle(&app).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_that_ends_near_the_deadline_leaves_the_healthy_producer_in_place() {
    // The linger keeps a healthy producer's records unacknowledged past the deadline of a body uploaded late.
    let app = spawn_app(1, |settings| {
        settings.kafka.linger = Duration::from_millis(800);
        settings.server.request_timeout = Duration::from_millis(1500);
    })
    .await;
    // The probe replaces a suspect producer at most every 5 s, counted from its creation (before `spawn_app`
    // returned).
    let replacement_allowed = Instant::now() + Duration::from_secs(5);
    let (body, fingerprints) = synthetic_webhook(5, 1);
    let upload = PartialUpload::start(&app.address, &body, body.len() - 1, true).await;
    // The client is slow: its last byte arrives half a second before the deadline.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(upload.finish().await, 503, "the records were not acknowledged before the deadline");
    wait_for_kafka_to_settle(&app).await;
    let consumed = read_all(&app.brokers, &app.topic, Duration::from_secs(20)).await;
    let written: Vec<String> = consumed.iter().map(|record| record.decode().unwrap().fingerprint.to_string()).collect();
    assert_eq!(written, fingerprints, "the producer delivered them after the answer: it works");

    tokio::time::sleep_until(replacement_allowed.into()).await;
    let probes = sample(&app.metrics().await, "ingest_broker_probes_total");
    wait::until("two probes once a replacement is allowed", Duration::from_secs(10), || async {
        match sample(&app.metrics().await, "ingest_broker_probes_total") {
            now if now >= probes + 2.0 => Ok(()),
            now => Err(now),
        }
    })
    .await;
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_producer_replacements_total"), 0.0, "{metrics}");
}
