//! Bodies that can never succeed get the right 4xx with a useful message, and nothing reaches the topic.

use crate::helpers::{spawn_app, spawn_app_on, TestApp};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::{json, Value};
use std::time::Duration;
use test_kit::fixtures::{captured_webhooks, synthetic_webhook};
use test_kit::kafka::read_all;
use test_kit::metrics::sample;

/// A bad body: (name, body, expected status, expected error, expected path).
type Case = (&'static str, Vec<u8>, u16, &'static str, Option<&'static str>);

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_a_4xx_naming_the_problem_and_write_nothing() {
    let app = spawn_app(1, |settings| {
        settings.server.max_body_bytes = 64 * 1024;
        settings.limits.max_alerts_per_body = 2;
    })
    .await;
    let valid: Value = serde_json::from_slice(&captured_webhooks()[1].body).unwrap();
    let with = |mutate: &dyn Fn(&mut Value)| {
        let mut body = valid.clone();
        mutate(&mut body);
        serde_json::to_vec(&body).unwrap()
    };
    let alerts = |count: usize| {
        with(&|b| {
            let alert = b["alerts"][0].clone();
            b["alerts"] = Value::Array(vec![alert; count]);
        })
    };

    let cases: Vec<Case> = vec![
        ("malformed", b"{\"version\":".to_vec(), 400, "malformed_json", Some("version")),
        ("garbage", b"hello".to_vec(), 400, "malformed_json", Some("$")),
        ("not an object", b"\"text\"".to_vec(), 400, "invalid_webhook", Some("$")),
        ("wrong version", with(&|b| b["version"] = json!("3")), 400, "invalid_webhook", Some("version")),
        (
            "bad time",
            with(&|b| b["alerts"][0]["startsAt"] = json!("noon")),
            400,
            "invalid_webhook",
            Some("alerts[0].startsAt"),
        ),
        (
            "bad fingerprint",
            with(&|b| b["alerts"][0]["fingerprint"] = json!("zz")),
            400,
            "invalid_webhook",
            Some("alerts[0].fingerprint"),
        ),
        (
            "no labels",
            with(&|b| b["alerts"][0]["labels"] = json!({})),
            400,
            "invalid_webhook",
            Some("alerts[0].labels"),
        ),
        (
            "huge value",
            with(&|b| b["alerts"][0]["labels"]["x"] = json!("x".repeat(20_000))),
            413,
            "limit_exceeded",
            Some("alerts[0].labels.x"),
        ),
        ("too many alerts", alerts(3), 413, "limit_exceeded", Some("alerts")),
        ("too many bytes", alerts(200), 413, "payload_too_large", None),
        ("invalid utf-8", b"{\"version\":\"4\xff\"}".to_vec(), 400, "malformed_json", Some("version")),
    ];
    for (name, body, status, error, path) in cases {
        let response = app.post_json(body).await;
        assert_eq!(response.status().as_u16(), status, "{name}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], error, "{name}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| m.len() > 10), "{name}: {answer}");
        if let Some(path) = path {
            assert_eq!(answer["path"], path, "{name}: {answer}");
            assert!(
                answer["message"].as_str().unwrap().starts_with(path),
                "{name}: the message names the path: {answer}"
            );
        }
    }

    let body = captured_webhooks()[1].body.clone();
    let no_type = app.client.post(app.alerts_url()).body(body.clone()).send().await.unwrap();
    assert_eq!(no_type.status(), 415);
    let text =
        app.client.post(app.alerts_url()).header("Content-Type", "text/plain").body(body.clone()).send().await.unwrap();
    assert_eq!(text.status(), 415);
    assert_eq!(text.json::<Value>().await.unwrap()["error"], "unsupported_media_type");
    let get = app.client.get(app.alerts_url()).send().await.unwrap();
    assert_eq!(get.status(), 405);

    assert_only_a_sentinel_is_written(&app).await;
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_rejections_total{reason=\"invalid_webhook\"}"), 5.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_whose_record_kafka_would_refuse_gets_413_and_nothing_of_its_body_is_written() {
    let app = spawn_app(1, |_| {}).await;
    let valid: Value = serde_json::from_slice(&captured_webhooks()[1].body).unwrap();
    let mut small = valid["alerts"][0].clone();
    small["fingerprint"] = json!("0000000000000001");
    let mut large = valid["alerts"][0].clone();
    large["fingerprint"] = json!("0000000000000002");
    // Every value within limits.max_value_bytes and the labels within their count, yet the record is larger than
    // the producer's message.max.bytes (librdkafka's default, 1,000,000): Kafka could never take it.
    for index in 0..60 {
        large["annotations"][format!("note{index}")] = json!("x".repeat(16_000));
        if index < 30 {
            large["labels"][format!("label{index}")] = json!("y".repeat(16_000));
        }
    }
    let mut body = valid.clone();
    body["alerts"] = json!([small, large]);
    let response = app.post_json(serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(response.status().as_u16(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "limit_exceeded", "{answer}");
    assert_eq!(answer["path"], "alerts[1]", "{answer}");

    assert_only_a_sentinel_is_written(&app).await;
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_rejections_total{reason=\"limit_exceeded\"}"), 1.0, "{metrics}");
}

/// A topic whose `max.message.bytes` is below the producer's `message.max.bytes` refuses whole batches, which may
/// hold other bodies' records. Tansu takes records of any size, so the refusal comes from librdkafka's mock
/// cluster, the one broker here that can answer MESSAGE_TOO_LARGE: a 503 naming the mismatch (a 4xx would make
/// Alertmanager drop bodies that did nothing wrong), and the producer stays in service for the bodies after it.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_the_broker_refuses_as_too_large_gets_503_naming_the_mismatch_and_the_next_body_is_accepted() {
    let cluster = MockCluster::new(1).expect("librdkafka's mock cluster starts");
    cluster.create_topic("alerts", 1, 1).expect("the mock cluster creates the topic");
    let app = spawn_app_on(&cluster.bootstrap_servers(), "alerts", |_| {}).await;
    assert_eq!(app.post_json(synthetic_webhook(1, 2).0).await.status(), 200, "the broker takes a first body");

    cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE]);
    let response = app.post_json(synthetic_webhook(2, 1).0).await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"], "batch_too_large_for_broker", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("max.message.bytes"), "{answer}");

    assert_eq!(app.post_json(synthetic_webhook(3, 2).0).await.status(), 200, "the producer takes the next body");
    assert_eq!(app.readyz().await, 200);
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_kafka_errors_total{code=\"MessageSizeTooLarge\"}"), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, "ingest_rejections_total{reason=\"batch_too_large_for_broker\"}"), 1.0, "{metrics}");
}

/// Posts a sentinel body, whose alerts have fingerprints no refused body has, then reads the whole topic: it must
/// hold the sentinel's records alone, in body order (the topic has one partition). A record of anything posted
/// before the sentinel would be one too many, and would show by its fingerprint.
async fn assert_only_a_sentinel_is_written(app: &TestApp) {
    let (sentinel, fingerprints) = synthetic_webhook(7, 2);
    assert_eq!(app.post_json(sentinel).await.status(), 200, "the sentinel is accepted");
    let written: Vec<String> = read_all(&app.brokers, &app.topic, Duration::from_secs(20))
        .await
        .iter()
        .map(|record| match record.decode() {
            Ok(decoded) => decoded.fingerprint.to_string(),
            Err(err) => format!("an undecodable record at offset {}: {err}", record.offset),
        })
        .collect();
    assert_eq!(written, fingerprints, "the topic holds the sentinel's records and nothing else");
}
