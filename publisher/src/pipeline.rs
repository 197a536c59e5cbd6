//! The publishing loop: consume a batch, write it to Deephaven, record progress, repeat.
//!
//! A batch closes at `batch.max_rows` records, `batch.max_bytes` of record values, or `batch.max_wait` after its
//! first record, and is written while the next batch is read (one write at a time, in order), so a replay is
//! bounded by the slower of the two, not their sum. A write is one append of the batch's rows, positions included,
//! to the log ([`crate::tables`]); then the group's offsets are committed for lag monitoring. Any failure to use
//! Deephaven — unreachable, the session lost, tables gone after a restart or created anew under a running
//! publisher — takes the same path: stop consuming, reconnect with capped exponential backoff, re-read the progress
//! from Deephaven, move every assigned partition back to it, and drop the unwritten batches (their records are read
//! again). One path for every failure keeps the guarantee simple: what Deephaven holds is at least every record up to
//! its recorded offsets, and appending a record again changes nothing.

use crate::configuration::Settings;
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::metrics::{Metrics, TableLabels};
use crate::resume::{ResumeContext, Shared};
use crate::tables::{self, Sink};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schemas::tables::{KafkaPosition, PositionedRecord, TableNames};
use schemas::{AlertRecord, RecordHeaders};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

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
    /// The size of the record values read, which bounds the batch's memory and its Arrow columns.
    bytes: usize,
}

impl Pending {
    fn len(&self) -> usize {
        self.records.len() + self.dead_letters.len()
    }

    fn is_full(&self, settings: &Settings) -> bool {
        self.len() >= settings.batch.max_rows || self.bytes >= settings.batch.max_bytes
    }

