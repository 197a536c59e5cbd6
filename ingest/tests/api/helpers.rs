//! Running ingest for a test: in process on port 0 ([`spawn_app`]), or as a real process ([`IngestProcess`]) for
//! tests that kill it or signal it.

use e2e::kafka::create_topic;
use e2e::stack::{free_port, Stack};
use e2e::wait;
use ingest::configuration::Settings;
use ingest::startup::Application;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const READY_DEADLINE: Duration = Duration::from_secs(30);

/// An in-process ingest on a fresh topic.
pub struct TestApp {
    pub address: String,
    pub brokers: String,
    pub topic: String,
    pub client: reqwest::Client,
}

/// Starts ingest on the shared broker with a fresh topic of `partitions` partitions, after `customize` adjusted
/// the settings; returns once `/readyz` says ready.
pub async fn spawn_app(partitions: i32, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "ingest-test", partitions).await;
    spawn_app_on(&brokers, &topic, customize).await
}

/// Starts ingest on the given broker and topic.
pub async fn spawn_app_on(brokers: &str, topic: &str, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = Some(2);
    settings.kafka.brokers = brokers.to_owned();
    settings.kafka.topic = topic.to_owned();
    settings.kafka.probe_interval = Duration::from_millis(200);
    customize(&mut settings);
    let application = Application::build(&settings).await.expect("ingest builds");
    let (scheme, client) = match &settings.server.tls {
        Some(tls) => {
            // Tests keep their CA beside the server certificate, as ca.pem.
            let ca = tls.cert_file.with_file_name("ca.pem");
            let pem = std::fs::read(&ca).expect("the test CA certificate is readable");
            let certificate = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
            ("https", reqwest::Client::builder().add_root_certificate(certificate).build().expect("a TLS client"))
        }
        None => ("http", reqwest::Client::new()),
    };
    let address = format!("{scheme}://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let app = TestApp { address, brokers: brokers.to_owned(), topic: topic.to_owned(), client };
    app.wait_until_ready().await;
    app
}

impl TestApp {
    pub fn alerts_url(&self) -> String {
        format!("{}/alerts", self.address)
    }

    pub async fn post_json(&self, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.alerts_url())
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("ingest answers")
    }

    pub async fn readyz(&self) -> reqwest::StatusCode {
        self.client.get(format!("{}/readyz", self.address)).send().await.expect("ingest answers").status()
    }

    pub async fn wait_until_ready(&self) {
        wait::until("ingest /readyz to answer 200", READY_DEADLINE, || async {
            match self.readyz().await {
                reqwest::StatusCode::OK => Ok(()),
                other => Err(other),
            }
        })
        .await
    }

    pub async fn metrics(&self) -> String {
        self.client.get(format!("{}/metrics", self.address)).send().await.unwrap().text().await.unwrap()
    }
}

/// The `ingest` binary running as a child process, killed on drop.
pub struct IngestProcess {
    pub child: Child,
    pub address: String,
}

impl IngestProcess {
    /// Starts the binary on a free port with `INGEST_*` environment settings, and waits until it is ready.
    pub async fn spawn(brokers: &str, topic: &str, extra_env: &[(&str, &str)]) -> IngestProcess {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_ingest"))
            .env("INGEST_SERVER__PORT", port.to_string())
            .env("INGEST_KAFKA__BROKERS", brokers)
            .env("INGEST_KAFKA__TOPIC", topic)
            .env("INGEST_KAFKA__PROBE_INTERVAL", "200ms")
            .env("INGEST_LOG__FILTER", "warn")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("starting the ingest binary");
        let process = IngestProcess { child, address: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        let url = format!("{}/readyz", process.address);
        wait::until("the ingest process to be ready", READY_DEADLINE, || async {
            match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(response.status().to_string()),
                Err(err) => Err(err.to_string()),
            }
        })
        .await;
        process
    }

    pub fn alerts_url(&self) -> String {
        format!("{}/alerts", self.address)
    }
}

impl Drop for IngestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
