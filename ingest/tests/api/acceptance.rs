//! Real Alertmanager payloads are accepted and land on the topic exactly as sent.

use crate::helpers::spawn_app;
use schemas::{parse, AlertRecord, Limits, RecordHeaders, Timestamp};
use std::time::Duration;
use test_kit::fixtures::captured_webhooks;
use test_kit::kafka::read_all;
use test_kit::metrics::sample;

#[tokio::test(flavor = "multi_thread")]
async fn every_captured_webhook_is_accepted_and_read_back_exactly() {
    let app = spawn_app(6, |_| {}).await;
    let captures = captured_webhooks();
    let mut expected = Vec::new();
    let before = Timestamp::now();
    for capture in &captures {
        let mut request = app.client.post(app.alerts_url()).body(capture.body.clone());
        for (name, value) in &capture.headers {
            if !matches!(name.as_str(), "Host" | "Content-Length") {
                request = request.header(name, value);
            }
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{}: {}", capture.name, response.text().await.unwrap());
        let answer: serde_json::Value = response.json().await.unwrap();
        let webhook = parse(&capture.body, &Limits::default()).unwrap();
        assert_eq!(answer["accepted"], webhook.alerts.len(), "{}", capture.name);
        expected.extend(AlertRecord::from_webhook(webhook, before));
    }
    let after = Timestamp::now();

    let consumed = read_all(&app.brokers, &app.topic, Duration::from_secs(30)).await;
    assert_eq!(consumed.len(), expected.len(), "every alert of every body is one record, and nothing else is written");

    let mut actual: Vec<AlertRecord> = Vec::new();
    for record in &consumed {
        assert_eq!(record.header(RecordHeaders::FORMAT), Some(RecordHeaders::CURRENT_FORMAT.as_bytes()));
        assert_eq!(record.header(RecordHeaders::CONTENT_TYPE), Some(RecordHeaders::JSON.as_bytes()));
        let decoded = record.decode().unwrap();
        assert_eq!(record.key.as_deref(), Some(decoded.fingerprint.as_str().as_bytes()), "key = fingerprint");
        assert!(before <= decoded.received_at && decoded.received_at <= after, "received_at is the time of receipt");
        actual.push(decoded);
    }
    // Records of one alert share a partition and keep their order; compare everything but received_at.
    let normalize = |records: &mut Vec<AlertRecord>| {
        records.iter_mut().for_each(|record| record.received_at = before);
        records.sort_by(|a, b| {
            (a.fingerprint.as_str(), a.event_id.as_str()).cmp(&(b.fingerprint.as_str(), b.event_id.as_str()))
        });
    };
    normalize(&mut actual);
    normalize(&mut expected);
    assert_eq!(actual, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_one_alert_stay_in_order_on_one_partition() {
    let app = spawn_app(6, |_| {}).await;
    // Fixtures 006 (firing), 011 (resolved) and 015 (firing again) are one alert's history.
    let history: Vec<_> =
        captured_webhooks().into_iter().filter(|c| ["006", "011", "015"].contains(&c.name.as_str())).collect();
    for capture in &history {
        assert_eq!(app.post_json(capture.body.clone()).await.status(), 200);
    }
    let consumed = read_all(&app.brokers, &app.topic, Duration::from_secs(30)).await;
    assert_eq!(consumed.len(), 3, "one record per event");
    assert!(consumed.iter().all(|record| record.partition == consumed[0].partition));
    let statuses: Vec<&str> = consumed.iter().map(|record| record.decode().unwrap().status.as_str()).collect();
    assert_eq!(statuses, ["firing", "resolved", "firing"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_endpoints_answer() {
    let app = spawn_app(1, |_| {}).await;
    let health = app.client.get(format!("{}/healthz", app.address)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(app.post_json(captured_webhooks()[0].body.clone()).await.status(), 200);
    let metrics = app.metrics().await;
    for (name, expected) in [
        ("ingest_http_requests_total{route=\"/alerts\",status=\"200\"}", 1.0),
        ("ingest_alerts_accepted_total{status=\"firing\"}", 2.0),
        ("ingest_request_body_bytes_count", 1.0),
        ("ingest_alerts_per_body_sum", 2.0),
        ("ingest_produce_duration_seconds_count", 1.0),
        ("ingest_in_flight_records", 0.0),
        ("ingest_broker_ready", 1.0),
    ] {
        assert_eq!(sample(&metrics, name), expected, "{name}:\n{metrics}");
    }
    for present in [
        "ingest_build_info{version=\"",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(metrics.contains(present), "/metrics lacks {present:?}:\n{metrics}");
    }
    assert!(metrics.trim_end().ends_with("# EOF") && metrics.matches("# EOF").count() == 1, "one exposition");
}
