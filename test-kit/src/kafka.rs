//! Fresh topics per test and reading records back.
//!
//! Each test gets topics of its own, so tests run concurrently and never see each other's records. Records are
//! counted by consuming them: the local broker's (Tansu 0.6.0's) reported high watermarks run short after batched
//! produces (no upstream issue found), so "caught up" is never decided from watermarks; they could decide it again
//! once the Tansu that `scripts/install-broker.sh` pins reports them right. [`read_all`] finds each partition's end
//! by writing a marker record there and consuming until it arrives; [`read_acked`] reads to the ends a test's own
//! acknowledged writes mark, for topics a consumer under test reads (to which a marker would be a malformed record);
//! [`read_until`] reads until a condition on what was read holds.

use crate::names::unique_name;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use schemas::{AlertRecord, DecodeError, RecordHeaders};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Creates a fresh topic and returns its name.
pub async fn create_topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix);
    create_topic_named(brokers, &name, partitions).await;
    name
}

/// Creates the topic `name` (for a test that names a topic before it exists).
pub async fn create_topic_named(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("creating an admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics([&topic], &options).await.expect("the broker answers CreateTopics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating topic {topic}: {code:?}"));
    }
}

/// Whether the broker lists `topic`, asked by a client that never creates topics.
pub fn topic_exists(brokers: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("a metadata client");
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("the broker answers Metadata");
    metadata.topics().iter().any(|listed| listed.name() == topic && listed.error().is_none())
}

/// One record as read back.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Option<Vec<u8>>,
}

impl Consumed {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_slice())
    }

    /// Decodes the value with the record format the headers name.
    pub fn decode(&self) -> Result<AlertRecord, DecodeError> {
        AlertRecord::decode(self.header(RecordHeaders::FORMAT), self.value.as_deref().unwrap_or_default())
    }
}

/// The header of the marker records [`read_all`] writes; its value is unique to one call.
pub const END_MARKER_HEADER: &str = "e2e-end-marker";

/// Every record of `topic`, to the end of every partition (each partition's in offset order): writes a marker
/// record to each partition, reads from the beginning until every partition has delivered its marker, and returns
/// what was read but the markers (this call's and any earlier call's). Panics if the markers have not all arrived
/// by `deadline`.
///
/// The records to read must have been acknowledged before the call (so they precede the markers), and nothing may
/// consume the topic: to a consumer under test a marker is a malformed record.
pub async fn read_all(brokers: &str, topic: &str, deadline: Duration) -> Vec<Consumed> {
    let marker = unique_name("end");
    let partitions = mark_partition_ends(brokers, topic, &marker).await;
    let read = read_until(brokers, topic, deadline, {
        let marker = marker.clone();
        let mut ended = BTreeSet::new();
        // The condition is checked after every record read, so only the newest can be a marker not yet seen.
        move |read| {
            ended.extend(read.last().and_then(|record| end_marked(record, &marker)));
            (0..partitions).all(|partition| ended.contains(&partition))
        }
    })
    .await;
    let ended: BTreeSet<i32> = read.iter().filter_map(|record| end_marked(record, &marker)).collect();
    let unended: Vec<i32> = (0..partitions).filter(|partition| !ended.contains(partition)).collect();
    assert!(
        unended.is_empty(),
        "reading {topic} to its end: the end markers of partitions {unended:?} had not arrived after {deadline:?} \
         ({} records read)",
        read.len()
    );
    read.into_iter().filter(|record| record.header(END_MARKER_HEADER).is_none()).collect()
}

/// The partition `record` ends, if it is the end marker `marker`.
fn end_marked(record: &Consumed, marker: &str) -> Option<i32> {
    (record.header(END_MARKER_HEADER) == Some(marker.as_bytes())).then_some(record.partition)
}

