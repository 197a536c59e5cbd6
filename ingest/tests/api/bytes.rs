//! ingest bounded by bytes: what one body may cost once encoded, room taken before a body is read, a cap on
//! connections, and the peak memory of the real binary under the worst bodies the limits allow.

use crate::helpers::{spawn_app, spawn_app_on, spawn_process, PartialUpload, TestApp};
use serde_json::{json, Value};
use std::time::Duration;
use test_kit::fixtures::synthetic_webhook;
use test_kit::kafka::read_all;
use test_kit::metrics::sample;
use test_kit::stack::PrivateBroker;
use test_kit::wait;

/// `synthetic_webhook(batch, alerts)` with a group label of `group_label_bytes`: every record repeats it.
fn amplifying_webhook(batch: u64, alerts: usize, group_label_bytes: usize) -> (Vec<u8>, Vec<String>) {
    let (body, fingerprints) = synthetic_webhook(batch, alerts);
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    body["groupLabels"]["big"] = json!("g".repeat(group_label_bytes));
    (serde_json::to_vec(&body).unwrap(), fingerprints)
}

async fn in_flight_bytes(app: &TestApp) -> f64 {
    sample(&app.metrics().await, "ingest_in_flight_bytes")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_whose_records_together_exceed_the_budget_gets_413_and_writes_nothing() {
    let app = spawn_app(1, |settings| settings.limits.max_record_bytes_per_body = 200_000).await;
    let (body, _) = amplifying_webhook(1, 30, 10_000);
    assert!(body.len() < 60_000, "the body itself is small: {} bytes", body.len());
    let response = app.post_json(body).await;
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        (answer["error"].as_str(), answer["path"].as_str()),
        (Some("limit_exceeded"), Some("alerts")),
        "{answer}"
    );

    let (sentinel, sentinel_fingerprints) = synthetic_webhook(2, 1);
    assert_eq!(app.post_json(sentinel).await.status(), 200);
    let consumed = read_all(&app.brokers, &app.topic, Duration::from_secs(20)).await;
    let fingerprints: Vec<String> =
        consumed.iter().map(|record| record.decode().unwrap().fingerprint.to_string()).collect();
    assert_eq!(fingerprints, sentinel_fingerprints, "only the sentinel was written, nothing of the refused body");
}

