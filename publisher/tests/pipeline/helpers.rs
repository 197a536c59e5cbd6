//! Running the publisher against the real broker and Deephaven, feeding it records and reading the tables back.

use arrow::array::RecordBatch;
use deephaven_client::{Client, ClientConfig};
use publisher::configuration::Settings;
use publisher::health::{Health, Readiness};
use publisher::metrics::Metrics;
use publisher::pipeline::Mode;
use publisher::startup::Application;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig as KafkaConfig;
use schemas::{AlertRecord, RecordHeaders, Status, Timestamp};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use test_kit::kafka::{create_topic, Consumed};
use test_kit::launch::PublisherLaunch;
use test_kit::names::unique_name;
pub use test_kit::process::Service;
use test_kit::stack::Stack;
use test_kit::tables::EventRow;
pub use test_kit::tables::Tables;
use test_kit::wait;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const TABLES_DEADLINE: Duration = Duration::from_secs(120);

/// The retention the tests run with: their records carry fixed `ReceivedAt` times ([`received_at`]), which the
/// default retention would drop once they are a month old. The retention's own test sets its own.
const RETENTION_DAYS: u64 = 20 * 365;

/// A fresh topic pair and table prefix on the shared stack (or a given Deephaven).
#[derive(Clone)]
pub struct Setup {
    pub brokers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub deephaven_url: String,
    pub prefix: String,
    pub group_id: String,
}

pub async fn setup(partitions: i32) -> Setup {
    let stack = Stack::from_env();
    setup_with(partitions, &stack.deephaven_url).await
}

pub async fn setup_with(partitions: i32, deephaven_url: &str) -> Setup {
    let brokers = Stack::from_env().kafka_brokers;
    let topic = create_topic(&brokers, "publisher-test", partitions).await;
    let dlq_topic = create_topic(&brokers, "publisher-test-dlq", 1).await;
    // Deephaven variable names: letters, digits, underscores.
    let prefix = format!("{}_", unique_name("t"));
    Setup { brokers, topic, dlq_topic, deephaven_url: deephaven_url.to_owned(), prefix, group_id: unique_name("group") }
}

impl Setup {
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.server.port = 0;
        settings.kafka.brokers = self.brokers.clone();
        settings.kafka.topic = self.topic.clone();
        settings.kafka.dlq_topic = self.dlq_topic.clone();
        settings.kafka.group_id = self.group_id.clone();
        settings.deephaven.url = self.deephaven_url.clone();
        settings.deephaven.table_prefix = self.prefix.clone();
        settings.deephaven.max_backoff = Duration::from_secs(2);
        settings.deephaven.check_interval = Duration::from_secs(1);
        settings.deephaven.retention = Duration::from_secs(RETENTION_DAYS * 24 * 3600);
        settings
    }

    /// The publisher binary configured like [`Setup::settings`], with its operations endpoint on `port`.
    pub fn launch(&self, port: u16) -> PublisherLaunch {
        PublisherLaunch {
            port,
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            dlq_topic: self.dlq_topic.clone(),
            group_id: self.group_id.clone(),
            deephaven_url: self.deephaven_url.clone(),
            table_prefix: self.prefix.clone(),
            settings: vec![("PUBLISHER_DEEPHAVEN__RETENTION".to_owned(), format!("{RETENTION_DAYS}days"))],
        }
    }
}

/// The publisher binary, configured by [`Setup::launch`] with `extra` settings on top.
pub fn spawn_binary(setup: &Setup, extra: &[(&str, &str)]) -> Service {
    let mut launch = setup.launch(test_kit::stack::free_port());
    launch.settings.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    launch.spawn(Path::new(env!("CARGO_BIN_EXE_publisher")), &[])
}

/// An in-process publisher, stopped by [`RunningPublisher::stop`].
pub struct RunningPublisher {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

pub async fn spawn_publisher(mut settings: Settings, mode: Mode) -> RunningPublisher {
    settings.server.port = 0;
    let application = Application::build(settings, mode).await.expect("the publisher builds");
    let (metrics, health) = (application.metrics(), application.health());
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(application.run_until_stopped(stopped));
    RunningPublisher { stop, task, metrics, health }
}

impl RunningPublisher {
    pub async fn stop(self) {
        self.stopped().await.expect("the publisher ran without failing");
    }

    /// Stops the publisher and returns what it returned.
    pub async fn stopped(self) -> anyhow::Result<()> {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("the publisher stops").unwrap()
    }

