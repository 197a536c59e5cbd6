//! Secrets rotated under a running publisher: a changed secret file restarts the pipeline with it.

use crate::delivery::synthetic_records;
use crate::helpers::*;
use deephaven_client::{Auth, Client, ClientConfig, InputTable, InputTableKind};
use publisher::configuration::Settings;
use publisher::pipeline::Mode;
use schemas::tables::{KafkaPosition, PositionedRecord, TableNames, LOG};
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use test_kit::metrics::sample;
use test_kit::names::unique_name;
use test_kit::stack::{PrivateDeephaven, Stack, TlsBroker};
use test_kit::tls::{ClientCertificate, TestPki};
use test_kit::wait;

/// Puts `content` at `path` in one rename, as a rotation does.
fn rotate(path: &Path, content: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, content).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// A client of a Deephaven that wants the pre-shared key `key`.
async fn client_with_key(url: &str, key: &str) -> Client {
    let config = ClientConfig::new(url.to_owned()).with_auth(Auth::psk(key));
    Client::connect(config).await.expect("Deephaven answers")
}

/// A publisher whose Deephaven PSK is read from a file holding `key`, read again every 200 ms.
fn with_psk_file(mut settings: Settings, secrets: &Path, key: &str) -> (Settings, PathBuf) {
    let psk_file = secrets.join("psk");
    std::fs::write(&psk_file, format!("{key}\n")).unwrap();
    settings.server.reload_interval = Duration::from_millis(200);
    settings.deephaven.psk_file = Some(psk_file.clone());
    settings.deephaven.psk = Some(SecretString::from(key));
    (settings, psk_file)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_psk_file_releases_a_halted_publisher_and_it_publishes_with_the_new_key() {
    let deephaven = PrivateDeephaven::start(Some("the-right-key"), None);
    let setup = setup_with(1, &deephaven.url()).await;
    let records = synthetic_records(2, 7_000);
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    let secrets = tempfile::tempdir().unwrap();
    let (settings, psk_file) = with_psk_file(setup.settings(), secrets.path(), "a-wrong-key");
    let publisher = spawn_publisher(settings, Mode::Follow).await;
    publisher.wait_for_readiness("the publisher to halt", |readiness| readiness.halted.is_some()).await;

    rotate(&psk_file, "the-right-key\n");
    publisher.wait_for_readiness("the publisher to be ready with the new key", |readiness| readiness.ready).await;
    wait_for_tables_read_by(&client_with_key(&setup.deephaven_url, "the-right-key").await, &setup.prefix, &expected)
        .await;
    assert_eq!(sample(&publisher.metrics_text(), "publisher_secret_reloads_total"), 1.0);
    assert_eq!(sample(&publisher.metrics_text(), "publisher_halted"), 0.0);
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_halted_before_it_started_the_tables_over_still_starts_them_over_once_released() {
    let deephaven = PrivateDeephaven::start(Some("the-right-key"), None);
    let setup = setup_with(1, &deephaven.url()).await;
    let acked = produce(&setup.brokers, &setup.topic, &synthetic_records(2, 9_000)).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    let reader = client_with_key(&setup.deephaven_url, "the-right-key").await;
    let mut settings = setup.settings();
    settings.deephaven.psk = Some(SecretString::from("the-right-key"));
    let follower = spawn_publisher(settings, Mode::Follow).await;
    wait_for_tables_read_by(&reader, &setup.prefix, &expected).await;
    follower.stop().await;

    // A row that no record of the topic holds, far past the partition's end: only tables started over lose it (a
    // publisher that follows would also resume after its offset, and read nothing more).
    let stray = PositionedRecord {
        record: synthetic_records(1, 9_500).remove(0),
        position: KafkaPosition { incarnation: 0, partition: 0, offset: 1_000_000 },
    };
    let log = InputTable::new(&TableNames::with_prefix(&setup.prefix).log, LOG.schema(), InputTableKind::Blink);
    reader.append(&log, LOG.batch(&[stray])).await.expect("the stray row appended");
    wait::until_true("the stray row in the tables", TABLES_DEADLINE, || async {
        read_tables(&reader, &setup.prefix).await != expected
    })
    .await;

    // The replay is refused before it could start the tables over; a rotated key releases it.
    let secrets = tempfile::tempdir().unwrap();
    let (settings, psk_file) = with_psk_file(setup.settings(), secrets.path(), "a-wrong-key");
    let replayer = spawn_publisher(settings, Mode::Replay).await;
    replayer.wait_for_readiness("the replay to halt", |readiness| readiness.halted.is_some()).await;
    rotate(&psk_file, "the-right-key\n");
    wait_for_tables_read_by(&reader, &setup.prefix, &expected).await;
    assert_eq!(sample(&replayer.metrics_text(), "publisher_secret_reloads_total"), 1.0);
    replayer.stop().await;
}

/// A client certificate and its key written as files, for `ssl.certificate.location` and `ssl.key.location`.
struct CertificateFiles {
    dir: tempfile::TempDir,
}

impl CertificateFiles {
    fn new(certificate: &ClientCertificate) -> CertificateFiles {
        let files = CertificateFiles { dir: tempfile::tempdir().unwrap() };
        files.rotate(certificate);
        files
    }

    fn certificate(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    fn rotate(&self, certificate: &ClientCertificate) {
        rotate(&self.key(), &certificate.key_pem);
        rotate(&self.certificate(), &certificate.certificate_pem);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_kafka_client_certificate_restarts_the_pipeline_and_it_consumes_with_it() {
    let server = TestPki::generate("alerthaven test CA", &["127.0.0.1"]);
    let clients = TestPki::generate("kafka clients CA", &["clients.invalid"]);
    let strangers = TestPki::generate("some other CA", &["strangers.invalid"]);
    let broker = TlsBroker::start_verifying_clients(&server, &clients.ca_file());
    let ca = server.ca_file().display().to_string();

    // The test's own producer presents a certificate the front admits.
    let producing = clients.client_certificate("the test");
    let tls = [("security.protocol", "ssl"), ("ssl.ca.location", ca.as_str())];
    let producer_tls = [
        tls.as_slice(),
        &[("ssl.certificate.pem", producing.certificate_pem.as_str()), ("ssl.key.pem", producing.key_pem.as_str())],
    ]
    .concat();
    let records = synthetic_records(2, 8_000);
    let acked = produce_with(&producer_tls, &broker.brokers(), "alerts", &records).await;
    let positioned: Vec<_> =
        records.iter().zip(&acked).map(|(record, (partition, offset))| (record.clone(), *partition, *offset)).collect();
    let first = expected(&positioned);

    let files = CertificateFiles::new(&strangers.client_certificate("the publisher"));
    let setup = Setup {
        brokers: broker.brokers(),
        topic: "alerts".to_owned(),
        dlq_topic: "alerts.dlq".to_owned(),
        deephaven_url: Stack::from_env().deephaven_url,
        prefix: format!("{}_", unique_name("t")),
        group_id: unique_name("group"),
    };
    let mut settings = setup.settings();
    settings.server.reload_interval = Duration::from_millis(200);
    for (name, value) in tls {
        settings.kafka.properties.insert(name, value);
    }
    settings.kafka.properties.insert("ssl.certificate.location", files.certificate().to_str().unwrap());
    settings.kafka.properties.insert("ssl.key.location", files.key().to_str().unwrap());
    let publisher = spawn_publisher(settings, Mode::Follow).await;
    // The consumer is created before Deephaven is connected: from here on it holds the refused certificate.
    publisher.wait_for_readiness("Deephaven connected, Kafka refused", |ready| ready.deephaven && !ready.kafka).await;

    // A rotation gone wrong first (a key that is not the certificate's): refused, the pipeline left running.
    let (one, other) = (clients.client_certificate("one"), clients.client_certificate("other"));
    files.rotate(&ClientCertificate { certificate_pem: one.certificate_pem, key_pem: other.key_pem });
    wait::until_true("the mismatched pair to be refused", TABLES_DEADLINE, || async {
        sample(&publisher.metrics_text(), "publisher_secret_reload_failures_total") >= 1.0
    })
    .await;
    files.rotate(&clients.client_certificate("the publisher"));
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &first).await;
    assert_eq!(sample(&publisher.metrics_text(), "publisher_secret_reloads_total"), 1.0, "one rotation, one restart");

    // A certificate the front refuses, readable and whole: the pipeline runs on with the one that works.
    let failures = sample(&publisher.metrics_text(), "publisher_secret_reload_failures_total");
    files.rotate(&strangers.client_certificate("the publisher again"));
    wait::until_true("the refused certificate to be refused", TABLES_DEADLINE, || async {
        sample(&publisher.metrics_text(), "publisher_secret_reload_failures_total") > failures
    })
    .await;
    let more = synthetic_records(1, 8_100);
    let acked = produce_with(&producer_tls, &broker.brokers(), "alerts", &more).await;
    let positioned: Vec<_> = positioned
        .into_iter()
        .chain(more.iter().zip(&acked).map(|(record, (partition, offset))| (record.clone(), *partition, *offset)))
        .collect();
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected(&positioned)).await;
    assert_eq!(sample(&publisher.metrics_text(), "publisher_secret_reloads_total"), 1.0, "no restart for it");
    publisher.stop().await;
}
