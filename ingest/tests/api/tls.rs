//! HTTPS with the configured certificate and key (rustls).

use crate::helpers::spawn_app;
use e2e::fixtures::captured_webhooks;
use ingest::configuration::TlsSettings;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate for 127.0.0.1 signed by a throwaway CA (rustls refuses a CA certificate as the server's own),
/// made with the system's openssl. The CA certificate is left beside the server's, as `ca.pem`, where
/// `spawn_app` looks for it to trust.
fn certificate(dir: &Path) -> TlsSettings {
    let file = |name: &str| dir.join(name);
    let extensions = file("leaf.ext");
    std::fs::write(&extensions, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca", "-keyout"],
        &[file("ca.key"), "-out".into(), file("ca.pem")],
    );
    openssl(
        &["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout"],
        &[file("key.pem"), "-out".into(), file("leaf.csr")],
    );
    openssl(
        &["x509", "-req", "-days", "1", "-CAcreateserial", "-in"],
        &[
            file("leaf.csr"),
            "-CA".into(),
            file("ca.pem"),
            "-CAkey".into(),
            file("ca.key"),
            "-extfile".into(),
            extensions,
            "-out".into(),
            file("cert.pem"),
        ],
    );
    TlsSettings { cert_file: file("cert.pem"), key_file: file("key.pem") }
}

fn openssl(args: &[&str], paths: &[PathBuf]) {
    let output = Command::new("openssl").args(args).args(paths).output().expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_accepted_over_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let tls = certificate(dir.path());
    let app = spawn_app(1, move |settings| settings.server.tls = Some(tls)).await;
    assert!(app.address.starts_with("https://"));
    let response = app.post_json(captured_webhooks()[1].body.clone()).await;
    assert_eq!(response.status(), 200);
    let plain = app.address.replace("https://", "http://");
    assert!(reqwest::get(format!("{plain}/healthz")).await.is_err(), "plain HTTP is not served");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_tls_files_stop_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ingest::configuration::Settings::default();
    settings.server.port = 0;
    settings.server.tls =
        Some(TlsSettings { cert_file: dir.path().join("missing.pem"), key_file: dir.path().join("key.pem") });
    let error = ingest::startup::Application::build(&settings).await.err().expect("start-up fails");
    assert!(format!("{error:#}").contains("missing.pem"), "{error:#}");
}
