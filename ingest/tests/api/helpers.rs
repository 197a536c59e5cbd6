//! Running ingest for a test: in process on port 0 ([`spawn_app`]), or as a real process ([`spawn_process`]) for
//! tests that kill it or signal it.

use ingest::configuration::Settings;
use ingest::startup::Application;
use std::path::Path;
use std::time::Duration;
use test_kit::kafka::create_topic;
use test_kit::launch::IngestLaunch;
use test_kit::process::Service;
use test_kit::stack::{free_port, Stack};
use test_kit::wait;

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

/// Starts ingest on the given broker and topic; returns once `/readyz` says ready.
pub async fn spawn_app_on(brokers: &str, topic: &str, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let app = start_app_on(brokers, topic, customize).await;
    app.wait_until_ready().await;
    app
}

/// Starts ingest on the given broker and topic, ready or not (for tests of what makes it unready).
pub async fn start_app_on(brokers: &str, topic: &str, customize: impl FnOnce(&mut Settings)) -> TestApp {
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
            ("https", client_builder().add_root_certificate(certificate).build().expect("a TLS client"))
        }
        None => ("http", client_builder().build().expect("an HTTP client")),
    };
    let address = format!("{scheme}://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    TestApp { address, brokers: brokers.to_owned(), topic: topic.to_owned(), client }
}

/// The test client keeps no idle connection open, so that a test that counts ingest's connections counts its own.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_max_idle_per_host(0)
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

/// The `ingest` binary as a child process on a free port, with `extra_env` on top of the test kit's launch
/// settings; returns once it is ready. Webhooks go to `service.ops_url` + `/alerts`: ingest serves both on one port.
pub async fn spawn_process(brokers: &str, topic: &str, extra_env: &[(&str, &str)]) -> Service {
    let mut launch = IngestLaunch::new(free_port(), brokers, topic);
    // The broker probe runs often, so that the instance is ready soon after it starts (as `start_app_on`'s does).
    launch.settings.push(("INGEST_KAFKA__PROBE_INTERVAL".to_owned(), "200ms".to_owned()));
    launch.settings.extend(extra_env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    let service = launch.spawn(Path::new(env!("CARGO_BIN_EXE_ingest")));
    service.wait_until_ready(READY_DEADLINE).await;
    service
}

/// A webhook upload stopped half-way, so that a test can hold a request open while its body is being read. Plain
/// HTTP/1.1 over a socket: the test decides exactly which bytes are sent when.
pub struct PartialUpload {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
    chunked: bool,
}

impl PartialUpload {
    /// Connects to `address` (`http://host:port`), sends the request head and the first `sent` bytes of `body`.
    /// With `declare_length` the head carries `Content-Length`; without it the body is chunked.
    pub async fn start(address: &str, body: &[u8], sent: usize, declare_length: bool) -> PartialUpload {
        use tokio::io::AsyncWriteExt;
        let host = address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.expect("connecting to ingest");
        let framing = if declare_length {
            format!("Content-Length: {}", body.len())
        } else {
            "Transfer-Encoding: chunked".to_owned()
        };
        let head =
            format!("POST /alerts HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("sending the head");
        let mut upload = PartialUpload { stream, rest: Vec::new(), chunked: !declare_length };
        upload.send(&body[..sent]).await;
        upload.rest = body[sent..].to_vec();
        upload
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        if self.chunked && !bytes.is_empty() {
            self.stream.write_all(format!("{:x}\r\n", bytes.len()).as_bytes()).await.expect("a chunk header");
            self.stream.write_all(bytes).await.expect("a chunk");
            self.stream.write_all(b"\r\n").await.expect("a chunk end");
        } else {
            self.stream.write_all(bytes).await.expect("sending body bytes");
        }
    }

    /// Sends the rest of the body and returns the answer's status.
    pub async fn finish(self) -> u16 {
        self.send_rest().await.status().await
    }

    /// Sends the rest of the body, without waiting for the answer.
    pub async fn send_rest(mut self) -> PartialUpload {
        use tokio::io::AsyncWriteExt;
        let rest = std::mem::take(&mut self.rest);
        self.send(&rest).await;
        if self.chunked {
            self.stream.write_all(b"0\r\n\r\n").await.expect("the last chunk");
        }
        self
    }

    /// The port this client's end of the connection is bound to.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("a connected socket").port()
    }

    /// Hangs up without waiting for the answer: the connection is reset (RST), as by a client that gave up.
    pub fn reset(self) {
        // A zero linger makes the close send RST at once; it never blocks, so the deprecation's reason does not apply.
        #[allow(deprecated)]
        self.stream.set_linger(Some(Duration::ZERO)).expect("setting SO_LINGER");
    }

    /// Reads the answer's status without sending more of the body (ingest may answer before reading it).
    pub async fn status(&mut self) -> u16 {
        use tokio::io::AsyncReadExt;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n") {
            let read = self.stream.read(&mut byte).await.expect("reading the answer");
            assert!(read == 1, "the connection closed before an answer: {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        let line = String::from_utf8_lossy(&head);
        line.split(' ').nth(1).and_then(|status| status.parse().ok()).unwrap_or_else(|| panic!("a status line: {line}"))
    }
}