#[tokio::test(flavor = "multi_thread")]
async fn room_for_a_body_is_taken_before_it_is_read() {
    let (held_body, _) = synthetic_webhook(3, 60);
    let held = held_body.len() - 10;
    // Room for the held body and its records, not for a second body beside it.
    let room = 3 * held_body.len();
    let app = spawn_app(1, |settings| {
        settings.server.max_in_flight_bytes = room;
        settings.server.request_timeout = Duration::from_secs(20);
        settings.server.shutdown_timeout = Duration::from_secs(20);
    })
    .await;

    // No Content-Length: the room is taken chunk by chunk as the body streams in.
    let streaming = PartialUpload::start(&app.address, &held_body, held, false).await;
    wait::until("the streamed part of the body to hold room", Duration::from_secs(10), || async {
        match in_flight_bytes(&app).await {
            bytes if bytes >= held as f64 => Ok(()),
            bytes => Err(bytes),
        }
    })
    .await;

    // Declared too large for what is left: refused from its head alone, before a byte of its body is sent.
    let mut refused = PartialUpload::start(&app.address, &vec![b' '; room - held + 1], 0, true).await;
    assert_eq!(refused.status().await, 503, "no room for the declared length");

    assert_eq!(streaming.finish().await, 200, "the body that held the room is acknowledged");
    wait::until("the room to be given back", Duration::from_secs(10), || async {
        match in_flight_bytes(&app).await {
            0.0 => Ok(()),
            bytes => Err(bytes),
        }
    })
    .await;
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_rejections_total{reason=\"overloaded\"}"), 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_length_holds_room_only_as_its_bytes_arrive() {
    const DECLARED: usize = 512 * 1024;
    const HEAD_START: f64 = 64.0 * 1024.0;
    // Room for two such bodies whole: declaring a length must not be enough to take it.
    let app = spawn_app(1, |settings| {
        settings.server.max_in_flight_bytes = 2 * DECLARED + 1024;
        settings.server.request_timeout = Duration::from_secs(20);
        settings.server.shutdown_timeout = Duration::from_secs(20);
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(PartialUpload::start(&app.address, &vec![b' '; DECLARED], 0, true).await);
    }
    wait::until("the four silent uploads to hold their head starts", Duration::from_secs(10), || async {
        match in_flight_bytes(&app).await {
            bytes if bytes == 4.0 * HEAD_START => Ok(()),
            bytes => Err(bytes),
        }
    })
    .await;
    let (body, _) = synthetic_webhook(5, 2);
    assert_eq!(app.post_json(body).await.status(), 200, "a real webhook still finds room");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_hangs_up_leaves_its_room_taken_until_kafka_settles_its_records() {
    let broker = PrivateBroker::start(1);
    let app = spawn_app_on(&broker.brokers(), "alerts", |settings| {
        settings.server.request_timeout = Duration::from_secs(30);
        settings.server.shutdown_timeout = Duration::from_secs(30);
    })
    .await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let (body, fingerprints) = synthetic_webhook(8, 3);
    // The head is read (and the broker found ready) before the broker freezes; the rest of the body after.
    let upload = PartialUpload::start(&app.address, &body, body.len() - 10, true).await;
    let ingest_end = server_socket(port, upload.local_port());
    broker.pause();
    let upload = upload.send_rest().await;
    wait::until("the body's records to wait for Kafka", Duration::from_secs(10), || async {
        match sample(&app.metrics().await, "ingest_in_flight_records") {
            3.0 => Ok(()),
            records => Err(records),
        }
    })
    .await;

    upload.reset();
    wait::until("ingest to drop the hung-up connection and its handler", Duration::from_secs(10), || async {
        if socket_is_open(ingest_end) {
            Err("ingest still holds its end of the connection")
        } else {
            Ok(())
        }
    })
    .await;
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_in_flight_records"), 3.0, "the records still wait for Kafka: {metrics}");
    assert!(in_flight_bytes(&app).await >= body.len() as f64, "their room is still taken: {metrics}");

    broker.resume();
    wait::until("the room to be given back once Kafka settled the records", Duration::from_secs(30), || async {
        match in_flight_bytes(&app).await {
            0.0 => Ok(()),
            bytes => Err(bytes),
        }
    })
    .await;
    let written: Vec<String> = read_all(&app.brokers, &app.topic, Duration::from_secs(20))
        .await
        .iter()
        .map(|record| record.decode().unwrap().fingerprint.to_string())
        .collect();
    assert_eq!(written, fingerprints, "the hung-up body's records are on the topic");
}

/// The inode of ingest's end of the connection from `client_port` to its `port`.
fn server_socket(port: u16, client_port: u16) -> u64 {
    tcp_sockets()
        .find(|socket| socket.local_port == port && socket.remote_port == client_port)
        .map(|socket| socket.inode)
        .expect("ingest's end of the connection is in /proc/net/tcp")
}

/// Whether this process (ingest runs in it) still has the socket `inode` open: a reset connection leaves
/// `/proc/net/tcp` at once, its descriptor only when the server closes it.
fn socket_is_open(inode: u64) -> bool {
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .any(|link| link.to_string_lossy() == target)
}

/// One line of `/proc/net/tcp`.
struct TcpSocket {
    local_port: u16,
    remote_port: u16,
    inode: u64,
    /// `0A` listening, `01` established.
    state: String,
    /// For a listening socket, the connections waiting to be accepted; otherwise bytes received and not yet read.
    rx_queue: u64,
}

fn tcp_sockets() -> impl Iterator<Item = TcpSocket> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    let sockets: Vec<TcpSocket> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(TcpSocket {
                local_port: u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?,
                remote_port: u16::from_str_radix(fields.get(2)?.rsplit(':').next()?, 16).ok()?,
                inode: fields.get(9)?.parse().ok()?,
                state: (*fields.get(3)?).to_owned(),
                rx_queue: u64::from_str_radix(fields.get(4)?.split(':').nth(1)?, 16).ok()?,
            })
        })
        .collect();
    sockets.into_iter()
}

