//! HTTPS with the configured certificate and key (rustls).

use crate::helpers::spawn_app;
use ingest::configuration::TlsSettings;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use test_kit::fixtures::captured_webhooks;
use test_kit::metrics::sample;
use test_kit::wait;

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

/// The application protocol ingest chooses in a TLS handshake with a client that offers HTTP/2 first.
async fn protocol_chosen_for_an_http2_client(address: &str, dir: &Path) -> Option<Vec<u8>> {
    let tls = tls_connection(address, dir, vec![b"h2".to_vec(), b"http/1.1".to_vec()]).await;
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

/// A TLS connection to ingest, trusting the CA in `dir`, offering the application protocols `alpn`.
async fn tls_connection(
    address: &str,
    dir: &Path,
    alpn: Vec<Vec<u8>>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    let tcp = tokio::net::TcpStream::connect(address.trim_start_matches("https://")).await.unwrap();
    let server_name = ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(server_name, tcp).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_connection_that_stops_sending_is_shut_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let tls = certificate(dir.path());
    let app = spawn_app(1, move |settings| {
        settings.server.tls = Some(tls);
        settings.server.request_timeout = Duration::from_secs(1);
    })
    .await;
    let mut connection = tls_connection(&app.address, dir.path(), vec![b"http/1.1".to_vec()]).await;
    // One request answered, then a byte of the next head and nothing more (actix times only the first head).
    connection.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    let mut status = [0u8; 12];
    connection.read_exact(&mut status).await.unwrap();
    assert_eq!(&status, b"HTTP/1.1 200");
    connection.write_all(b"G").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), connection.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is still open");
    assert_eq!(sample(&app.metrics().await, "ingest_connections_timed_out_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_is_not_offered_over_tls() {
    // (Plain HTTP never served HTTP/2: actix's `listen` speaks HTTP/1.1 only, prior knowledge or not.)
    let dir = tempfile::tempdir().unwrap();
    let tls = certificate(dir.path());
    let over_tls = spawn_app(1, move |settings| settings.server.tls = Some(tls)).await;
    let chosen = protocol_chosen_for_an_http2_client(&over_tls.address, dir.path()).await;
    assert_eq!(chosen.as_deref(), Some(&b"http/1.1"[..]), "HTTP/1.1 is chosen though the client prefers HTTP/2");
}

/// A new client trusting only the CA in `dir`: a new full handshake (a client's cached TLS session would be
/// resumed without the certificate being checked again).
fn client_trusting(dir: &Path) -> reqwest::Client {
    let pem = std::fs::read(dir.join("ca.pem")).unwrap();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_mismatched_pair_is_not() {
    let (served, renewed, mismatched) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tls = certificate(served.path());
    let (certificate_file, key_file) = (tls.cert_file.clone(), tls.key_file.clone());
    let app = spawn_app(1, move |settings| {
        settings.server.tls = Some(tls);
        settings.auth.reload_interval = Duration::from_millis(200);
    })
    .await;
    let healthz = format!("{}/healthz", app.address);
    assert_eq!(client_trusting(served.path()).get(&healthz).send().await.unwrap().status(), 200);

    // Renewed by a new CA, so that a client can tell which certificate it was served.
    let renewal = certificate(renewed.path());
    replace(&renewal.cert_file, &certificate_file);
    replace(&renewal.key_file, &key_file);
    wait::until("the renewed certificate to be served", Duration::from_secs(10), || async {
        match client_trusting(renewed.path()).get(&healthz).send().await {
            Ok(response) if response.status() == 200 => Ok(()),
            Ok(response) => Err(response.status().to_string()),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
    let first = client_trusting(served.path()).get(&healthz).send().await;
    assert!(first.is_err(), "the first certificate is no longer served");

    // A key that is not the certificate's (a rotation caught half-way) is refused; the renewed pair stays.
    let failures_before = sample(&app.metrics().await, "ingest_credential_reload_failures_total");
    let stranger = certificate(mismatched.path());
    replace(&stranger.key_file, &key_file);
    wait::until("the mismatched pair to be refused", Duration::from_secs(10), || async {
        match sample(&app.metrics().await, "ingest_credential_reload_failures_total") {
            failures if failures > failures_before => Ok(()),
            failures => Err(failures),
        }
    })
    .await;
    let renewed_pair = client_trusting(renewed.path()).get(&healthz).send().await.unwrap();
    assert_eq!(renewed_pair.status(), 200, "the renewed pair is still served");
}

/// Puts `source`'s content at `target` in one rename, as a rotation does.
fn replace(source: &Path, target: &Path) {
    let staged = target.with_extension("staged");
    std::fs::copy(source, &staged).unwrap();
    std::fs::rename(&staged, target).unwrap();
}
