//! Fresh topics per test and reading records back.
//!
//! Each test gets topics of its own, so tests run concurrently and never see each other's records. Records are
//! counted by consuming them: the local broker's reported high watermarks run short after batched produces, so
//! "caught up" is never decided from watermarks.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use schemas::{AlertRecord, DecodeError, RecordHeaders};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{prefix}-{}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos % 1_000_000_000)
}

/// Creates a fresh topic and returns its name.
pub async fn create_topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix);
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("creating an admin client");
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics([&topic], &options).await.expect("the broker answers CreateTopics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating topic {topic}: {code:?}"));
    }
    name
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
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("the broker answers Metadata");
    let partitions = metadata.topics().first().map(|topic| topic.partitions().len()).unwrap_or(0);
    assert!(partitions > 0, "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        let partition = i32::try_from(partition).expect("few partitions");
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
