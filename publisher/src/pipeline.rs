//! The publishing loop: consume a batch, write it to Deephaven, record progress, repeat.
//!
//! A batch closes at `batch.max_rows` records or `batch.max_wait` after its first record. Writing follows
//! [`crate::tables`]' order (data, then offsets), then the group's offsets are committed for lag monitoring. Any
//! failure to write — Deephaven unreachable, the session lost, tables gone after a restart — takes the same path:
//! stop consuming, reconnect with capped exponential backoff, re-read the progress from Deephaven, move every
//! assigned partition back to it, and drop the unwritten batch (its records are read again). One path for every
//! failure keeps the guarantee simple: what Deephaven holds is exactly the records up to its recorded offsets.

use crate::configuration::Settings;
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::metrics::{Metrics, TableLabels};
use crate::resume::{ResumeContext, Shared};
use crate::tables::{Batch, Sink, TableNames};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schemas::tables::{KafkaPosition, PositionedRecord};
use schemas::{AlertRecord, EventId, RecordHeaders};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Whether to keep the tables or start them over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Resume from the progress recorded in Deephaven (the normal case).
    Follow,
    /// Replace the tables with empty ones first and rebuild them from the earliest retained record.
    Replay,
}

/// Records read since the last write.
#[derive(Default)]
struct Pending {
    records: Vec<PositionedRecord>,
    dead_letters: Vec<DeadLetter>,
    /// The last offset read per partition.
    offsets: BTreeMap<i32, i64>,
}

impl Pending {
    fn len(&self) -> usize {
        self.records.len() + self.dead_letters.len()
    }

    fn push(&mut self, message: &BorrowedMessage<'_>, metrics: &Metrics) {
        metrics.records_consumed.inc();
        let position = KafkaPosition { partition: message.partition(), offset: message.offset() };
        let format = message.headers().and_then(|headers| {
            headers.iter().find(|header| header.key == RecordHeaders::FORMAT).and_then(|header| header.value)
        });
        match AlertRecord::decode(format, message.payload().unwrap_or_default()) {
            Ok(record) => self.records.push(PositionedRecord { record, position }),
            Err(err) => {
                tracing::warn!(partition = position.partition, offset = position.offset, error = %err, "undecodable record: to the dead-letter topic");
                self.dead_letters.push(DeadLetter { message: message.detach(), reason: err.to_string() });
            }
        }
        self.offsets.insert(position.partition, position.offset);
    }
}

/// Runs until `shutdown` turns true, then writes what it holds and returns.
pub async fn run(
    settings: Settings,
    mode: Mode,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let shared = Shared::new(Arc::clone(&metrics));
    let dead_letters = DeadLetters::new(&settings.kafka.brokers, &settings.kafka.dlq_topic)?;
    let names = TableNames::with_prefix(&settings.deephaven.table_prefix);
    if !connect(&settings, mode == Mode::Replay, &shared, &mut shutdown).await {
        return Ok(());
    }
    metrics.deephaven_connected.set(1);
    let consumer = consumer(&settings, Arc::clone(&shared))?;
    consumer.subscribe(&[&settings.kafka.topic])?;
    tracing::info!(topic = %settings.kafka.topic, tables = ?names, "publishing");

    loop {
        let (pending, stopping) = collect(&consumer, &shared, &settings, &metrics, &mut shutdown).await;
        let outcome = if pending.len() > 0 {
            write(&shared, &dead_letters, &pending, &metrics).await.map(|()| commit(&consumer, &settings, &pending))
        } else {
            check(&shared).await.map(|()| {
                shared.fetch_gate.reopen_if_topic_is_back(&consumer, &settings.kafka.topic, &metrics);
            })
        };
        match outcome {
            Ok(()) => {
                metrics.deephaven_connected.set(1);
            }
            Err(err) => {
                metrics.deephaven_connected.set(0);
                tracing::warn!(error = %err, "Deephaven is not usable; reconnecting");
                if !connect(&settings, false, &shared, &mut shutdown).await {
                    break;
                }
                metrics.deephaven_reconnects.inc();
                metrics.deephaven_connected.set(1);
                rewind(&consumer, &settings.kafka.topic, &shared);
            }
        }
        if stopping {
            break;
        }
    }
    metrics.deephaven_connected.set(0);
    consumer.unsubscribe();
    tracing::info!("publisher stopped");
    Ok(())
}

/// Connects to Deephaven (retrying with capped backoff) and installs the session; false if shut down first.
async fn connect(settings: &Settings, recreate: bool, shared: &Shared, shutdown: &mut watch::Receiver<bool>) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = async {
            let sink = Sink::open(&settings.deephaven, &settings.kafka.topic, recreate).await?;
            shared.install(sink).await
        };
        match attempt.await {
            Ok(()) => return true,
            Err(err) => tracing::warn!(error = %err, retry_in = ?backoff, "Deephaven is not usable yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => return false,
        }
        backoff = (backoff * 2).min(settings.deephaven.max_backoff);
    }
}