    /// Waits until the publisher's readiness satisfies `holds`.
    pub async fn wait_for_readiness(&self, what: &str, holds: impl Fn(&Readiness) -> bool) {
        wait::until(what, TABLES_DEADLINE, || async {
            let readiness = self.health.readiness();
            if holds(&readiness) {
                Ok(())
            } else {
                Err(readiness)
            }
        })
        .await;
    }

    /// `/metrics` as the publisher renders it.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&self.health)
    }
}

pub use test_kit::kafka::{read_acked, Acked};

/// What a record of ingest's is made of: key = fingerprint, the format header, the encoded value.
type RawRecord<'a> = (Vec<u8>, Option<&'a str>, Vec<u8>);

fn raw(records: &[AlertRecord]) -> Vec<RawRecord<'static>> {
    records.iter().map(|r| (r.key().to_vec(), Some(RecordHeaders::CURRENT_FORMAT), r.encode())).collect()
}

/// How long one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Produces records as ingest does: key = fingerprint, the format headers, the encoded value.
pub async fn produce(brokers: &str, topic: &str, records: &[AlertRecord]) -> Vec<Acked> {
    produce_raw(brokers, topic, &raw(records)).await
}

/// Produces (key, format header value, value) triples, in order, each acknowledged before the next.
pub async fn produce_raw(brokers: &str, topic: &str, records: &[RawRecord<'_>]) -> Vec<Acked> {
    // Larger than librdkafka's default, so that a test can produce records near the broker's limit.
    let producer = producer(brokers, &[("message.max.bytes", "4000000")]);
    send_in_order(&producer, topic, records).await
}

/// Produces as [`produce`] does, through a client with the librdkafka `properties` added (TLS, a login).
pub async fn produce_with(
    properties: &[(&str, &str)],
    brokers: &str,
    topic: &str,
    records: &[AlertRecord],
) -> Vec<Acked> {
    send_in_order(&producer(brokers, properties), topic, &raw(records)).await
}

fn producer(brokers: &str, properties: &[(&str, &str)]) -> FutureProducer {
    let mut config = KafkaConfig::new();
    config.set("bootstrap.servers", brokers);
    for (name, value) in properties {
        config.set(*name, *value);
    }
    config.create().expect("a producer")
}

/// Produces `records` in one request (queued together, then sent), so that they are stored as one batch and a
/// consumer fetches them together.
pub async fn produce_together(brokers: &str, topic: &str, records: &[AlertRecord]) -> Vec<Acked> {
    let producer: FutureProducer = KafkaConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "60000")
        .set("batch.num.messages", records.len().max(1).to_string())
        .create()
        .unwrap();
    let raw = raw(records);
    let deliveries: Vec<_> = raw
        .iter()
        .map(|raw| {
            let record = kafka_record(topic, raw).partition(0);
            producer.send_result(record).map_err(|(err, _)| err).expect("the record is queued")
        })
        .collect();
    producer.flush(SEND_TIMEOUT).expect("the records are sent");
    let mut acked = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let delivery = delivery.await.expect("delivered").map_err(|(err, _)| err).unwrap();
        acked.push((delivery.partition, delivery.offset));
    }
    acked
}

/// Produces `records` in one committed transaction, as an exactly-once producer would. Its commit marker takes an
/// offset of its own, which a consumer never sees: a jump of one in the partition's offsets that holds no record.
pub async fn produce_in_transaction(brokers: &str, topic: &str, records: &[AlertRecord]) -> Vec<Acked> {
    let producer: FutureProducer = KafkaConfig::new()
        .set("bootstrap.servers", brokers)
        .set("transactional.id", unique_name("transactional"))
        .create()
        .unwrap();
    producer.init_transactions(SEND_TIMEOUT).expect("the broker takes transactions");
    producer.begin_transaction().unwrap();
    let acked = send_in_order(&producer, topic, &raw(records)).await;
    producer.commit_transaction(SEND_TIMEOUT).unwrap();
    acked
}

/// Sends `records` with `producer`, each acknowledged before the next.
async fn send_in_order(producer: &FutureProducer, topic: &str, records: &[RawRecord<'_>]) -> Vec<Acked> {
    let mut acked = Vec::with_capacity(records.len());
    for raw in records {
        let delivery = producer.send(kafka_record(topic, raw), SEND_TIMEOUT).await.map_err(|(err, _)| err).unwrap();
        acked.push((delivery.partition, delivery.offset));
    }
    acked
}

/// The Kafka record of `raw`: its key, its format header if it has one, its value.
fn kafka_record<'a>(topic: &'a str, (key, format, value): &'a RawRecord<'_>) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new();
    if let Some(format) = format {
        headers = headers.insert(Header { key: RecordHeaders::FORMAT, value: Some(*format) });
    }
    FutureRecord::to(topic).key(key.as_slice()).payload(value.as_slice()).headers(headers)
}

