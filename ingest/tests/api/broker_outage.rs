//! The broker going away and coming back, or the topic missing: ingest stays up, says so on /readyz, answers 503,
//! and recovers alone.

use crate::helpers::{spawn_app_on, start_app_on};
use reqwest::StatusCode;
use std::time::Duration;
use test_kit::fixtures::synthetic_webhook;
use test_kit::kafka::{create_topic_named, read_all, topic_exists};
use test_kit::metrics::sample;
use test_kit::names::unique_name;
use test_kit::stack::{PrivateBroker, Stack};
use test_kit::wait;

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_means_503_and_broker_back_means_200_without_a_restart() {
    let broker = PrivateBroker::start(2);
    let app = spawn_app_on(&broker.brokers(), "alerts", |settings| {
        settings.server.request_timeout = Duration::from_secs(2);
    })
    .await;
    assert_eq!(app.post_json(synthetic_webhook(10, 3).0).await.status(), 200);

    broker.stop();
    wait::until("/readyz to turn 503", Duration::from_secs(15), || async {
        match app.readyz().await {
            StatusCode::SERVICE_UNAVAILABLE => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let response = app.post_json(synthetic_webhook(11, 3).0).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("Retry-After"));

    broker.restart();
    // Alertmanager keeps retrying; model that: the same body until it is accepted.
    let (body, fingerprints) = synthetic_webhook(12, 3);
    wait::until("a webhook to be accepted again", Duration::from_secs(60), || {
        let request = app.post_json(body.clone());
        async move {
            match request.await.status() {
                StatusCode::OK => Ok(()),
                other => Err(other),
            }
        }
    })
    .await;
    assert_eq!(app.readyz().await, StatusCode::OK);

    // The memory broker forgot everything on stop; what was acknowledged after the restart is there, and nothing
    // else: not the body answered 503 while the broker was down. Retries that were not answered 200 may have
    // written some of the accepted body's records already, so a fingerprint may repeat.
    let consumed = read_all(&app.brokers, &app.topic, Duration::from_secs(20)).await;
    let mut read: Vec<String> =
        consumed.iter().map(|record| record.decode().unwrap().fingerprint.to_string()).collect();
    read.sort();
    read.dedup();
    let mut expected = fingerprints;
    expected.sort();
    assert_eq!(read, expected, "the topic holds the alerts of the body accepted after the restart, and nothing else");
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_starts_without_a_broker_and_becomes_ready_when_it_appears() {
    let broker = PrivateBroker::start(1);
    broker.stop();
    let app = start_app_on(&broker.brokers(), "alerts", |_| {}).await;
    assert_eq!(app.readyz().await, StatusCode::SERVICE_UNAVAILABLE);
    let healthz = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    broker.restart();
    app.wait_until_ready().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_keeps_ingest_unready_and_is_never_created_by_it() {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = unique_name("ingest-missing");
    let app = start_app_on(&brokers, &topic, |_| {}).await;
    // A misspelt topic created on the fly would take every alert where no publisher reads.
    wait::until("the probe to find the topic missing twice", Duration::from_secs(30), || async {
        match sample(&app.metrics().await, "ingest_broker_probe_failures_total") {
            failures if failures >= 2.0 => Ok(()),
            failures => Err(failures),
        }
    })
    .await;
    assert!(!topic_exists(&brokers, &topic), "ingest created the topic {topic}");
    assert_eq!(app.readyz().await, StatusCode::SERVICE_UNAVAILABLE);
    let (body, _) = synthetic_webhook(21, 1);
    let answer = app.post_json(body.clone()).await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);

    create_topic_named(&brokers, &topic, 1).await;
    app.wait_until_ready().await;
    assert_eq!(app.post_json(body).await.status(), StatusCode::OK);
}