    fn push(&mut self, message: &BorrowedMessage<'_>, metrics: &Metrics) {
        metrics.records_consumed.inc();
        self.bytes += message.payload_len();
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
    let mut last_check = Instant::now();
    if !connect(&settings, mode == Mode::Replay, &shared, &mut shutdown).await {
        return Ok(());
    }
    metrics.deephaven_connected.set(1);
    let consumer = consumer(&settings, Arc::clone(&shared))?;
    consumer.subscribe(&[&settings.kafka.topic])?;
    tracing::info!(topic = %settings.kafka.topic, tables = ?names, "publishing");

    // The batch read last is written while the next one is read: Deephaven's time per batch overlaps with
    // consuming and decoding the next instead of adding to it. Writes stay one at a time and in order.
    let mut unwritten = Pending::default();
    loop {
        let writes = unwritten.len() > 0;
        let (written, previous_write) = oneshot::channel::<()>();
        let writing = async {
            if writes {
                write(&shared, &dead_letters, &consumer, &settings, &unwritten, &metrics).await?;
            }
            let _ = written.send(());
            Ok(())
        };
        let reading = async {
            let previous_write = async {
                let _ = previous_write.await;
            };
            Ok(collect(&consumer, &shared, &settings, &metrics, previous_write, &mut shutdown).await)
        };
        // A failed write abandons the read in progress at once: everything after Deephaven's progress is read again.
        let (pending, stopping) = match tokio::try_join!(writing, reading) {
            Ok(((), read)) => read,
            Err(err) => {
                unwritten = Pending::default();
                match recover(err, &settings, &shared, &consumer, &metrics, &mut shutdown).await {
                    true => continue,
                    false => break,
                }
            }
        };
        if stopping {
            finish(&shared, &dead_letters, &consumer, &settings, &pending, &metrics).await;
            break;
        }
        let idle = !writes && pending.len() == 0;
        if idle || last_check.elapsed() >= settings.deephaven.check_interval {
            last_check = Instant::now();
            if let Err(err) = check(&shared).await {
                if !recover(err, &settings, &shared, &consumer, &metrics, &mut shutdown).await {
                    break;
                }
                continue;
            }
        }
        if idle {
            shared.fetch_gate.reopen_if_topic_is_back(&consumer, &settings.kafka.topic, &metrics);
        }
        metrics.deephaven_connected.set(1);
        unwritten = pending;
    }
    metrics.deephaven_connected.set(0);
    consumer.unsubscribe();
    tracing::info!("publisher stopped");
    Ok(())
}

/// The one path after any failure to use Deephaven: reconnect, then move every partition back to the progress
/// Deephaven holds. False when shutdown came first.
async fn recover(
    err: anyhow::Error,
    settings: &Settings,
    shared: &Shared,
    consumer: &StreamConsumer<ResumeContext>,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    metrics.deephaven_connected.set(0);
    tracing::warn!(error = %err, "Deephaven is not usable; reconnecting");
    if !connect(settings, false, shared, shutdown).await {
        return false;
    }
    metrics.deephaven_reconnects.inc();
    metrics.deephaven_connected.set(1);
    rewind(consumer, &settings.kafka.topic, shared);
    true
}

/// Connects to Deephaven (retrying with capped backoff) and installs the session; false if shut down first.
async fn connect(settings: &Settings, recreate: bool, shared: &Shared, shutdown: &mut watch::Receiver<bool>) -> bool {
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = async {
            let sink = Sink::open(&settings.deephaven, recreate).await?;
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
        // Bounded memory while Deephaven is away and nothing is consumed. Counted before decompression: 16 MB of
        // lz4-compressed JSON held 65 MB of records (heaptrack), so 4 MB still holds more than a full batch.
        .set("queued.max.messages.kbytes", "4096")
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

/// Reads one batch: waits for a first record, then takes more until the batch is full, or `max_wait` has passed
/// and `previous_write` is done (a batch that cannot be written yet keeps filling, so batches grow while Deephaven
/// is the bottleneck and stay small and quick when it is not). Returns early, with what it has, when shutdown is
/// asked for, and empty after `check_interval` without records (so an idle publisher still notices a lost
/// Deephaven).
async fn collect(
    consumer: &StreamConsumer<ResumeContext>,
    shared: &Shared,
    settings: &Settings,
    metrics: &Metrics,
    previous_write: impl Future<Output = ()>,
    shutdown: &mut watch::Receiver<bool>,
) -> (Pending, bool) {
    let mut pending = Pending::default();
    let mut deadline: Option<tokio::time::Instant> = None;
    tokio::pin!(previous_write);
    let mut previous_written = false;
    while !pending.is_full(settings) {
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
            () = &mut previous_write, if !previous_written => previous_written = true,
            _ = timeout, if previous_written || deadline.is_none() => break,
            _ = shutdown.wait_for(|stop| *stop) => return (pending, true),
        }
    }
    (pending, false)
}

/// Dead letters first (so they are not lost when the offsets move past them), then the rows, then the group's
/// offsets are committed.
async fn write(
    shared: &Shared,
    dead_letters: &DeadLetters,
    consumer: &StreamConsumer<ResumeContext>,
    settings: &Settings,
    pending: &Pending,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let sink = shared.sink().ok_or_else(|| anyhow::anyhow!("no Deephaven session"))?;
    if !pending.dead_letters.is_empty() {
        dead_letters.send(&pending.dead_letters).await?;
        metrics.dlq_records.inc_by(pending.dead_letters.len() as u64);
    }
    let set_aside: Vec<KafkaPosition> = pending.dead_letters.iter().map(DeadLetter::position).collect();
    let rows = tables::log_rows(&pending.records, &set_aside);
    let row_count = rows.num_rows() as u64;

    let started = Instant::now();
    sink.write(rows).await?;
    metrics.write_seconds.observe(started.elapsed().as_secs_f64());
    metrics.batch_records.observe(pending.len() as f64);
    metrics.rows_written.get_or_create(&TableLabels { table: sink.names().log.clone() }).inc_by(row_count);
    shared.wrote(&pending.offsets);
    commit(consumer, settings, pending);
    Ok(())
}

/// On shutdown: writes what was read last. A failure loses nothing (Deephaven's progress does not cover these
/// records, so the next start reads them again), and there is no reconnecting on the way out.
async fn finish(
    shared: &Shared,
    dead_letters: &DeadLetters,
    consumer: &StreamConsumer<ResumeContext>,
    settings: &Settings,
    pending: &Pending,
    metrics: &Metrics,
) {
    if pending.len() == 0 {
        return;
    }
    if let Err(err) = write(shared, dead_letters, consumer, settings, pending, metrics).await {
        tracing::warn!(error = %err, "the last batch was not written; it is read again on the next start");
    }
}

/// A look at Deephaven, when idle and every `check_interval` while busy: the session answers, the tables are
/// still there (a restarted server has neither), and they hold what this publisher wrote (tables created anew by
/// another publisher or a replay do not).
async fn check(shared: &Shared) -> anyhow::Result<()> {
    let sink = shared.sink().ok_or_else(|| anyhow::anyhow!("no Deephaven session"))?;
    sink.check().await?;
    let applied = sink.progress().await?;
    if let Some(partition) = shared.behind(&applied) {
        anyhow::bail!("Deephaven's progress on partition {partition} is behind what this publisher wrote: the tables were created anew");
    }
    Ok(())
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
