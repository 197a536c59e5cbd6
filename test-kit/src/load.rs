//! A steady webhook load whose every alert can be traced: the ledger records each alert state sent and which
//! ones ingest acknowledged (answered 200), so a test can check that Deephaven holds exactly those, once.
//!
//! Each worker posts one body every `interval`, of `alerts_per_body` realistic alerts (see
//! [`crate::fixtures::synthetic_webhook`]); every fifth body resolves the alerts of the body four before it, so the
//! load carries transitions, not only new alerts. Bodies are never retried: an answer other than 200 leaves its
//! alerts unacknowledged, as Alertmanager would see it (it would retry; the test does not need to).

use crate::fixtures::{synthetic_resolve, synthetic_webhook};
use schemas::{parse, AlertRecord, Limits, Timestamp};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What was sent and what was acknowledged, by event id (an alert state).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Every alert state sent: event id -> (fingerprint, status).
    pub sent: BTreeMap<String, (String, String)>,
    /// The alert states in bodies ingest answered 200.
    pub acknowledged: BTreeMap<String, (String, String)>,
    /// Answers by HTTP status; 0 counts requests that got no answer.
    pub answers: BTreeMap<u16, u64>,
}

impl Ledger {
    /// Adds `other`'s entries and answers to this ledger.
    pub fn merge(&mut self, other: Ledger) {
        self.sent.extend(other.sent);
        self.acknowledged.extend(other.acknowledged);
        for (status, count) in other.answers {
            *self.answers.entry(status).or_default() += count;
        }
    }

    pub fn answered(&self, status: u16) -> u64 {
        self.answers.get(&status).copied().unwrap_or_default()
    }
}

/// The shape of the load.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub workers: u64,
    pub interval: Duration,
    pub alerts_per_body: usize,
    /// Batch numbers (see [`synthetic_webhook`]) start here; distinct loads need distinct ranges.
    pub first_batch: u64,
}

/// A running load; [`Load::stop`] ends it and returns the ledger.
pub struct Load {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Load {
    pub fn start(url: &str, shape: Shape) -> Load {
        let (stop, stopped) = watch::channel(false);
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("an HTTP client");
        let workers = (0..shape.workers)
            .map(|worker| {
                let (url, http, stopped, ledger) = (url.to_owned(), http.clone(), stopped.clone(), Arc::clone(&ledger));
                tokio::spawn(run_worker(url, http, shape, worker, stopped, ledger))
            })
            .collect();
        Load { stop, workers, ledger }
    }

    /// A copy of the ledger so far.
    pub fn ledger(&self) -> Ledger {
        self.ledger.lock().expect("the ledger lock").clone()
    }

    /// Stops sending, waits for the answers in flight, and returns the whole ledger.
    pub async fn stop(self) -> Ledger {
        self.stop.send(true).expect("workers listen");
        for worker in self.workers {
            worker.await.expect("a load worker panicked");
        }
        Arc::try_unwrap(self.ledger).map(|ledger| ledger.into_inner().expect("the ledger lock")).unwrap_or_default()
    }
}

async fn run_worker(
    url: String,
    http: reqwest::Client,
    shape: Shape,
    worker: u64,
    mut stopped: watch::Receiver<bool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let mut ticks = tokio::time::interval(shape.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for body_index in 0u64.. {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
        let batch = |index: u64| shape.first_batch + index * shape.workers + worker;
        let (body, _) = if body_index % 5 == 4 {
            synthetic_resolve(batch(body_index - 4), shape.alerts_per_body)
        } else {
            synthetic_webhook(batch(body_index), shape.alerts_per_body)
        };
        let states = alert_states(&body);
        let mut entry = Ledger::default();
        entry.sent.extend(states.clone());
        let status = match http.post(&url).header("content-type", "application/json").body(body).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        if status == 200 {
            entry.acknowledged.extend(states);
        }
        entry.answers.insert(status, 1);
        ledger.lock().expect("the ledger lock").merge(entry);
    }
}

/// The alert states of a body, as ingest will record them: event id -> (fingerprint, status).
pub fn alert_states(body: &[u8]) -> BTreeMap<String, (String, String)> {
    let webhook = parse(body, &Limits::default()).expect("the load's bodies are valid");
    // The event id does not depend on the receive time.
    AlertRecord::from_webhook(webhook, Timestamp::from_unix_nanos(0))
        .into_iter()
        .map(|record| (record.event_id.to_string(), (record.fingerprint.to_string(), record.status.to_string())))
        .collect()
}
