//! The running test stack, and private components for tests that must stop one.
//!
//! `scripts/test.sh` starts the shared stack and exports its addresses; [`Stack::from_env`] reads them and fails
//! loudly when they are missing, because a test that needs a component must fail, not skip, without it. Tests that
//! stop a component (a broker outage, say) start a private one with the same project script, on a free port in a
//! directory of their own, so the shared stack other tests use concurrently is never disturbed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Addresses of the shared test stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kafka_brokers: String,
    pub deephaven_url: String,
    pub prometheus_url: String,
    pub alertmanager_url: String,
    /// Where the stack's Alertmanager sends its webhooks.
    pub ingest_port: u16,
}

impl Stack {
    /// Reads the stack's addresses from the environment `scripts/test.sh` sets up.
    pub fn from_env() -> Stack {
        Stack {
            kafka_brokers: required("KAFKA_BROKERS"),
            deephaven_url: required("DEEPHAVEN_URL"),
            prometheus_url: required("PROMETHEUS_URL"),
            alertmanager_url: required("ALERTMANAGER_URL"),
            ingest_port: required("INGEST_PORT").parse().expect("INGEST_PORT is a port number"),
        }
    }
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. These tests run against the real local stack: run scripts/test.sh, or start it with \
             scripts/stack-up.sh and `source .stack/env` first."
        )
    })
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate lives in the repository").to_owned()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("binding port 0").port()
}

/// A Kafka-protocol broker of the test's own, started by `scripts/broker.sh`, stopped on drop.
pub struct PrivateBroker {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateBroker {
    /// Starts a broker with the alerts topic (`partitions` partitions) and returns once it is ready.
    pub fn start(partitions: u32) -> PrivateBroker {
        let broker = PrivateBroker { dir: tempfile::tempdir().expect("a temporary directory"), port: free_port() };
        std::fs::write(broker.dir.path().join("partitions"), partitions.to_string()).expect("writing the settings");
        broker.run("start");
        broker
    }

    /// `host:port` for clients.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker; its topics and records are gone (memory storage).
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Starts it again on the same port, with the topics re-created empty.
    pub fn restart(&self) {
        self.run("start");
    }

    fn run(&self, action: &str) {
        let partitions = std::fs::read_to_string(self.dir.path().join("partitions")).expect("reading the settings");
        let output = Command::new("bash")
            .arg(repo_root().join("scripts/broker.sh"))
            .arg(action)
            .env("STACK_DIR", self.dir.path())
            .env("BROKER_PORT", self.port.to_string())
            .env("TOPIC_PARTITIONS", partitions)
            .output()
            .expect("running scripts/broker.sh");
        assert!(
            output.status.success(),
            "scripts/broker.sh {action} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/broker.sh"))
            .arg("stop")
            .env("STACK_DIR", self.dir.path())
            .env("BROKER_PORT", self.port.to_string())
            .output();
    }
}