/// Connections waiting in the accept queue of the listener on `port`.
fn accept_backlog(port: u16) -> u64 {
    tcp_sockets().filter(|socket| socket.local_port == port && socket.state == "0A").map(|socket| socket.rx_queue).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_app(1, |settings| {
        settings.server.workers = Some(1);
        settings.server.max_connections = 2;
        settings.server.request_timeout = Duration::from_secs(20);
        settings.server.shutdown_timeout = Duration::from_secs(20);
    })
    .await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    // The test client keeps no idle connection (see `spawn_app`), so these three are all there are.
    let (first_body, _) = synthetic_webhook(5, 1);
    let first = PartialUpload::start(&app.address, &first_body, first_body.len() / 2, true).await;
    let (second_body, _) = synthetic_webhook(6, 1);
    let second = PartialUpload::start(&app.address, &second_body, second_body.len() / 2, true).await;
    let (third_body, _) = synthetic_webhook(7, 1);
    let mut third = PartialUpload::start(&app.address, &third_body, third_body.len(), true).await;

    wait::until("a connection to wait for a free slot", Duration::from_secs(10), || async {
        match accept_backlog(port) {
            0 => Err("nothing waits in the accept queue"),
            _ => Ok(()),
        }
    })
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.status()).await.is_err(),
        "a connection beyond the cap is not served while the cap is reached"
    );

    assert_eq!(first.finish().await, 200);
    assert_eq!(third.status().await, 200, "served once a slot is free");
    assert_eq!(second.finish().await, 200);
}

/// A body as large as `max_body_bytes` allows whose records are nearly as large as `max_record_bytes_per_body`
/// allows: long labels on every alert, and a group label every record repeats.
fn worst_allowed_webhook(batch: u64, max_body_bytes: usize, max_record_bytes_per_body: usize) -> Vec<u8> {
    let limits = schemas::Limits { max_record_bytes_per_body, ..schemas::Limits::default() };
    let (alerts, group_label_bytes, label_bytes) = (200, 15_000, 4_300);
    let (body, _) = amplifying_webhook(batch, alerts, group_label_bytes);
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    for alert in body["alerts"].as_array_mut().unwrap() {
        alert["labels"]["payload"] = json!("p".repeat(label_bytes));
    }
    let body = serde_json::to_vec(&body).unwrap();
    let records =
        schemas::AlertRecord::from_webhook(schemas::parse(&body, &limits).unwrap(), schemas::Timestamp::now());
    let encoded: usize = schemas::AlertRecord::encode_all(&records, &limits).unwrap().iter().map(Vec::len).sum();
    assert!(body.len() <= max_body_bytes && body.len() * 5 >= max_body_bytes * 4, "body of {} bytes", body.len());
    assert!(encoded * 10 >= max_record_bytes_per_body * 9, "records of {encoded} bytes");
    body
}

/// Established connections to `port` whose received bytes ingest has not read yet (`rx_queue` in `/proc/net/tcp`).
fn unread_bytes(port: u16) -> u64 {
    tcp_sockets().filter(|socket| socket.local_port == port && socket.state == "01").map(|socket| socket.rx_queue).sum()
}

/// A body of the most alerts allowed, each with the most labels allowed, all short: small on the wire, its decoded
/// form (a map entry per label) several times the body.
fn short_labels_webhook(batch: u64, max_body_bytes: usize) -> Vec<u8> {
    let limits = schemas::Limits::default();
    let (body, _) = synthetic_webhook(batch, limits.max_alerts_per_body);
    let mut body: Value = serde_json::from_slice(&body).unwrap();
    for alert in body["alerts"].as_array_mut().unwrap() {
        let labels = alert["labels"].as_object_mut().unwrap();
        for index in labels.len()..limits.max_labels_per_alert {
            labels.insert(format!("l{index}"), json!(""));
        }
    }
    let body = serde_json::to_vec(&body).unwrap();
    schemas::parse(&body, &limits).expect("a body within the limits");
    assert!(body.len() <= max_body_bytes, "body of {} bytes", body.len());
    body
}

/// Limits small enough for a test: 1 MiB bodies, 4 MiB of records per body, 32 MiB in flight.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const MAX_RECORD_BYTES_PER_BODY: usize = 4 * 1024 * 1024;
const MAX_IN_FLIGHT_BYTES: usize = 32 * 1024 * 1024;
/// Four times the budget in bodies: without admission, reading them alone would take 128 MiB.
const SENDERS: usize = 4 * MAX_IN_FLIGHT_BYTES / MAX_BODY_BYTES;