/// The tables a correct publisher with the default `refire_grace` produces from `records` (each with its partition
/// and offset, in the order they were read).
pub fn expected(records: &[(AlertRecord, i32, i64)]) -> Tables {
    expected_with(records, Settings::default().deephaven.refire_grace)
}

/// The oracle, written independently of the server-side derivation: per event its first copy by (ReceivedAt,
/// offset); per alert the state of greatest (StartsAt, ReceivedAt + `refire_grace` if resolved), the later read
/// winning ties.
pub fn expected_with(records: &[(AlertRecord, i32, i64)], refire_grace: Duration) -> Tables {
    let grace = refire_grace.as_nanos() as i64;
    let mut tables = Tables::default();
    let mut first_copy: BTreeMap<String, ((i64, i64, i32), EventRow)> = BTreeMap::new();
    // Per alert: its rank (StartsAt, ranked-at time) and its row (status, StartsAt, ReceivedAt).
    type Ranked = ((i64, i64), (String, i64, i64));
    let mut best: BTreeMap<String, Ranked> = BTreeMap::new();
    for (record, partition, offset) in records {
        let received = record.received_at.unix_nanos();
        let row = (record.fingerprint.to_string(), record.status.to_string(), *partition, *offset);
        let copy = ((received, *offset, *partition), row);
        let first = first_copy.entry(record.event_id.to_string()).or_insert(copy.clone());
        if copy.0 < first.0 {
            *first = copy;
        }
        let resolved = record.status == Status::Resolved;
        let rank = (record.starts_at.unix_nanos(), received + if resolved { grace } else { 0 });
        let row = (record.status.to_string(), record.starts_at.unix_nanos(), received);
        let entry = best.entry(record.fingerprint.to_string()).or_insert((rank, row.clone()));
        if rank >= entry.0 {
            *entry = (rank, row);
        }
    }
    tables.events = first_copy.into_iter().map(|(id, (_, row))| (id, row)).collect();
    tables.alerts = best.into_iter().map(|(fp, (_, row))| (fp, row)).collect();
    tables
}

pub async fn client(url: &str) -> Client {
    Client::connect(ClientConfig::new(url.to_owned())).await.expect("Deephaven answers")
}

/// Reads both tables; missing tables, and a read that fails, read as empty (a wait reads again); tables not of the
/// publisher's making panic.
pub async fn read_tables(client: &Client, prefix: &str) -> Tables {
    test_kit::tables::read_tables(client, prefix).await.unwrap_or_default()
}

/// Reads both tables for an assertion about what is not in them: a read that fails fails the test instead of
/// reading as empty.
pub async fn read_tables_or_fail(client: &Client, prefix: &str) -> Tables {
    test_kit::tables::read_tables(client, prefix).await.expect("Deephaven answers the read")
}

/// Every row of table `name`; a missing table, and a read that fails, read as empty (a wait reads again).
pub async fn snapshot(client: &Client, name: &str) -> Vec<RecordBatch> {
    test_kit::tables::snapshot(client, name).await.unwrap_or_default()
}

/// Waits until the tables equal `expected`; returns them.
pub async fn wait_for_tables(url: &str, prefix: &str, expected: &Tables) -> Tables {
    wait_for_tables_read_by(&client(url).await, prefix, expected).await
}

/// [`wait_for_tables`] through a given client (one that logs in, say).
pub async fn wait_for_tables_read_by(client: &Client, prefix: &str, expected: &Tables) -> Tables {
    wait::until("the Deephaven tables to hold exactly the expected rows", TABLES_DEADLINE, || async {
        let tables = read_tables(client, prefix).await;
        if &tables == expected {
            Ok(tables)
        } else {
            Err(tables.against(expected))
        }
    })
    .await
}

/// The records whose writes were `acked`, decoded, with their partitions and offsets as read back from the topic:
/// what a correct publisher makes its tables of.
pub async fn positions(brokers: &str, topic: &str, acked: &[Acked]) -> Vec<(AlertRecord, i32, i64)> {
    positioned(&read_acked(brokers, topic, acked).await)
}

/// The decodable records among `consumed`, each with its partition and offset.
pub fn positioned(consumed: &[Consumed]) -> Vec<(AlertRecord, i32, i64)> {
    consumed.iter().filter_map(|c| c.decode().ok().map(|r| (r, c.partition, c.offset))).collect()
}

/// `received_at` values that increase by one millisecond per record, so every record's precedence is distinct.
pub fn received_at(index: usize) -> Timestamp {
    Timestamp::from_unix_nanos(1_795_459_306_000_000_000 + index as i64 * 1_000_000)
}