fn consumer(settings: &Settings, shared: Arc<Shared>) -> anyhow::Result<StreamConsumer<ResumeContext>> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", &settings.kafka.group_id)
        .set("client.id", "alerthaven-publisher")
        // Progress is read from Deephaven; the group's offsets are committed explicitly, for lag monitoring only.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", settings.kafka.session_timeout.as_millis().to_string())
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("fetch.wait.max.ms", "50")
        // Bounded memory while Deephaven is away and nothing is consumed.
        .set("queued.max.messages.kbytes", "16384")
        .set("statistics.interval.ms", "5000")
        // A subscribed topic that is missing (re-created after a broker restart, say) is found within this time
        // rather than librdkafka's default five minutes.
        .set("topic.metadata.refresh.interval.ms", "10000");
    for (name, value) in &settings.kafka.properties {
        config.set(name, value);
    }
    let topic = settings.kafka.topic.clone();
    Ok(config.create_with_context(ResumeContext { shared, topic })?)
}

/// Reads one batch: waits for a first record, then takes more until the batch is full or `max_wait` has passed.
/// Returns early, with what it has, when shutdown is asked for, and empty after `check_interval` without records
/// (so an idle publisher still notices a lost Deephaven).
async fn collect(
    consumer: &StreamConsumer<ResumeContext>,
    shared: &Shared,
    settings: &Settings,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> (Pending, bool) {
    let mut pending = Pending::default();
    let mut deadline: Option<tokio::time::Instant> = None;
    while pending.len() < settings.batch.max_rows {
        let timeout = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => tokio::time::sleep(settings.deephaven.check_interval).await,
            }
        };
        tokio::select! {
            received = consumer.recv() => match received {
                Ok(message) => {
                    pending.push(&message, metrics);
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + settings.batch.max_wait);
                }
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown)) => shared.fetch_gate.close(consumer),
                Err(err) => tracing::warn!(error = %err, "consuming failed"),
            },
            _ = timeout => break,
            _ = shutdown.wait_for(|stop| *stop) => return (pending, true),
        }
    }
    (pending, false)
}

/// Dead letters first (so they are not lost when the offsets move past them), then the rows and the offsets.
async fn write(
    shared: &Shared,
    dead_letters: &DeadLetters,
    pending: &Pending,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let sink = shared.sink().ok_or_else(|| anyhow::anyhow!("no Deephaven session"))?;
    if !pending.dead_letters.is_empty() {
        dead_letters.send(&pending.dead_letters).await?;
        metrics.dlq_records.inc_by(pending.dead_letters.len() as u64);
    }
    let mut by_event: HashMap<&EventId, &PositionedRecord> = HashMap::new();
    for row in &pending.records {
        by_event.insert(&row.record.event_id, row);
    }
    let alerts = shared.progress().states.advancing(&pending.records);
    let batch = Batch { events: by_event.into_values().collect(), alerts, offsets: pending.offsets.clone() };

    let started = Instant::now();
    sink.write(&batch).await?;
    metrics.write_seconds.observe(started.elapsed().as_secs_f64());
    metrics.batch_records.observe(pending.len() as f64);
    let names = sink.names();
    metrics.rows_written.get_or_create(&TableLabels { table: names.alerts.clone() }).inc_by(batch.alerts.len() as u64);
    metrics
        .rows_written
        .get_or_create(&TableLabels { table: names.alert_events.clone() })
        .inc_by(batch.events.len() as u64);

    let mut progress = shared.progress();
    progress.states.apply(batch.alerts.iter().copied());
    progress.offsets.extend(&pending.offsets);
    Ok(())
}

/// An idle publisher's look at Deephaven: the session answers and the tables are still there (a restarted
/// server has neither).
async fn check(shared: &Shared) -> anyhow::Result<()> {
    let sink = shared.sink().ok_or_else(|| anyhow::anyhow!("no Deephaven session"))?;
    sink.check().await
}

/// Commits the group's offsets (for lag monitoring; resuming does not depend on them). Refusals arrive in
/// [`ResumeContext`]'s commit callback.
fn commit(consumer: &StreamConsumer<ResumeContext>, settings: &Settings, pending: &Pending) {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in &pending.offsets {
        list.add_partition_offset(&settings.kafka.topic, *partition, Offset::Offset(offset + 1))
            .expect("an absolute offset is always valid");
    }
    if let Err(err) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(error = %err, "committing the group's offsets failed");
    }
}

/// Moves every assigned partition back to the progress Deephaven holds.
fn rewind(consumer: &StreamConsumer<ResumeContext>, topic: &str, shared: &Shared) {
    for partition in shared.assigned() {
        let offset = shared.resume_offset(partition);
        tracing::info!(partition, ?offset, "resuming from Deephaven's progress");
        if let Err(err) = consumer.seek(topic, partition, offset, Duration::from_secs(10)) {
            tracing::error!(partition, error = %err, "could not move the partition back");
        }
    }
}