/// Runs `SENDERS` concurrent uploads of `body` against a real ingest process with the limits above and returns its
/// peak RSS beyond what it had at start, and the answers. Every sender uploads all of the body but its last bytes
/// and holds it there: the attack is many concurrent large uploads. Each is either admitted (and read) or refused
/// with 503 from its head. With `stalled_broker` the broker is frozen before the uploads finish, so every admitted
/// body waits for Kafka until its deadline: everything admitted is held at once; then it also returns how many
/// requests passed their deadline.
async fn peak_memory_under_concurrent_uploads(body: &[u8], stalled_broker: bool) -> (u64, Vec<u16>, Option<f64>) {
    // A broker of the test's own: the accepted records are many megabytes the shared one would keep.
    let broker = PrivateBroker::start(1);
    let limits = [
        ("INGEST_SERVER__MAX_BODY_BYTES", MAX_BODY_BYTES.to_string()),
        ("INGEST_LIMITS__MAX_RECORD_BYTES_PER_BODY", MAX_RECORD_BYTES_PER_BODY.to_string()),
        ("INGEST_SERVER__MAX_IN_FLIGHT_BYTES", MAX_IN_FLIGHT_BYTES.to_string()),
        ("INGEST_SERVER__WORKERS", "2".to_owned()),
        ("INGEST_SERVER__REQUEST_TIMEOUT", "9s".to_owned()),
    ];
    let env: Vec<(&str, &str)> = limits.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let process = spawn_process(&broker.brokers(), "alerts", &env).await;
    let (pid, port) = (process.child.id(), process.port());
    let at_start = test_kit::process::memory_bytes(pid, "VmHWM").expect("the process's peak RSS");

    let mut uploads = Vec::new();
    for _ in 0..SENDERS {
        uploads.push(PartialUpload::start(&process.ops_url, body, body.len() - 10, true).await);
    }
    wait::until("ingest to have read what the senders sent", Duration::from_secs(30), || async {
        match unread_bytes(port) {
            0 => Ok(()),
            unread => Err(unread),
        }
    })
    .await;
    if stalled_broker {
        broker.pause();
    }
    let statuses = futures::future::join_all(uploads.into_iter().map(PartialUpload::finish)).await;
    let peak = test_kit::process::memory_bytes(pid, "VmHWM").expect("the process's peak RSS");
    let deadline_passed = if stalled_broker {
        let metrics = reqwest::get(format!("{}/metrics", process.ops_url)).await.unwrap().text().await.unwrap();
        Some(sample(&metrics, "ingest_rejections_total{reason=\"deadline_exceeded\"}"))
    } else {
        None
    };
    broker.resume();
    eprintln!(
        "peak RSS {} MiB (at start {} MiB): {SENDERS} concurrent uploads of {} KiB bodies, max_in_flight_bytes {} \
         MiB, broker stalled: {stalled_broker}; answers {statuses:?}",
        peak >> 20,
        at_start >> 20,
        body.len() >> 10,
        MAX_IN_FLIGHT_BYTES >> 20
    );
    (peak - at_start, statuses, deadline_passed)
}

/// What the process may add to its peak: each admitted byte held about twice (a body and its parsed form, or the
/// encoded records and the producer's copy), with headroom for the allocator. Without admission the same load
/// takes several times the budget.
const PEAK_BOUND: u64 = 3 * MAX_IN_FLIGHT_BYTES as u64;

#[tokio::test(flavor = "multi_thread")]
async fn peak_memory_under_the_worst_bodies_stays_within_the_in_flight_budget() {
    let body = worst_allowed_webhook(1, MAX_BODY_BYTES, MAX_RECORD_BYTES_PER_BODY);
    let (added, statuses, _) = peak_memory_under_concurrent_uploads(&body, false).await;
    let accepted = statuses.iter().filter(|status| **status == 200).count();
    assert!(statuses.iter().all(|status| matches!(status, 200 | 503)), "only 200 and 503: {statuses:?}");
    assert!(accepted > 0 && accepted < SENDERS, "some bodies accepted, not all: {statuses:?}");
    assert!(added <= PEAK_BOUND, "peak RSS grew by {} MiB, over {} MiB", added >> 20, PEAK_BOUND >> 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_waiting_for_kafka_hold_their_admitted_bytes_not_their_decoded_form() {
    let body = short_labels_webhook(1, MAX_BODY_BYTES);
    let (added, statuses, deadline_passed) = peak_memory_under_concurrent_uploads(&body, true).await;
    // Nothing can be acknowledged by a frozen broker: every answer is a 503, from admission or the deadline, and
    // the bodies admitted did wait for Kafka until their deadline.
    assert!(statuses.iter().all(|status| *status == 503), "only 503: {statuses:?}");
    assert!(deadline_passed >= Some(1.0), "no body waited for Kafka: {deadline_passed:?} passed their deadline");
    assert!(added <= PEAK_BOUND, "peak RSS grew by {} MiB, over {} MiB", added >> 20, PEAK_BOUND >> 20);
}
