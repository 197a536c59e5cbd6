//! Credentials as Alertmanager's `http_config` sends them, rotation included.

use crate::helpers::{spawn_app, IngestProcess, TestApp};
use e2e::fixtures::captured_webhooks;
use e2e::kafka::create_topic;
use e2e::stack::Stack;
use reqwest::StatusCode;

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
async fn post_to(process: &IngestProcess, authorization: &str) -> StatusCode {
    reqwest::Client::new()
        .post(process.alerts_url())
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
        let process = IngestProcess::spawn(
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
