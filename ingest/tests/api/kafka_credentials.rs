//! Kafka credentials read from files follow their files: a rotated client certificate is taken by a new producer
//! without a restart. The broker is behind a TLS front (HAProxy) that lets in only clients presenting a
//! certificate its client CA signed, so ingest reaches Kafka only once it uses the rotated certificate.

use crate::helpers::{start_app_on, TestApp};
use ingest::configuration::Settings;
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;
use test_kit::fixtures::captured_webhooks;
use test_kit::metrics::sample;
use test_kit::stack::TlsBroker;
use test_kit::tls::{ClientCertificate, TestPki};
use test_kit::wait;

/// A directory mounted as Kubernetes mounts a secret: each file a link through `..data`, a link to the directory
/// of the current version, which a rotation replaces in one rename (so the files change together).
struct SecretMount {
    dir: tempfile::TempDir,
    versions: u32,
}

impl SecretMount {
    fn new(files: &[(&str, &str)]) -> SecretMount {
        let mut mount = SecretMount { dir: tempfile::tempdir().unwrap(), versions: 0 };
        mount.rotate(files);
        for (name, _) in files {
            symlink(Path::new("..data").join(name), mount.path(name)).unwrap();
        }
        mount
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn rotate(&mut self, files: &[(&str, &str)]) {
        self.versions += 1;
        let version = format!("..version-{}", self.versions);
        std::fs::create_dir(self.path(&version)).unwrap();
        for (name, content) in files {
            std::fs::write(self.path(&version).join(name), content).unwrap();
        }
        symlink(&version, self.path("..data.staged")).unwrap();
        std::fs::rename(self.path("..data.staged"), self.path("..data")).unwrap();
    }
}

fn secret_files(certificate: &ClientCertificate) -> [(&'static str, &str); 2] {
    [("tls.crt", certificate.certificate_pem.as_str()), ("tls.key", certificate.key_pem.as_str())]
}

/// How ingest is told where its client certificate is.
#[derive(Clone, Copy)]
enum Given {
    /// `ssl.certificate.location` and `ssl.key.location`: files librdkafka reads itself.
    ByLocation,
    /// `kafka.property_files` for `ssl.certificate.pem` and `ssl.key.pem`: files ingest reads.
    AsPropertyFiles,
}

/// The CAs of a test: the broker's certificate, the client certificates the front admits, and others it refuses.
struct Authorities {
    server: TestPki,
    clients: TestPki,
    strangers: TestPki,
}

impl Authorities {
    fn generate() -> Authorities {
        Authorities {
            server: TestPki::generate("alerthaven test CA", &["127.0.0.1"]),
            clients: TestPki::generate("kafka clients CA", &["clients.invalid"]),
            strangers: TestPki::generate("some other CA", &["strangers.invalid"]),
        }
    }
}

/// Starts ingest on `broker` over TLS, its client certificate and key in `mount` (`tls.crt`, `tls.key`) given as
/// `given` says, read again every 200 ms; `customize` adjusts the settings further.
async fn start_ingest(
    broker: &TlsBroker,
    authorities: &Authorities,
    mount: &SecretMount,
    given: Given,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    let (certificate, key) = (mount.path("tls.crt"), mount.path("tls.key"));
    start_app_on(&broker.brokers(), "alerts", |settings| {
        settings.auth.reload_interval = Duration::from_millis(200);
        let properties = &mut settings.kafka.properties;
        properties.insert("security.protocol", "ssl");
        properties.insert("ssl.ca.location", authorities.server.ca_file().to_str().unwrap());
        match given {
            Given::ByLocation => {
                properties.insert("ssl.certificate.location", certificate.to_str().unwrap());
                properties.insert("ssl.key.location", key.to_str().unwrap());
            }
            Given::AsPropertyFiles => {
                let files =
                    BTreeMap::from([("ssl.certificate.pem".to_owned(), certificate), ("ssl.key.pem".to_owned(), key)]);
                settings.kafka.property_files = files.into();
                properties.read_files(&settings.kafka.property_files).unwrap();
            }
        }
        customize(settings);
    })
    .await
}

/// Waits until the metric `name` of `app` is above `before`.
async fn wait_for_metric_above(app: &TestApp, name: &str, before: f64) {
    wait::until(&format!("{name} above {before}"), Duration::from_secs(30), || async {
        match sample(&app.metrics().await, name) {
            count if count > before => Ok(()),
            count => Err(count),
        }
    })
    .await;
}

async fn a_rotated_client_certificate_is_taken_without_a_restart(given: Given) {
    let authorities = Authorities::generate();
    let Authorities { clients, strangers, .. } = &authorities;
    let broker = TlsBroker::start_verifying_clients(&authorities.server, &clients.ca_file());
    let mut mount = SecretMount::new(&secret_files(&strangers.client_certificate("alerthaven-ingest")));
    let app = start_ingest(&broker, &authorities, &mount, given, |_| {}).await;
    wait_for_metric_above(&app, "ingest_broker_probe_failures_total", 2.0).await;
    assert_eq!(app.readyz().await, 503, "a certificate from a CA the front does not trust keeps ingest unready");
    let reloads = sample(&app.metrics().await, "ingest_credential_reloads_total");

    mount.rotate(&secret_files(&clients.client_certificate("alerthaven-ingest")));
    app.wait_until_ready().await;
    let response = app.post_json(captured_webhooks()[1].body.clone()).await;
    assert_eq!(response.status(), 200, "the body reached Kafka with the rotated certificate");
    let metrics = app.metrics().await;
    assert_eq!(sample(&metrics, "ingest_credential_reloads_total"), reloads + 1.0, "one rotation, one new producer");

    // A rotation gone wrong (a key that is not the certificate's) is refused and the producer in use stays.
    let failures_before = sample(&metrics, "ingest_credential_reload_failures_total");
    let (one, other) = (clients.client_certificate("one"), clients.client_certificate("other"));
    mount.rotate(&[("tls.crt", one.certificate_pem.as_str()), ("tls.key", other.key_pem.as_str())]);
    wait_for_metric_above(&app, "ingest_credential_reload_failures_total", failures_before).await;
    let response = app.post_json(captured_webhooks()[2].body.clone()).await;
    assert_eq!(response.status(), 200, "the producer in use still reaches Kafka");
    assert_eq!(app.readyz().await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_client_certificate_named_by_location_is_taken_without_a_restart() {
    a_rotated_client_certificate_is_taken_without_a_restart(Given::ByLocation).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_client_certificate_given_as_property_files_is_taken_without_a_restart() {
    a_rotated_client_certificate_is_taken_without_a_restart(Given::AsPropertyFiles).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_the_brokers_refuse_do_not_replace_the_producer_in_use() {
    let authorities = Authorities::generate();
    let broker = TlsBroker::start_verifying_clients(&authorities.server, &authorities.clients.ca_file());
    let mut mount = SecretMount::new(&secret_files(&authorities.clients.client_certificate("admitted")));
    let app = start_ingest(&broker, &authorities, &mount, Given::ByLocation, |_| {}).await;
    app.wait_until_ready().await;
    let metrics = app.metrics().await;
    let reloads = sample(&metrics, "ingest_credential_reloads_total");
    let failures = sample(&metrics, "ingest_credential_reload_failures_total");

    // A certificate and its own key, readable and valid, but from a CA the front does not trust.
    mount.rotate(&secret_files(&authorities.strangers.client_certificate("refused")));
    wait_for_metric_above(&app, "ingest_credential_reload_failures_total", failures).await;
    let response = app.post_json(captured_webhooks()[1].body.clone()).await;
    assert_eq!(response.status(), 200, "the producer in use still reaches Kafka");
    assert_eq!(app.readyz().await, 200);
    assert_eq!(sample(&app.metrics().await, "ingest_credential_reloads_total"), reloads, "no producer replaced");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_in_flight_at_a_rotation_are_delivered_by_the_producer_they_were_handed_to() {
    let authorities = Authorities::generate();
    let broker = TlsBroker::start_verifying_clients(&authorities.server, &authorities.clients.ca_file());
    let mut mount = SecretMount::new(&secret_files(&authorities.clients.client_certificate("first")));
    // Time enough for the request to outlast a rotation and two probes against the frozen broker.
    let app = start_ingest(&broker, &authorities, &mount, Given::ByLocation, |settings| {
        settings.server.request_timeout = Duration::from_secs(20);
    })
    .await;
    app.wait_until_ready().await;

    broker.pause();
    let (client, url) = (app.client.clone(), app.alerts_url());
    let body = captured_webhooks()[1].body.clone();
    let posting = tokio::spawn(async move {
        client.post(url).header("Content-Type", "application/json").body(body).send().await.map(|r| r.status())
    });
    wait_for_metric_above(&app, "ingest_in_flight_records", 0.0).await;
    let reloads = sample(&app.metrics().await, "ingest_credential_reloads_total");
    mount.rotate(&secret_files(&authorities.clients.client_certificate("second")));
    wait_for_metric_above(&app, "ingest_credential_reloads_total", reloads).await;
    // Two failed probes after the rotation: at least one started after it, and dropped the retired producers
    // that were done.
    let probes = sample(&app.metrics().await, "ingest_broker_probe_failures_total");
    wait_for_metric_above(&app, "ingest_broker_probe_failures_total", probes + 1.0).await;

    broker.resume();
    let status = posting.await.unwrap().expect("ingest answers");
    assert_eq!(status, 200, "the records handed to the replaced producer were delivered, not purged with it");
}
