//! Credentials as Alertmanager's `http_config` sends them, rotation included.

use crate::helpers::{spawn_app, spawn_process, TestApp};
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;
use test_kit::fixtures::captured_webhooks;
use test_kit::kafka::create_topic;
use test_kit::metrics::sample;
use test_kit::process::Service;
use test_kit::process::Signal;
use test_kit::stack::Stack;
use test_kit::wait;

/// The token and basic credentials the captured receivers were configured with.
const CAPTURED_TOKEN: &str = "lab-bearer-token-123";

async fn app_with_rotating_credentials() -> TestApp {
    let basic = captured_basic_credentials();
    spawn_app(1, move |settings| {
        settings.auth.bearer_tokens = vec![CAPTURED_TOKEN.into(), "next-token".into()];
        settings.auth.basic_credentials = vec![basic.into()];
    })
    .await
}

/// `user:password` from the captured basic-auth request.
fn captured_basic_credentials() -> String {
    use base64::Engine;
    let capture = captured_webhooks().into_iter().find(|c| c.name == "004").unwrap();
    let (_, header) = capture.headers.iter().find(|(name, _)| name == "Authorization").unwrap();
    let encoded = header.strip_prefix("Basic ").unwrap();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
}

async fn post(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.alerts_url())
        .header("Content-Type", "application/json")
        .body(captured_webhooks()[1].body.clone());
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn captured_credentials_and_rotated_ones_are_accepted() {
    let app = app_with_rotating_credentials().await;
    for capture in captured_webhooks() {
        let authorization =
            capture.headers.iter().find(|(name, _)| name == "Authorization").map(|(_, value)| value.as_str());
        let response = post(&app, authorization).await;
        let expected = if authorization.is_some() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
        assert_eq!(response.status(), expected, "{}", capture.name);
    }
    assert_eq!(post(&app, Some("Bearer next-token")).await.status(), StatusCode::OK, "the rotated-in token works too");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_wrong_credentials_get_401_with_a_challenge() {
    let app = app_with_rotating_credentials().await;
    use base64::Engine;
    let (user, _) = captured_basic_credentials().split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())).unwrap();
    let wrong_password = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:wrong")));
    for authorization in [
        None,
        Some("Bearer wrong-token"),
        Some("Bearer lab-bearer-token-12"),
        Some(wrong_password.as_str()),
        Some("Digest x"),
    ] {
        let response = post(&app, authorization).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        let challenges: Vec<_> =
            response.headers().get_all("WWW-Authenticate").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Bearer ")) && challenges.iter().any(|c| c.starts_with("Basic ")),
            "{challenges:?}"
        );
        let body = response.text().await.unwrap();
        assert!(!body.contains(CAPTURED_TOKEN) && !body.contains("wrong-token"), "no credential echoed: {body}");
    }
    // Health, readiness and metrics stay open for probes and scrapers.
    assert_eq!(app.readyz().await, StatusCode::OK);
}

/// Posts a captured body to a running binary.
async fn post_to(process: &Service, authorization: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{}/alerts", process.ops_url))
        .header("Content-Type", "application/json")
        .header("Authorization", authorization)
        .body(captured_webhooks()[1].body.clone())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_from_the_environment_are_taken_verbatim() {
    use base64::Engine;
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-secrets", 1).await;
    let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
    // Leading zeros, more digits than any integer holds, a comma: each a whole token, as Alertmanager sends it.
    for token in ["007123", "123456789012345678901234567890", "abc,def"] {
        let process = spawn_process(
            &brokers,
            &topic,
            &[("INGEST_AUTH__BEARER_TOKENS", token), ("INGEST_AUTH__BASIC_CREDENTIALS", "alice:0042,x")],
        )
        .await;
        assert_eq!(post_to(&process, &format!("Bearer {token}")).await, StatusCode::OK, "{token}");
        for part in ["7123", "abc", "def"] {
            assert_eq!(post_to(&process, &format!("Bearer {part}")).await, StatusCode::UNAUTHORIZED, "{token}: {part}");
        }
        assert_eq!(post_to(&process, &basic("alice:0042,x")).await, StatusCode::OK);
        assert_eq!(post_to(&process, &basic("alice:42")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(post_to(&process, &basic("alice:0042")).await, StatusCode::UNAUTHORIZED);
    }
}

/// Replaces a mounted secret the way Kubernetes does: the new content is written beside it and renamed over it.
fn rotate(file: &Path, content: &str) {
    let staged = file.with_extension("staged");
    std::fs::write(&staged, content).unwrap();
    std::fs::rename(&staged, file).unwrap();
}

/// Turns an answer into a wait condition: done at 200.
fn accepted(status: StatusCode) -> Result<(), StatusCode> {
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(status)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_token_file_takes_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "before-rotation\n").unwrap();
    let token_file = file.clone();
    let app = spawn_app(1, move |settings| {
        settings.auth.bearer_token_files = vec![token_file];
        settings.auth.reload_interval = Duration::from_millis(200);
    })
    .await;
    assert_eq!(post(&app, Some("Bearer before-rotation")).await.status(), StatusCode::OK);

    rotate(&file, "after-rotation\n");
    wait::until("the rotated token to be accepted", Duration::from_secs(10), || async {
        accepted(post(&app, Some("Bearer after-rotation")).await.status())
    })
    .await;
    assert_eq!(post(&app, Some("Bearer before-rotation")).await.status(), StatusCode::UNAUTHORIZED);

    // A rotation caught half-way (the file gone) keeps the credentials in effect.
    std::fs::remove_file(&file).unwrap();
    wait::until("a failed reading to be counted", Duration::from_secs(10), || async {
        match sample(&app.metrics().await, "ingest_credential_reload_failures_total") {
            failures if failures >= 1.0 => Ok(()),
            failures => Err(failures),
        }
    })
    .await;
    assert_eq!(post(&app, Some("Bearer after-rotation")).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reads_the_credential_files_again() {
    use base64::Engine;
    let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-sighup", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(&file, "alertmanager:before\n").unwrap();
    let path = file.display().to_string();
    // An hour between readings: within the test, only the signal can make the new password count.
    let process = spawn_process(
        &brokers,
        &topic,
        &[("INGEST_AUTH__BASIC_CREDENTIAL_FILES", path.as_str()), ("INGEST_AUTH__RELOAD_INTERVAL", "1h")],
    )
    .await;
    assert_eq!(post_to(&process, &basic("alertmanager:before")).await, StatusCode::OK);

    rotate(&file, "alertmanager:after\n");
    test_kit::process::send_signal(&process.child, Signal::SIGHUP);
    wait::until("the new password to be accepted after SIGHUP", Duration::from_secs(10), || async {
        accepted(post_to(&process, &basic("alertmanager:after")).await)
    })
    .await;
    assert_eq!(post_to(&process, &basic("alertmanager:before")).await, StatusCode::UNAUTHORIZED);
}
