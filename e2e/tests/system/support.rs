//! Running the pipeline's processes and reading what reached Deephaven.

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use deephaven_client::{Client, ClientConfig};
use std::collections::BTreeMap;
use std::time::Duration;
use test_kit::kafka::create_topic;
use test_kit::launch::{IngestLaunch, PublisherLaunch};
use test_kit::load::{Ledger, Load, Shape};
use test_kit::names::unique_name;
use test_kit::process::{built_binary, Service};
use test_kit::stack::{free_port, PrivateBalancer, Stack};
pub use test_kit::tables::Tables;
use test_kit::wait;

/// How long the pipeline may take to catch up after a fault.
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(180);
/// How long a service may take to become ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Where the pipeline's processes connect, and the names that keep one test's data apart from another's.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub brokers: String,
    pub deephaven_url: String,
    pub topic: String,
    pub dlq_topic: String,
    pub prefix: String,
    pub group_id: String,
    /// Settings ingest gets on top of the pipeline's own (`INGEST_*` variables).
    pub ingest_settings: Vec<(String, String)>,
    /// Settings the publisher gets on top of the pipeline's own (`PUBLISHER_*` variables).
    pub publisher_settings: Vec<(String, String)>,
}

impl Pipeline {
    pub fn new(brokers: &str, deephaven_url: &str, topic: &str, dlq_topic: &str) -> Pipeline {
        Pipeline {
            brokers: brokers.to_owned(),
            deephaven_url: deephaven_url.to_owned(),
            topic: topic.to_owned(),
            dlq_topic: dlq_topic.to_owned(),
            prefix: table_prefix("sys"),
            group_id: unique_name("system"),
            ingest_settings: Vec::new(),
            publisher_settings: Vec::new(),
        }
    }

    /// A pipeline on the shared test stack, on fresh topics named after `stem`.
    pub async fn on_stack(stem: &str) -> Pipeline {
        let stack = Stack::from_env();
        let topic = create_topic(&stack.kafka_brokers, stem, 6).await;
        let dlq_topic = create_topic(&stack.kafka_brokers, &format!("{stem}-dlq"), 1).await;
        Pipeline::new(&stack.kafka_brokers, &stack.deephaven_url, &topic, &dlq_topic)
    }

    /// Starts two ingest instances, HAProxy in front of them on `balancer_port`, and the live publisher; returns
    /// once all are ready.
    pub async fn start(&self, balancer_port: u16) -> Running {
        let ingest_ports = [free_port(), free_port()];
        let ingest = ingest_ports.map(|port| self.ingest(port));
        for instance in &ingest {
            instance.wait_until_ready(READY_DEADLINE).await;
        }
        let balancer = PrivateBalancer::start(balancer_port, &ingest_ports);
        let publisher = self.live_publisher();
        publisher.wait_until_ready(READY_DEADLINE).await;
        Running { ingest_ports, ingest, balancer, publisher }
    }

    /// An ingest instance on `port` (webhooks and its operations endpoint share it).
    pub fn ingest(&self, port: u16) -> Service {
        Service::spawn(&built_binary("ingest"), &[], &self.ingest_env(port), port)
    }

    /// The environment of an ingest instance on `port`.
    pub fn ingest_env(&self, port: u16) -> Vec<(String, String)> {
        let mut launch = IngestLaunch::new(port, &self.brokers, &self.topic);
        launch.settings = self.ingest_settings.clone();
        launch.env()
    }

    /// The publisher (`args` e.g. `["replay"]`), writing tables named with `prefix`.
    pub fn publisher(&self, args: &[&str], prefix: &str, deephaven_url: &str) -> Service {
        let port = free_port();
        Service::spawn(&built_binary("publisher"), args, &self.publisher_env(port, prefix, deephaven_url), port)
    }

    /// The environment of a publisher with its operations endpoint on `port`.
    pub fn publisher_env(&self, port: u16, prefix: &str, deephaven_url: &str) -> Vec<(String, String)> {
        let launch = PublisherLaunch {
            port,
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            dlq_topic: self.dlq_topic.clone(),
            group_id: format!("{}-{prefix}", self.group_id),
            deephaven_url: deephaven_url.to_owned(),
            table_prefix: prefix.to_owned(),
            settings: self.publisher_settings.clone(),
        };
        launch.env()
    }

    /// The live publisher: following the topic into this pipeline's tables.
    pub fn live_publisher(&self) -> Service {
        self.publisher(&[], &self.prefix, &self.deephaven_url)
    }
}