/// Writes one record with `marker` in its [`END_MARKER_HEADER`] to each partition of `topic`, each acknowledged by
/// the broker; returns how many partitions there are.
async fn mark_partition_ends(brokers: &str, topic: &str, marker: &str) -> i32 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("creating a producer");
    let partitions = tokio::task::spawn_blocking({
        let (producer, topic) = (producer.clone(), topic.to_owned());
        move || partition_count(producer.client(), &topic)
    })
    .await
    .expect("the metadata task does not panic");
    for partition in 0..partitions {
        let headers = OwnedHeaders::new().insert(Header { key: END_MARKER_HEADER, value: Some(marker) });
        let record = FutureRecord::<(), _>::to(topic).partition(partition).payload(marker).headers(headers);
        producer
            .send(record, Duration::from_secs(10))
            .await
            .unwrap_or_else(|(err, _)| panic!("writing the end marker of {topic} partition {partition}: {err}"));
    }
    partitions
}

/// How many partitions `topic` has (at least one).
fn partition_count<C: ClientContext>(client: &Client<C>, topic: &str) -> i32 {
    let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("the broker answers Metadata");
    let partitions = metadata.topics().first().map(|topic| topic.partitions().len()).unwrap_or(0);
    assert!(partitions > 0, "topic {topic} has no partitions");
    i32::try_from(partitions).expect("few partitions")
}

/// Reads every partition of `topic` from the beginning until `done` holds for what was read, or `deadline` passes;
/// returns what was read either way (the caller asserts on it).
pub async fn read_until<F>(brokers: &str, topic: &str, deadline: Duration, done: F) -> Vec<Consumed>
where
    F: FnMut(&[Consumed]) -> bool + Send + 'static,
{
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(&brokers, &topic, deadline, done))
        .await
        .expect("the reading task does not panic")
}

fn read_blocking<F: FnMut(&[Consumed]) -> bool>(
    brokers: &str,
    topic: &str,
    deadline: Duration,
    mut done: F,
) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("creating a consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partition_count(consumer.client(), topic) {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("a valid assignment");
    }
    consumer.assign(&assignment).expect("assigning the partitions");

    let started = Instant::now();
    let mut records = Vec::new();
    while !done(&records) && started.elapsed() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message.expect("consuming succeeds");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| (header.key.to_owned(), header.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(Consumed {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            headers,
            value: message.payload().map(<[u8]>::to_vec),
        });
    }
    consumer.unassign().expect("unassigning");
    records
}

/// Where the broker acknowledged writing a record: (partition, offset).
pub type Acked = (i32, i64);

/// Reads `topic` by consuming until every write in `acked` has been read, and checks that what was read is exactly
/// what was acknowledged, no record more or less. A test is the only writer of its topics, so each partition ends
/// with its last acknowledged record: that end is known without a watermark (which the local broker reports short)
/// and without the end markers of [`read_all`], which the publisher under test would consume.
pub async fn read_acked(brokers: &str, topic: &str, acked: &[Acked]) -> Vec<Consumed> {
    let mut unread_ends: BTreeMap<i32, i64> = BTreeMap::new();
    for &(partition, offset) in acked {
        let end = unread_ends.entry(partition).or_insert(offset);
        *end = (*end).max(offset);
    }
    let consumed = read_until(brokers, topic, Duration::from_secs(30), move |read| {
        // The condition is checked after every record read, so only the newest can reach an end not yet reached.
        if let Some(last) = read.last() {
            if unread_ends.get(&last.partition).is_some_and(|end| last.offset >= *end) {
                unread_ends.remove(&last.partition);
            }
        }
        unread_ends.is_empty()
    })
    .await;
    let read: BTreeSet<Acked> = consumed.iter().map(|c| (c.partition, c.offset)).collect();
    let written: BTreeSet<Acked> = acked.iter().copied().collect();
    let unacknowledged: Vec<&Acked> = read.difference(&written).collect();
    let unread: Vec<&Acked> = written.difference(&read).collect();
    assert!(
        unacknowledged.is_empty() && unread.is_empty() && consumed.len() == acked.len(),
        "{topic} should hold exactly the {} records acknowledged: read {}, at (partition, offset) never \
         acknowledged: {unacknowledged:?}, acknowledged but not read in 30s: {unread:?}",
        acked.len(),
        consumed.len()
    );
    consumed
}