/// The processes of a started [`Pipeline`].
pub struct Running {
    pub ingest_ports: [u16; 2],
    pub ingest: [Service; 2],
    pub balancer: PrivateBalancer,
    pub publisher: Service,
}

/// A fresh Deephaven variable-name prefix (letters, digits, underscores).
pub fn table_prefix(stem: &str) -> String {
    format!("{}_", unique_name(stem))
}

/// Reads both tables with a session of its own (the server may have restarted since the last read).
pub async fn read_tables(url: &str, prefix: &str) -> Result<Tables, String> {
    let client = Client::connect(ClientConfig::new(url.to_owned())).await.map_err(|err| err.to_string())?;
    test_kit::tables::read_tables(&client, prefix).await
}

/// One count per key of table `name` (a missing table reads as empty): string column `key`, long column `count`.
pub async fn read_counts(url: &str, name: &str, key: &str, count: &str) -> Result<BTreeMap<String, i64>, String> {
    let client = Client::connect(ClientConfig::new(url.to_owned())).await.map_err(|err| err.to_string())?;
    let mut counts = BTreeMap::new();
    for batch in test_kit::tables::snapshot(&client, name).await? {
        let keys = batch.column_by_name(key).ok_or(format!("no {key}"))?.as_string::<i32>().clone();
        let values = batch.column_by_name(count).ok_or(format!("no {count}"))?.as_primitive::<Int64Type>().clone();
        counts.extend((0..batch.num_rows()).map(|row| (keys.value(row).to_owned(), values.value(row))));
    }
    Ok(counts)
}

/// What must hold between what ingest acknowledged and what Deephaven shows: every acknowledged alert state is
/// in `alert_events` once, nothing is there that was never sent, every alert of an event has its row in `alerts`,
/// and an alert whose resolve was acknowledged shows as resolved.
pub fn exactly_once(tables: &Tables, ledger: &Ledger) -> Result<(), String> {
    let missing: Vec<&String> = ledger.acknowledged.keys().filter(|id| !tables.events.contains_key(*id)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} of {} acknowledged alert states are not in alert_events (e.g. {:?}); it holds {}",
            missing.len(),
            ledger.acknowledged.len(),
            missing.first(),
            tables.events.len()
        ));
    }
    for (id, (fingerprint, status, _, _)) in &tables.events {
        match ledger.sent.get(id) {
            Some(sent) if sent == &(fingerprint.clone(), status.clone()) => {}
            other => return Err(format!("event {id} ({fingerprint} {status}) was never sent as such: {other:?}")),
        }
        if !tables.alerts.contains_key(fingerprint) {
            return Err(format!("alert {fingerprint} has events but no row in alerts"));
        }
    }
    if tables.alerts.len()
        != tables.events.values().map(|(fingerprint, ..)| fingerprint).collect::<std::collections::BTreeSet<_>>().len()
    {
        return Err("alerts holds rows no event accounts for".to_owned());
    }
    for (fingerprint, status) in ledger.acknowledged.values() {
        if status == "resolved" && tables.alerts[fingerprint].0 != "resolved" {
            return Err(format!("alert {fingerprint}: its resolve was acknowledged, Deephaven shows it firing"));
        }
    }
    Ok(())
}

/// Waits until Deephaven holds what `ledger` says, exactly once; returns the tables.
pub async fn wait_for_exactly_once(pipeline: &Pipeline, ledger: &Ledger) -> Tables {
    wait::until("Deephaven to hold every acknowledged alert exactly once", CATCH_UP_DEADLINE, || async {
        let tables = read_tables(&pipeline.deephaven_url, &pipeline.prefix).await?;
        exactly_once(&tables, ledger).map(|()| tables)
    })
    .await
}

/// The steady load of the system tests: 4 workers, each a body of 10 alerts every 50 ms (~800 alerts/s).
pub fn steady_load(url: &str, first_batch: u64) -> Load {
    Load::start(url, Shape { workers: 4, interval: Duration::from_millis(50), alerts_per_body: 10, first_batch })
}

/// Waits until the load has `more` acknowledged alert states beyond `since`: the pipeline is taking load.
pub async fn wait_for_acknowledgements(load: &Load, since: usize, more: usize, what: &str) {
    wait::until(&format!("{more} more acknowledged alerts {what}"), CATCH_UP_DEADLINE, || async {
        let ledger = load.ledger();
        if ledger.acknowledged.len() >= since + more {
            Ok(())
        } else {
            Err(format!("{} acknowledged; answers {:?}", ledger.acknowledged.len(), ledger.answers))
        }
    })
    .await;
}
